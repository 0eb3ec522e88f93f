package dev.stocksync.sample

import dev.stocksync.InventoryNode
import dev.stocksync.ffi.NodeStatus
import dev.stocksync.ffi.Product
import dev.stocksync.ffi.StocksyncException
import dev.stocksync.ffi.SyncState
import dev.stocksync.onHandQuantity
import dev.stocksync.pendingQuantity
import dev.stocksync.userMessage
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharingStarted
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.emitAll
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.stateIn
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import java.math.BigDecimal

/** What the scanner screen shows. */
data class ScannerState(
    val code: String = "",
    val location: String = "A-01",
    val quantity: String = "1",
    val product: ProductCard? = null,
    val message: String? = null,
    val busy: Boolean = false,
)

/** The product on screen and its stock at the chosen location. */
data class ProductCard(
    val id: String,
    val sku: String,
    val name: String,
    val barcode: String?,
    val location: String,
    val onHand: BigDecimal,
    val pending: BigDecimal,
)

/**
 * The scanner screen's logic, free of Android types ([ScannerViewModel] hosts it in its scope):
 * look a code up, receive or ship a quantity, sync on demand; every failure becomes a message.
 *
 * @param enroll enrolls the device if it is not yet and starts background sync.
 */
class Scanner(
    private val scope: CoroutineScope,
    private val node: Deferred<InventoryNode>,
    private val enroll: suspend (InventoryNode) -> Unit,
) {
    private val _state = MutableStateFlow(ScannerState())

    /** The screen. */
    val state: StateFlow<ScannerState> = _state.asStateFlow()

    /** The status bar: `null` until the node is open. */
    val status: StateFlow<NodeStatus?> =
        flow { emitAll(node.await().status) }.stateIn(scope, SharingStarted.Eagerly, null)

    init {
        // A sync brought a change to the product on screen (another device moved it): re-read.
        scope.launch {
            node.await().stockChanges.collect { change ->
                val shown = _state.value.product
                if (shown != null && change.productId == shown.id) {
                    runCatching { card(node.await(), shown.id, shown.location) }
                        .onSuccess { card -> _state.update { it.copy(product = card) } }
                }
            }
        }
    }

    fun onCode(code: String) = _state.update { it.copy(code = code) }

    fun onLocation(location: String) = _state.update { it.copy(location = location) }

    fun onQuantity(quantity: String) = _state.update { it.copy(quantity = quantity) }

    /** The scan: find the product by barcode, SKU or id and show its stock. */
    fun lookUp() = act { node ->
        val s = _state.value
        val card = card(node, node.findProduct(s.code.trim()), s.location.trim())
        _state.update { it.copy(product = card) }
        null
    }

    /** Goods in at the chosen location. */
    fun receive() = move("Received") { node, product, location, quantity ->
        node.receive(product, location, quantity)
    }

    /** Goods out; the rule `no_negative_inventory` refuses more than is there. */
    fun ship() = move("Shipped") { node, product, location, quantity ->
        node.ship(product, location, quantity)
    }

    /** Pushes and pulls now (background sync does it anyway); enrolls first if needed. */
    fun syncNow() = act { node ->
        if (!node.status.value.enrolled) {
            enroll(node)
            "Enrolled with the hub"
        } else {
            val report = node.syncNow()
            "Synced: ${report.pushed} sent, ${report.pulled} received"
        }
    }

    private fun move(
        done: String,
        record: suspend (InventoryNode, String, String, BigDecimal) -> Unit,
    ) = act { node ->
        val s = _state.value
        val product = s.product ?: return@act "Scan a product first"
        val quantity = s.quantity.trim().toBigDecimalOrNull()
        if (quantity == null || quantity.signum() <= 0) return@act "Enter a quantity above 0"
        record(node, product.id, s.location.trim(), quantity)
        _state.update { it.copy(product = card(node, product.id, s.location.trim())) }
        "$done ${quantity.toPlainString()} × ${product.name}"
    }

    /** Runs [block] on the node; its result, or the failure, becomes the message. */
    private fun act(block: suspend (InventoryNode) -> String?) {
        scope.launch {
            _state.update { it.copy(busy = true, message = null) }
            val message = try {
                block(node.await())
            } catch (e: StocksyncException) {
                messageFor(e)
            }
            _state.update { it.copy(busy = false, message = message) }
        }
    }

    private suspend fun card(node: InventoryNode, productId: String, location: String): ProductCard =
        card(node, node.findProduct(productId), location)

    private suspend fun card(node: InventoryNode, product: Product, location: String): ProductCard {
        val row = node.stock(product.id, location).firstOrNull()
        return ProductCard(
            id = product.id,
            sku = product.sku,
            name = product.name,
            barcode = product.barcode,
            location = location,
            onHand = row?.onHandQuantity ?: BigDecimal.ZERO,
            pending = row?.pendingQuantity ?: BigDecimal.ZERO,
        )
    }
}

/** The text a person sees for a failure. */
fun messageFor(e: StocksyncException): String = when (e) {
    is StocksyncException.Rule -> e.reason
    // Local writes never need the network: only a sync can be offline, and nothing is lost.
    is StocksyncException.Offline -> "Saved, will sync"
    is StocksyncException.NotFound -> "Nothing found for “${e.key}”"
    is StocksyncException.Invalid ->
        e.fields.joinToString("; ") { "${it.field}: ${it.messages.joinToString()}" }.ifEmpty { e.reason }
    is StocksyncException.AuthRequired -> "Sign-in needed: ${e.reason}"
    else -> e.userMessage
}

/** The status bar's text, e.g. "Live · 2 pending". */
fun statusLine(status: NodeStatus?): String {
    if (status == null) return "Opening…"
    val state = when (status.state) {
        SyncState.STOPPED -> "Sync stopped"
        SyncState.CONNECTING -> "Connecting…"
        SyncState.SYNCING -> "Syncing…"
        SyncState.LIVE -> "Live"
        SyncState.IDLE -> "Up to date"
        SyncState.OFFLINE -> "Offline"
        SyncState.BACKING_OFF -> "Retrying soon"
        SyncState.CIRCUIT_OPEN -> "Hub unreachable"
        SyncState.AUTH_REQUIRED -> "Sign-in needed"
    }
    return buildList {
        add(state)
        add("${status.pending} pending")
        if (status.rejected > 0) add("${status.rejected} rejected")
        if (status.conflicts > 0) add("${status.conflicts} conflicts")
    }.joinToString(" · ")
}
