package dev.stocksync

import dev.stocksync.ffi.ConflictResolution
import dev.stocksync.ffi.DeviceRole
import dev.stocksync.ffi.Movement
import dev.stocksync.ffi.NewProduct
import dev.stocksync.ffi.OpOutcome
import dev.stocksync.ffi.OpStatus
import dev.stocksync.ffi.StockRow
import dev.stocksync.ffi.StocksyncException
import dev.stocksync.ffi.SyncEvent
import dev.stocksync.ffi.SyncReport
import dev.stocksync.ffi.SyncState
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancel
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import java.math.BigDecimal
import java.nio.file.Files

/**
 * bindings/SCENARIO.md on the JVM: the shipped Kotlin (generated bindings + the [InventoryNode]
 * layer) against the real `libstocksync_ffi` and a real hub child process. Two devices, A
 * (handheld) and B (tablet), each on its own SQLite file; step 10 adds C on a second hub that is
 * then stopped. The steps build on each other, so they run in one test, in order; a failure
 * names its step.
 */
class ScenarioTest {
    private companion object {
        const val SKU = "LAMP"
        const val BARCODE = "4006381333931"
        const val LOCATION = "A-01"
    }

    private val root: File = Files.createTempDirectory("stocksync-kotlin-").toFile()
    private val toClose = ArrayDeque<AutoCloseable>()

    /** Where the event collectors run; cancelled at the end. */
    private val collectors = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    @Test
    fun scenario() = runBlocking {
        try {
            run()
        } finally {
            collectors.cancel()
            while (toClose.isNotEmpty()) runCatching { toClose.removeLast().close() }
            root.deleteRecursively()
        }
    }

    private suspend fun open(name: String): InventoryNode =
        InventoryNode.open(File(root, "$name.db").path).also { toClose.addLast(it) }

    private fun hub(name: String): TestHub = TestHub.start(File(root, name)).also { toClose.addLast(it) }

