package dev.stocksync

import dev.stocksync.ffi.Allocation
import dev.stocksync.ffi.Conflict
import dev.stocksync.ffi.ConflictResolution
import dev.stocksync.ffi.DeviceInfo
import dev.stocksync.ffi.DeviceRole
import dev.stocksync.ffi.LedgerRow
import dev.stocksync.ffi.Location
import dev.stocksync.ffi.Money
import dev.stocksync.ffi.Movement
import dev.stocksync.ffi.NewDevice
import dev.stocksync.ffi.NewProduct
import dev.stocksync.ffi.NodeStatus
import dev.stocksync.ffi.OpOutcome
import dev.stocksync.ffi.OutboxRow
import dev.stocksync.ffi.Product
import dev.stocksync.ffi.ProductEdit
import dev.stocksync.ffi.ReasonCode
import dev.stocksync.ffi.Recorded
import dev.stocksync.ffi.StockRow
import dev.stocksync.ffi.StocksyncException
import dev.stocksync.ffi.SyncEvent
import dev.stocksync.ffi.SyncNode
import dev.stocksync.ffi.SyncReport
import dev.stocksync.ffi.Uom
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeoutOrNull
import java.math.BigDecimal
import java.util.concurrent.atomic.AtomicBoolean

/**
 * A device's inventory and its sync with a hub: the coroutine-friendly face of the generated
 * [SyncNode]. Open one per database file with [open] and share it (it is thread-safe); every
 * local read and write works offline.
 *
 * - Every call that reads or writes is `suspend`: local SQLite calls run on the injected I/O
 *   dispatcher, the calls that talk to the hub ([enroll], [syncNow], [stopSync]) are native
 *   async calls.
 * - Failures are the generated [StocksyncException] subclasses: [StocksyncException.Offline]
 *   (keep working, everything is saved), [StocksyncException.AuthRequired] (enroll again),
 *   [StocksyncException.Rule] (a business rule said no; nothing was written),
 *   [StocksyncException.NotFound], [StocksyncException.Invalid] (with per-field messages),
 *   [StocksyncException.Hub] and [StocksyncException.Storage]. Calls after [close] throw
 *   [IllegalStateException].
 * - [status] is a [StateFlow] for a status bar; [events] is a cold [Flow] of the node's events.
 *
 * ```
 * val node = InventoryNode.open(context.filesDir.resolve("stock.db").path)
 * node.enroll(hubUrl, enrollmentKey, DeviceRole.HANDHELD, "Scanner 7")
 * node.startSync()
 * node.receive("4006381333931", "A-01", BigDecimal(5))
 * node.close()
 * ```
 */
