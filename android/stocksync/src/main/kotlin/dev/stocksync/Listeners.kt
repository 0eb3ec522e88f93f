package dev.stocksync

import dev.stocksync.ffi.ListenerHandle
import dev.stocksync.ffi.SyncEvent
import dev.stocksync.ffi.SyncListener
import dev.stocksync.ffi.SyncNode
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import java.util.concurrent.atomic.AtomicBoolean

/** Hands each native event to a Kotlin function (called on a native background thread). */
internal class ForwardingListener(private val onEvent: (SyncEvent) -> Unit) : SyncListener {
    override fun onEvent(event: SyncEvent) = onEvent.invoke(event)
}

/**
 * Frees a native [ListenerHandle]: the Rust handle is dropped, and dropping it unregisters the
 * listener (`stocksync_node::ListenerHandle` closes itself on drop). `destroy()` is uniffi's own
 * `Disposable` method, so this does not depend on how the Rust `close` method is spelled in the
 * generated Kotlin.
 */
internal fun ListenerHandle.release() = destroy()

/**
 * One listener registered through an [InventoryNode]. [close] unregisters it (idempotent);
 * closing the node closes it too and then calls `onNodeClosed` (a flow uses that to complete).
 */
internal class Registration(
    private val handle: ListenerHandle,
    private val owner: Registrations,
    private val onNodeClosed: () -> Unit,
) : AutoCloseable {
    private val done = AtomicBoolean(false)

    override fun close() {
        if (done.compareAndSet(false, true)) {
            handle.release()
            owner.forget(this)
        }
    }

    fun closeBecauseNodeClosed() {
        close()
        onNodeClosed()
    }
}

/** The listeners an [InventoryNode] registered for its callers, so `close()` can end them all. */
internal class Registrations {
    private val lock = Any()
    private var closed = false
    private val open = LinkedHashSet<Registration>()
    private val _count = MutableStateFlow(0)

    /** How many are registered now. */
    val count: StateFlow<Int> = _count.asStateFlow()

    /** Registers [onEvent] with [node]; throws [IllegalStateException] once [closeAll] ran. */
    fun register(
        node: SyncNode,
        onEvent: (SyncEvent) -> Unit,
        onNodeClosed: () -> Unit = {},
    ): Registration = synchronized(lock) {
        check(!closed) { "this InventoryNode is closed" }
        val registration = Registration(node.addListener(ForwardingListener(onEvent)), this, onNodeClosed)
        open += registration
        _count.value = open.size
        registration
    }

    fun forget(registration: Registration) = synchronized(lock) {
        if (open.remove(registration)) _count.value = open.size
    }

    /** Closes every registration; later [register] calls fail. */
    fun closeAll() {
        val all = synchronized(lock) {
            closed = true
            open.toList()
        }
        all.forEach { it.closeBecauseNodeClosed() }
    }
}