    private suspend fun run() {
        val hub = hub("hub")
        val a = open("A")
        val b = open("B")
        lateinit var recorderA: Recorder<SyncEvent>
        lateinit var recorderB: Recorder<SyncEvent>
        var productId = ""
        var locationId = ""

        step(1, "open") {
            for ((name, node) in listOf("A" to a, "B" to b)) {
                assertEquals("$name: seeded status", SyncState.AUTH_REQUIRED, node.status.value.state)
                assertFalse("$name: enrolled", node.status.value.enrolled)
                assertEquals("$name: status()", SyncState.AUTH_REQUIRED, node.refreshStatus().state)
                expectThrows<StocksyncException.AuthRequired>("$name.device()") { node.device() }
            }
        }

        step(2, "enroll") {
            val (deviceA, deviceB) = coroutineScope {
                listOf(
                    async { a.enroll(hub.baseUrl, hub.enrollmentKey, DeviceRole.HANDHELD, "Handheld A") },
                    async { b.enroll(hub.baseUrl, hub.enrollmentKey, DeviceRole.TABLET, "Tablet B") },
                ).awaitAll()
            }
            assertNotEquals("device ids", deviceA.deviceId, deviceB.deviceId)
            assertEquals("A's organization", hub.organizationId, deviceA.orgId)
            assertEquals("B's organization", deviceA.orgId, deviceB.orgId)
            assertEquals(DeviceRole.HANDHELD, deviceA.role)
            assertEquals(DeviceRole.TABLET, deviceB.role)
            assertEquals(deviceA, a.device())
            assertEquals(deviceB, b.device())
            for ((name, node) in listOf("A" to a, "B" to b)) {
                val status = node.status.value // refreshed by enroll(), no manual read
                assertTrue("$name: enrolled in $status", status.enrolled)
                assertEquals("$name: hub url", hub.baseUrl.trimEnd('/'), status.hubUrl?.trimEnd('/'))
                assertNotEquals("$name: state", SyncState.AUTH_REQUIRED, status.state)
            }
        }

        step(3, "catalog") {
            val location = a.addLocation(LOCATION, "Aisle 1, shelf 1")
            val product = a.addProduct(
                NewProduct(sku = SKU, name = "Head lamp", barcode = BARCODE, price = money(BigDecimal("4.99"), "EUR")),
            )
            assertEquals(LOCATION, location.code)
            assertEquals(BARCODE, product.barcode)
            productId = product.id
            locationId = location.id

            recorderA = Recorder.start("A's listener", a, a.events, collectors)
            recorderB = Recorder.start("B's listener", b, b.events, collectors)

            a.syncNow()
            b.syncNow()
            val scanned = b.findProduct(BARCODE)
            assertEquals(product.id, scanned.id)
            assertEquals(SKU, scanned.sku)
            assertEquals("Head lamp", scanned.name)
            assertEquals(0, BigDecimal("4.99").compareTo(scanned.price?.decimalAmount))
            assertEquals("EUR", scanned.price?.currency)
            assertEquals(location.id, b.location(LOCATION).id)
        }

        step(4, "typed errors, locally") {
            val notFound = expectThrows<StocksyncException.NotFound>("findProduct(nope)") { a.findProduct("nope") }
            assertEquals("nope", notFound.key)
            assertEquals("product", notFound.entity)

            val invalid = expectThrows<StocksyncException.Invalid>("quantity abc") {
                a.record(Movement.Receive(product = SKU, location = LOCATION, quantity = "abc"))
            }
            assertTrue("fields name quantity: ${invalid.fields}", invalid.messagesFor("quantity").isNotEmpty())

            val outboxBefore = a.outbox()
            val stockBefore = a.stock(SKU, LOCATION)
            val pendingBefore = a.status.value.pending
            val rule = expectThrows<StocksyncException.Rule>("ship 1 from empty stock") {
                a.ship(SKU, LOCATION, BigDecimal.ONE)
            }
            assertEquals("no_negative_inventory", rule.rule)
            assertTrue("the rule's message", rule.reason.isNotBlank())
            assertEquals(rule.reason, rule.userMessage)
            assertEquals("nothing was written (outbox)", outboxBefore, a.outbox())
            assertEquals("nothing was written (stock)", stockBefore, a.stock(SKU, LOCATION))
            assertEquals("pending count", pendingBefore, a.status.value.pending)
        }

        step(5, "record, then sync") {
            val markB = recorderB.mark()
            val outcomesA = Recorder.start("A's opOutcomes", a, a.opOutcomes, collectors)
            val stockB = Recorder.start("B's stockChanges", b, b.stockChanges, collectors)

            val received = a.receive(BARCODE, LOCATION, BigDecimal(5))
            val row = row(a)
            assertQuantity("A on hand before sync", 5, row.onHandQuantity)
            assertQuantity("A pending before sync", 5, row.pendingQuantity)
            assertTrue("status.pending after the write: ${a.status.value}", a.status.value.pending >= 1)
            assertEquals(listOf("pending"), a.outbox().filter { it.opId == received.opId }.map { it.state })

            val report = a.syncNow()
            assertTrue("applied in $report", report.applied >= 1)
            assertEquals(OpStatus.APPLIED, outcomeOf(report, received.opId).status)
            recorderA.await("OpSettled APPLIED for ${received.opId}") { it.settled(received.opId, OpStatus.APPLIED) }
            outcomesA.await("the outcome of ${received.opId}") {
                it.opId == received.opId && it.status == OpStatus.APPLIED
            }
            assertQuantity("A pending after sync", 0, row(a).pendingQuantity)
            assertEquals("status.pending after sync", 0L, a.status.value.pending)

            b.syncNow()
            assertQuantity("B on hand", 5, row(b).onHandQuantity)
            recorderB.await("StockChanged for ($SKU, $LOCATION)", since = markB) {
                it is SyncEvent.StockChanged && it.productId == productId && it.locationId == locationId
            }
            stockB.await("a stockChanges item for ($SKU, $LOCATION)") {
                it.productId == productId && it.locationId == locationId
            }
            outcomesA.stop()
            stockB.stop()
        }

        step(6, "async") {
            val reports = coroutineScope { listOf(async { a.syncNow() }, async { b.syncNow() }).awaitAll() }
            for (report in reports) {
                assertEquals("rejected in $report", 0L, report.rejected)
                assertEquals("parked in $report", 0L, report.parked)
            }
            assertQuantity("A on hand", 5, row(a).onHandQuantity)
            assertQuantity("B on hand", 5, row(b).onHandQuantity)
        }

        step(7, "a rule rejection at the hub") {
            val shippedA = a.ship(BARCODE, LOCATION, BigDecimal(4))
            val shippedB = b.ship(BARCODE, LOCATION, BigDecimal(4))
            assertQuantity("A's own view", 1, row(a).onHandQuantity)
            assertQuantity("B's own view", 1, row(b).onHandQuantity)

            val reportA = a.syncNow()
            assertTrue("applied in $reportA", reportA.applied >= 1)
            assertEquals(OpStatus.APPLIED, outcomeOf(reportA, shippedA.opId).status)

            val reportB = b.syncNow()
            assertEquals("rejected in $reportB", 1L, reportB.rejected)
            val outcome = outcomeOf(reportB, shippedB.opId)
            assertEquals(OpStatus.REJECTED, outcome.status)
            assertEquals("no_negative_inventory", outcome.rule)
            val event = recorderB.await("OpSettled REJECTED for ${shippedB.opId}") {
                it.settled(shippedB.opId, OpStatus.REJECTED)
            } as SyncEvent.OpSettled
            assertEquals("no_negative_inventory", event.outcome.rule)
            assertQuantity("B corrected", 1, row(b).onHandQuantity)
            assertQuantity("B pending", 0, row(b).pendingQuantity)

            // The hub also opened a `business_rule` conflict for the refused op (the outcome's
            // conflict id), open on both devices: B dismisses it and syncs.
            val conflictId = outcome.conflictId ?: failWith("no conflict id in $outcome")
            val ruleConflict = b.conflicts().singleOrNull { it.id == conflictId }
                ?: failWith("the rejection's conflict $conflictId among B's open ones: ${b.conflicts()}")
            assertEquals("business_rule", ruleConflict.kind)
            assertEquals("no_negative_inventory", ruleConflict.rule)
            a.syncNow()
            assertEquals("open on A too", listOf(conflictId), a.conflicts().map { it.id })
            b.resolveConflict(conflictId, ConflictResolution.Dismiss)
            b.syncNow()
            a.syncNow()
            assertEquals("B: open conflicts after dismissing", emptyList<Any>(), b.conflicts())
            assertEquals("A: open conflicts after dismissing", emptyList<Any>(), a.conflicts())
            assertQuantity("B after dismissing", 1, row(b).onHandQuantity)
        }

        step(8, "a conflict") {
            a.setPrice(SKU, money(BigDecimal("5.49"), "EUR"))
            b.setPrice(SKU, money(BigDecimal("5.29"), "EUR"))
            a.syncNow()
            val report = b.syncNow()
            val conflicting = report.outcomes.filter { it.status == OpStatus.CONFLICT }
            assertEquals("CONFLICT outcomes in ${report.outcomes}", 1, conflicting.size)
            val conflictId = conflicting.single().conflictId
            assertFalse("a conflict id", conflictId.isNullOrEmpty())

            val open = b.conflicts()
            assertEquals(listOf(conflictId), open.map { it.id })
            assertEquals("price", open.single().field)
            assertEquals("open", open.single().status)
            assertEquals("B's status counts it", 1L, b.status.value.conflicts)

            b.resolveConflict(conflictId!!, ConflictResolution.UseValue("5.49 EUR"))
            b.syncNow()
            a.syncNow()
            for ((name, node) in listOf("A" to a, "B" to b)) {
                assertEquals("$name: open conflicts", emptyList<Any>(), node.conflicts())
                assertEquals("$name: status.conflicts", 0L, node.status.value.conflicts)
                val price = node.findProduct(SKU).price
                assertEquals("$name: price", 0, BigDecimal("5.49").compareTo(price?.decimalAmount))
                assertEquals("$name: currency", "EUR", price?.currency)
            }
        }

        step(9, "listener handle") {
            // A flow collector stops its listener when cancelled (the count goes back down) …
            val base = a.listenerCount.value
            recorderA.stop()
            assertEquals("A's listeners after cancelling a collector", base - 1, a.listenerCount.value)
            // … and a plain callback's handle stops delivery when closed. A second, open
            // collector proves A did get a stock change afterwards: the node calls its listeners
            // one after another for each event, before syncNow() returns.
            val closedGot = java.util.Collections.synchronizedList(mutableListOf<SyncEvent>())
            val handle = a.addListener { closedGot.add(it) }
            val stillOpen = Recorder.start("A (still open)", a, a.events, collectors)
            handle.close()
            handle.close() // idempotent
            assertEquals("A's listeners", base, a.listenerCount.value)

            b.receive(SKU, LOCATION, BigDecimal(2))
            b.syncNow()
            a.syncNow()
            assertQuantity("A on hand", 3, row(a).onHandQuantity)
            stillOpen.await("StockChanged for ($SKU, $LOCATION)") {
                it is SyncEvent.StockChanged && it.productId == productId && it.locationId == locationId
            }
            assertEquals("events delivered to the closed listener", emptyList<SyncEvent>(), closedGot.toList())
            stillOpen.stop()
        }

        val c = open("C")
        step(10, "offline") {
            val second = hub("hub-2")
            val device = c.enroll(second.baseUrl, second.enrollmentKey, DeviceRole.HANDHELD, "Handheld C")
            assertEquals(second.organizationId, device.orgId)
            c.addLocation("C-01", "Back room")
            c.addProduct(NewProduct(sku = "TORCH", name = "Torch", barcode = "5901234123457"))
            second.close()

            val received = c.receive("5901234123457", "C-01", BigDecimal(3))
            assertQuantity("C on hand", 3, row(c, "TORCH", "C-01").onHandQuantity)
            val offline = expectThrows<StocksyncException.Offline>("syncNow with the hub stopped") { c.syncNow() }
            assertTrue("a reason", offline.reason.isNotBlank())

            assertEquals(listOf("pending"), c.outbox().filter { it.opId == received.opId }.map { it.state })
            val status = c.status.value // refreshed by the failed syncNow(), no manual read
            assertTrue("pending in $status", status.pending >= 1)
            val lastError = status.lastError
            assertFalse("last_error in $status", lastError.isNullOrBlank())
            assertTrue("'${offline.reason}' in '$lastError'", lastError!!.contains(offline.reason))
            assertQuantity("C on hand, still pending", 3, row(c, "TORCH", "C-01").onHandQuantity)
        }

        step(11, "healthy") {
            for ((name, node) in listOf("A" to a, "B" to b, "C" to c)) {
                assertEquals("$name: check()", emptyList<String>(), node.check())
            }
        }

        // Beyond SCENARIO.md: what the layer adds on top of the generated API.
        step(12, "layer: background sync feeds status; close() ends collectors and the node") {
            a.startSync()
            withTimeoutOrNull(15_000) {
                a.status.first { it.state == SyncState.LIVE || it.state == SyncState.IDLE }
            } ?: failWith("A's status never became LIVE or IDLE from StatusChanged events: ${a.status.value}")

            val tail = Recorder.start("A (open at close)", a, a.events, collectors)
            val started = System.nanoTime()
            a.close()
            val closeMs = (System.nanoTime() - started) / 1_000_000
            assertTrue("close() took $closeMs ms", closeMs < 6_000)
            tail.awaitCompletion() // completed by close(), not cancelled by the test
            assertEquals("A's listeners after close()", 0, a.listenerCount.value)
            a.close() // idempotent
            expectThrows<IllegalStateException>("a call after close()") { a.device() }
        }
    }

