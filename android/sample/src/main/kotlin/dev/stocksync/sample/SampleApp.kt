package dev.stocksync.sample

import android.app.Application
import android.os.Build
import android.util.Log
import dev.stocksync.InventoryNode
import dev.stocksync.userMessage
import dev.stocksync.ffi.DeviceRole
import dev.stocksync.ffi.StocksyncException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import java.io.File

/**
 * Holds the app's one [InventoryNode] (one per database file, shared, for the whole process):
 * opened on first use, enrolled with the hub from the build's settings if it is not yet, and
 * syncing in the background from then on. The process ending is what closes it.
 */
class SampleApp : Application() {
    private val appScope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    /** The node, once open. */
    val node: Deferred<InventoryNode> by lazy { appScope.async { openNode() } }

    private suspend fun openNode(): InventoryNode {
        val node = InventoryNode.open(File(filesDir, "stocksync.db").path)
        try {
            enrollIfNeeded(node)
        } catch (e: StocksyncException) {
            // Offline or a bad key: the status bar says "sign-in needed"; "Sync now" retries.
            Log.w(TAG, "not enrolled yet: ${e.userMessage}")
        }
        return node
    }

    /** Enrolls with the hub of the build's settings unless enrolled, then starts background sync. */
    suspend fun enrollIfNeeded(node: InventoryNode) {
        if (!node.status.value.enrolled) {
            if (BuildConfig.ENROLLMENT_KEY.isEmpty()) {
                throw StocksyncException.AuthRequired(
                    "no enrollment key in this build: set stocksync.enrollmentKey in gradle.properties",
                )
            }
            node.enroll(BuildConfig.HUB_URL, BuildConfig.ENROLLMENT_KEY, DeviceRole.HANDHELD, Build.MODEL)
        }
        node.startSync()
    }

    private companion object {
        const val TAG = "stocksync-sample"
    }
}
