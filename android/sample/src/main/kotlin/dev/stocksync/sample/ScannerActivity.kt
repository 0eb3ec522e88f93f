package dev.stocksync.sample

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.viewModels
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.text.KeyboardActions
import androidx.compose.foundation.text.KeyboardOptions
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Surface
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.input.ImeAction
import androidx.compose.ui.text.input.KeyboardType
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import dev.stocksync.ffi.NodeStatus

/** The one screen: a code field (hardware scanners type into it and press Enter), the product, moves. */
class ScannerActivity : ComponentActivity() {
    private val viewModel: ScannerViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent {
            MaterialTheme {
                ScannerScreen(viewModel.scanner)
            }
        }
    }
}

@Composable
fun ScannerScreen(scanner: Scanner) {
    val state by scanner.state.collectAsStateWithLifecycle()
    val status by scanner.status.collectAsStateWithLifecycle()

    Scaffold(bottomBar = { StatusBar(status, busy = state.busy, onSync = scanner::syncNow) }) { padding ->
        Column(
            modifier = Modifier.padding(padding).padding(16.dp).fillMaxSize(),
            verticalArrangement = Arrangement.spacedBy(12.dp),
        ) {
            OutlinedTextField(
                value = state.code,
                onValueChange = scanner::onCode,
                label = { Text("Scan or type a barcode / SKU") },
                singleLine = true,
                keyboardOptions = KeyboardOptions(imeAction = ImeAction.Search),
                keyboardActions = KeyboardActions(onSearch = { scanner.lookUp() }),
                modifier = Modifier.fillMaxWidth(),
            )
            Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                OutlinedTextField(
                    value = state.location,
                    onValueChange = scanner::onLocation,
                    label = { Text("Location") },
                    singleLine = true,
                    modifier = Modifier.weight(1f),
                )
                Button(onClick = scanner::lookUp, enabled = !state.busy) { Text("Look up") }
            }

            state.product?.let { ProductView(it) }

            Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                OutlinedTextField(
                    value = state.quantity,
                    onValueChange = scanner::onQuantity,
                    label = { Text("Quantity") },
                    singleLine = true,
                    keyboardOptions = KeyboardOptions(keyboardType = KeyboardType.Decimal),
                    modifier = Modifier.weight(1f),
                )
                Button(onClick = scanner::receive, enabled = !state.busy && state.product != null) { Text("Receive") }
                OutlinedButton(onClick = scanner::ship, enabled = !state.busy && state.product != null) { Text("Ship") }
            }

            state.message?.let {
                Text(it, style = MaterialTheme.typography.bodyLarge, color = MaterialTheme.colorScheme.primary)
            }
        }
    }
}

@Composable
private fun ProductView(product: ProductCard) {
    Card(modifier = Modifier.fillMaxWidth()) {
        Column(modifier = Modifier.padding(16.dp), verticalArrangement = Arrangement.spacedBy(4.dp)) {
            Text(product.name, style = MaterialTheme.typography.titleLarge)
            Text("SKU ${product.sku}" + (product.barcode?.let { " · $it" } ?: ""))
            Text(
                "On hand at ${product.location}: ${product.onHand.toPlainString()}" +
                    if (product.pending.signum() != 0) " (${product.pending.toPlainString()} not synced yet)" else "",
                style = MaterialTheme.typography.bodyLarge,
            )
        }
    }
}

@Composable
private fun StatusBar(status: NodeStatus?, busy: Boolean, onSync: () -> Unit) {
    Surface(tonalElevation = 3.dp, modifier = Modifier.fillMaxWidth()) {
        Row(
            modifier = Modifier.padding(horizontal = 16.dp, vertical = 8.dp),
            verticalAlignment = Alignment.CenterVertically,
        ) {
            Column(modifier = Modifier.weight(1f)) {
                Text(statusLine(status), style = MaterialTheme.typography.bodyMedium)
                status?.lastError?.let {
                    Text(it, style = MaterialTheme.typography.bodySmall, color = MaterialTheme.colorScheme.error, maxLines = 2)
                }
            }
            TextButton(onClick = onSync, enabled = !busy && status != null) { Text("Sync now") }
        }
    }
}