    // ---- helpers --------------------------------------------------------------------------------

    private suspend fun <T> step(number: Int, title: String, body: suspend () -> T): T {
        val started = System.nanoTime()
        try {
            return body().also {
                println("  step $number ($title): ok, ${(System.nanoTime() - started) / 1_000_000} ms")
            }
        } catch (e: Throwable) {
            throw AssertionError("step $number ($title): $e", e)
        }
    }

    private suspend inline fun <reified E : Throwable> expectThrows(what: String, body: () -> Unit): E {
        try {
            body()
        } catch (e: Throwable) {
            if (e is E) return e
            throw AssertionError("$what: expected ${E::class.simpleName}, got $e", e)
        }
        failWith("$what: expected ${E::class.simpleName}, nothing was thrown")
    }

    private fun failWith(message: String): Nothing = throw AssertionError(message)

    private suspend fun row(node: InventoryNode, product: String = SKU, location: String = LOCATION): StockRow {
        val rows = node.stock(product, location)
        assertEquals("one stock row for ($product, $location): $rows", 1, rows.size)
        return rows.single()
    }

    private fun assertQuantity(what: String, expected: Int, actual: BigDecimal) =
        assertEquals("$what: $actual", 0, BigDecimal(expected).compareTo(actual))

    private fun outcomeOf(report: SyncReport, opId: String): OpOutcome {
        val found = report.outcomes.filter { it.opId == opId }
        assertEquals("one outcome for $opId in $report", 1, found.size)
        return found.single()
    }

    private fun SyncEvent.settled(opId: String, status: OpStatus) =
        this is SyncEvent.OpSettled && outcome.opId == opId && outcome.status == status
}
