// Hand-written: the async/await face of the generated bindings. Everything else is used as
// generated (Generated/Stocksync.swift, from `bash scripts/bindings.sh`; never edit it):
// `SyncNode.open(path:)`, the records and enums, `StocksyncError`, and the Rust `async` calls,
// which are already `async` here (`enroll(hubUrl:enrollmentKey:role:name:)`, `syncNow()`, `stop()`).
//
// What this file adds:
// - `events()` and `statusUpdates()`: the listener API as `AsyncStream`s that close their
//   `ListenerHandle` when the stream ends (task cancelled, loop left, stream dropped);
// - `background { try $0.… }` and `openInBackground(path:)`: the blocking local calls (SQLite on
//   the device, microseconds to milliseconds) run off the caller's actor, so a `@MainActor` view
//   model can `await` them.

import Foundation

extension SyncNode {
    /// Every event of this node (stock, product and conflict changes, op outcomes, status,
    /// progress), in the order the node sends them.
    ///
    ///     for await event in node.events() {
    ///         if case .opSettled(let outcome) = event { … }
    ///     }
    ///
    /// The listener is registered now and closed when the stream terminates: when the task
    /// iterating it is cancelled, when the loop is left, or when the stream is dropped. Events
    /// come from a sync thread; a `for await` loop on the main actor receives them there.
    /// Unconsumed events are buffered (all of them by default).
    public func events(
        bufferingPolicy: AsyncStream<SyncEvent>.Continuation.BufferingPolicy = .unbounded
    ) -> AsyncStream<SyncEvent> {
        AsyncStream(SyncEvent.self, bufferingPolicy: bufferingPolicy) { continuation in
            let handle = self.addListener(listener: EventRelay(continuation))
            continuation.onTermination = { _ in handle.close() }
        }
    }

    /// The status for a status bar: the current one first (read off the caller's actor), then
    /// each `SyncEvent.statusChanged`. Only the newest is kept for a slow consumer.
    ///
    /// Status changes are announced by background sync (`start()`): its state changes, with the
    /// counts as they are then. A local write (`record`, `resolveConflict`, …) or a `syncNow()`
    /// without background sync announces nothing, so read `status()` after those when the
    /// pending count on screen matters (the sample does).
    public func statusUpdates() -> AsyncStream<NodeStatus> {
        AsyncStream(NodeStatus.self, bufferingPolicy: .bufferingNewest(1)) { continuation in
            let relay = StatusRelay(continuation)
            let handle = self.addListener(listener: relay)
            continuation.onTermination = { _ in handle.close() }
            Task.detached(priority: .utility) { [self] in
                if let current = try? self.status() {
                    relay.first(current)
                }
            }
        }
    }

    /// Runs blocking calls of this node on a background thread and returns their result, e.g.
    /// from a `@MainActor` view model:
    ///
    ///     let product = try await node.background { try $0.findProduct(code: code) }
    ///
    /// The call runs to completion even if the awaiting task is cancelled (local calls are
    /// short; they are not interruptible). Errors are the generated `StocksyncError`.
    public func background<T: Sendable>(
        priority: TaskPriority = .userInitiated,
        _ call: @escaping @Sendable (SyncNode) throws -> T
    ) async throws -> T {
        try await Task.detached(priority: priority) { try call(self) }.value
    }

    /// `SyncNode.open(path:)` on a background thread (it creates or migrates the database file).
    public static func openInBackground(path: String) async throws -> SyncNode {
        try await Task.detached(priority: .userInitiated) { try SyncNode.open(path: path) }.value
    }
}

/// Yields each event into a stream. Called by the core on its sync threads;
/// `AsyncStream.Continuation` is thread-safe.
private final class EventRelay: SyncListener, @unchecked Sendable {
    private let continuation: AsyncStream<SyncEvent>.Continuation

    init(_ continuation: AsyncStream<SyncEvent>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: SyncEvent) {
        continuation.yield(event)
    }
}

/// Yields each announced status into a stream, and the status read when the stream began
/// unless an announcement already overtook it (a read racing an announcement must not put an
/// older status on screen after a newer one).
private final class StatusRelay: SyncListener, @unchecked Sendable {
    private let continuation: AsyncStream<NodeStatus>.Continuation
    private let lock = NSLock()
    private var announced = false

    init(_ continuation: AsyncStream<NodeStatus>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: SyncEvent) {
        guard case .statusChanged(let status) = event else { return }
        lock.lock()
        defer { lock.unlock() }
        announced = true
        continuation.yield(status)
    }

    /// The status read when the stream began.
    func first(_ status: NodeStatus) {
        lock.lock()
        defer { lock.unlock() }
        if !announced {
            continuation.yield(status)
        }
    }
}
