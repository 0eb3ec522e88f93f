package dev.stocksync

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.Assert.fail

/**
 * Collects a flow of [node] in [scope] and keeps what arrived, for assertions that wait with a
 * deadline. [start] returns once the node has registered the collector's native listener.
 */
class Recorder<T> private constructor(private val name: String) {
    private val seen = MutableStateFlow<List<T>>(emptyList())
    private lateinit var job: Job

    companion object {
        /** Starts collecting [flow] (a flow of [node]) and waits until its listener is registered. */
        suspend fun <T> start(name: String, node: InventoryNode, flow: Flow<T>, scope: CoroutineScope): Recorder<T> {
            val before = node.listenerCount.value
            val recorder = Recorder<T>(name)
            recorder.job = scope.launch { flow.collect { item -> recorder.seen.update { it + item } } }
            withTimeoutOrNull(5_000) { node.listenerCount.first { it > before } }
                ?: fail("$name: the collector's listener was not registered within 5 s")
            return recorder
        }
    }

    /** A position to look from later. */
    fun mark(): Int = seen.value.size

    /** What arrived after [mark]. */
    fun since(mark: Int): List<T> = seen.value.drop(mark)

    /** Waits (at most [timeoutMs]) for an item after [since] that matches; fails naming [what]. */
    suspend fun await(what: String, since: Int = 0, timeoutMs: Long = 10_000, match: (T) -> Boolean): T {
        withTimeoutOrNull(timeoutMs) { seen.first { items -> items.drop(since).any(match) } }
            ?: fail("$name: no $what within $timeoutMs ms; got ${since(since)}")
        return since(since).first(match)
    }

    /** Whether the collector has finished (the flow completed or was cancelled). */
    val isDone: Boolean get() = job.isCompleted

    /** Waits (at most [timeoutMs]) for the flow to complete by itself. */
    suspend fun awaitCompletion(timeoutMs: Long = 5_000) {
        withTimeoutOrNull(timeoutMs) { job.join() } ?: fail("$name: the flow did not complete within $timeoutMs ms")
    }

    /** Cancels the collector and waits until it has ended (its listener is unregistered by then). */
    suspend fun stop() = job.cancelAndJoin()
}