class InventoryNode private constructor(
    private val node: SyncNode,
    initialStatus: NodeStatus,
    private val io: CoroutineDispatcher,
) : AutoCloseable {

    companion object {
        /** How long [close] waits for background sync to stop. */
        private const val STOP_TIMEOUT_MS = 5_000L

        /**
         * Opens (or creates) the device's database at [path].
         *
         * @param ioDispatcher where the blocking SQLite calls run (tests may pass their own).
         * @throws StocksyncException.Storage when the file cannot be opened.
         */
        suspend fun open(path: String, ioDispatcher: CoroutineDispatcher = Dispatchers.IO): InventoryNode =
            withContext(ioDispatcher) {
                val node = SyncNode.open(path)
                try {
                    InventoryNode(node, node.status(), ioDispatcher)
                } catch (e: Throwable) {
                    node.destroy()
                    throw e
                }
            }

        /** The version of the native core library. */
        fun coreVersion(): String = dev.stocksync.ffi.coreVersion()
    }

    private val closed = AtomicBoolean(false)
    private val registrations = Registrations()

    @Volatile
    private var syncStarted = false

    private val _status = MutableStateFlow(initialStatus)

    /**
     * Sync state and this device's counts, for a status bar. Seeded when the node opens, then
     * updated from the node's `StatusChanged` events: background sync (see [startSync]), and the
     * core's announcements during every local write, [initDevice], [enroll] and [syncNow], so it
     * is current when they return (after an offline [syncNow], `lastError` says why). [enroll],
     * [syncNow] and [startSync] also read it again afterwards, for when they were cancelled.
     */
    val status: StateFlow<NodeStatus> = _status.asStateFlow()

    /** Feeds [status]; its own registration, not counted in [listenerCount]. */
    private val statusHandle = node.addListener(ForwardingListener { event ->
        if (event is SyncEvent.StatusChanged) _status.value = event.status
    })

    /**
     * Every event of the node (stock, product and conflict changes, op outcomes, status,
     * progress). Each collector registers its own native listener when it starts collecting and
     * unregisters it when it stops (cancellation included), so collectors do not leak; events
     * from before a collector started are not replayed. Closing the node completes the flow.
     */
    val events: Flow<SyncEvent> = callbackFlow {
        val registration = registrations.register(
            node,
            onEvent = { event -> trySend(event) },
            onNodeClosed = { channel.close() },
        )
        awaitClose { registration.close() }
    }.buffer(Channel.UNLIMITED)

    /** The `StockChanged` events: which (product id, location id) to re-read. */
    val stockChanges: Flow<SyncEvent.StockChanged> get() = events.filterIsInstance()

    /** The hub's answers to this device's ops (applied, duplicate, rejected, conflict). */
    val opOutcomes: Flow<OpOutcome> get() = events.filterIsInstance<SyncEvent.OpSettled>().map { it.outcome }

    /**
     * How many listeners registered through [events] collectors and [addListener] are open now.
     * For diagnostics and tests: it goes back down when a collector is cancelled.
     */
    val listenerCount: StateFlow<Int> get() = registrations.count

    /**
     * Registers a plain callback, for code that does not use coroutines. [onEvent] is called on a
     * native background thread: return quickly. Close the result to unregister (idempotent);
     * closing the node unregisters it too.
     */
    fun addListener(onEvent: (SyncEvent) -> Unit): AutoCloseable =
        registrations.register(live(), onEvent)

    // ---- device -------------------------------------------------------------------------------

    /**
     * Enrolls this device with a hub, using an enrollment key from the hub's admin. A device
     * already in use keeps its id and its unsent ops.
     *
     * @throws StocksyncException.Offline when the hub cannot be reached.
     * @throws StocksyncException.Hub when the hub refuses (e.g. an unknown enrollment key).
     */
    suspend fun enroll(hubUrl: String, enrollmentKey: String, role: DeviceRole, name: String): DeviceInfo =
        afterwardsRefreshStatus { live().enroll(hubUrl, enrollmentKey, role, name) }

    /** Makes this database a device without a hub (offline use). [enroll] does this itself. */
    suspend fun initDevice(device: NewDevice): DeviceInfo = write { it.initDevice(device) }

    /** The device this database belongs to; [StocksyncException.AuthRequired] before enrolling. */
    suspend fun device(): DeviceInfo = read { it.device() }

    // ---- catalog ------------------------------------------------------------------------------

    /** Adds a location. */
    suspend fun addLocation(code: String, name: String): Location = write { it.addLocation(code, name) }

    /** Every location. */
    suspend fun locations(): List<Location> = read { it.locations() }

    /** A location by code or id; [StocksyncException.NotFound] when there is none. */
    suspend fun location(codeOrId: String): Location = read { it.location(codeOrId) }

    /** Adds a product. */
    suspend fun addProduct(product: NewProduct): Product = write { it.addProduct(product) }

    /** Adds many products: all or none. Returns how many. */
    suspend fun importProducts(products: List<NewProduct>): Long = write { it.importProducts(products) }

    /** Changes a product's fields ([product] by barcode, SKU or id). */
    suspend fun editProduct(product: String, edits: List<ProductEdit>): Product =
        write { it.editProduct(product, edits) }

    /** Sets (or, with `null`, clears) a product's price. */
    suspend fun setPrice(product: String, price: Money?): Product =
        editProduct(product, listOf(ProductEdit.Price(price)))

    /** The scan lookup: a product by barcode, SKU or id; [StocksyncException.NotFound] if unknown. */
    suspend fun findProduct(code: String): Product = read { it.findProduct(code) }

    /** Every product. */
    suspend fun products(): List<Product> = read { it.products() }

    // ---- stock --------------------------------------------------------------------------------

    /**
     * Records a movement, or refuses it ([StocksyncException.Rule] with the rule's name, e.g.
     * `no_negative_inventory`) and writes nothing. Bad input is [StocksyncException.Invalid].
     * The builders below ([receive], [ship], …) cover the usual cases.
     */
    suspend fun record(movement: Movement): Recorded = write { it.record(movement) }

    /** Goods in: [quantity] of [product] (barcode, SKU or id) at [location] (code or id). */
    suspend fun receive(
        product: String,
        location: String,
        quantity: BigDecimal,
        reference: String? = null,
        unitCost: Money? = null,
        uom: Uom? = null,
    ): Recorded = record(
        Movement.Receive(
            product = product,
            location = location,
            quantity = quantity.toWire(),
            uom = uom,
            unitCost = unitCost,
            reference = reference,
        ),
    )

    /** Goods out; refused with rule `no_negative_inventory` when the stock is not there. */
    suspend fun ship(
        product: String,
        location: String,
        quantity: BigDecimal,
        reference: String? = null,
        uom: Uom? = null,
    ): Recorded = record(
        Movement.Ship(
            product = product,
            location = location,
            quantity = quantity.toWire(),
            uom = uom,
            reference = reference,
        ),
    )

    /** A correction by [delta] (negative to remove), with a reason. */
    suspend fun adjust(
        product: String,
        location: String,
        delta: BigDecimal,
        reason: ReasonCode,
        uom: Uom? = null,
    ): Recorded = record(
        Movement.Adjust(product = product, location = location, delta = delta.toWire(), reason = reason, uom = uom),
    )

    /** A stock count: on hand becomes [counted]. */
    suspend fun count(product: String, location: String, counted: BigDecimal, uom: Uom? = null): Recorded =
        record(Movement.Count(product = product, location = location, counted = counted.toWire(), uom = uom))

    /** Moves [quantity] from one location to another. */
    suspend fun transfer(product: String, from: String, to: String, quantity: BigDecimal, uom: Uom? = null): Recorded =
        record(Movement.Transfer(product = product, from = from, to = to, quantity = quantity.toWire(), uom = uom))

    /** Reserves [quantity]; the allocation's id is [Recorded.movementId]. */
    suspend fun allocate(product: String, location: String, quantity: BigDecimal, uom: Uom? = null): Recorded =
        record(Movement.Allocate(product = product, location = location, quantity = quantity.toWire(), uom = uom))

    /** Releases an allocation. */
    suspend fun release(allocationId: String): Recorded = record(Movement.Release(allocationId = allocationId))

    /** An allocation by id. */
    suspend fun allocation(id: String): Allocation = read { it.allocation(id) }

    /** Stock rows, optionally for one product and/or one location (codes or ids). */
    suspend fun stock(product: String? = null, location: String? = null): List<StockRow> =
        read { it.stock(product, location) }

    /** This device's ledger, newest first. */
    suspend fun ledger(product: String? = null, limit: Int = 100): List<LedgerRow> {
        require(limit >= 0) { "limit must not be negative" }
        return read { it.ledger(product, limit.toUInt()) }
    }

    /** The outbox, in push order. */
    suspend fun outbox(): List<OutboxRow> = read { it.outbox() }

    /** Consistency problems of the local database (empty when healthy). */
    suspend fun check(): List<String> = read { it.check() }

    // ---- conflicts ----------------------------------------------------------------------------

    /** The hub's conflicts as last pulled: open ones, or all of them. */
    suspend fun conflicts(all: Boolean = false): List<Conflict> = read { it.conflicts(all) }

    /**
     * Settles a conflict from this device (works offline; syncs like any change), e.g.
     * `ConflictResolution.UseValue("5.49 EUR")`. Returns the id of the op carrying the decision.
     */
    suspend fun resolveConflict(conflictId: String, resolution: ConflictResolution): String =
        write { it.resolveConflict(conflictId, resolution) }

    // ---- sync ---------------------------------------------------------------------------------

    /**
     * Pushes every unsent op and pulls every change now. [status] is refreshed afterwards, also
     * when it fails (then `status.value.lastError` says why).
     *
     * @throws StocksyncException.Offline when the hub cannot be reached: nothing is lost, the
     *   ops stay pending.
     */
    suspend fun syncNow(): SyncReport = afterwardsRefreshStatus { live().syncNow() }

    /**
     * Starts background sync: pushes soon after each write, follows the hub live, retries with
     * backoff; [status] follows it. Idempotent. [close] stops it.
     */
    suspend fun startSync() {
        afterwardsRefreshStatus { read { it.start() } }
        syncStarted = true
    }

    /** Stops background sync and waits until it has stopped. */
    suspend fun stopSync() {
        live().stop()
        syncStarted = false
        refreshStatus()
    }

    /** Another process wrote to this database: background sync pushes soon. */
    fun notifyLocalWrite() = live().notifyLocalWrite()

    /** Reads the status now (and publishes it to [status]). */
    suspend fun refreshStatus(): NodeStatus = read { it.status() }.also { _status.value = it }

    /** A support bundle as JSON (no credentials). */
    suspend fun diagnostics(): String = read { it.diagnostics() }

    // ---- lifetime -----------------------------------------------------------------------------

    /**
     * Unregisters every listener (completing [events] collectors), stops background sync if
     * [startSync] was called (blocking for at most a few seconds: from the main thread, call
     * [stopSync] first), and frees the native node. Idempotent.
     */
    override fun close() {
        if (!closed.compareAndSet(false, true)) return
        registrations.closeAll()
        statusHandle.release()
        if (syncStarted) {
            runBlocking { withTimeoutOrNull(STOP_TIMEOUT_MS) { node.stop() } }
            syncStarted = false
        }
        node.destroy()
    }

    // ---- plumbing -----------------------------------------------------------------------------

    private fun live(): SyncNode {
        check(!closed.get()) { "this InventoryNode is closed" }
        return node
    }

    private suspend fun <T> read(call: (SyncNode) -> T): T {
        val n = live()
        return withContext(io) { call(n) }
    }

    /**
     * A local write, on the I/O dispatcher. The core announces the new status (pending counts)
     * to [status] before the call returns, so there is nothing to read again here.
     */
    private suspend fun <T> write(call: (SyncNode) -> T): T = read(call)

    private suspend fun <T> afterwardsRefreshStatus(call: suspend () -> T): T {
        try {
            return call()
        } finally {
            // Even when cancelled or failed: the counts or last error may have changed. A status
            // that cannot be read leaves the previous one in place.
            if (!closed.get()) {
                withContext(NonCancellable + io) {
                    runCatching { node.status() }.onSuccess { _status.value = it }
                }
            }
        }
    }
}
