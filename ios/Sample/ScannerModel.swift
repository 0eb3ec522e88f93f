// The sample's view model: scan a code, see the product and its stock, receive or ship, and a
// status bar fed by `statusUpdates()`. Every node call is either a Rust `async` call
// (`enroll`, `syncNow`) or a blocking local call run through `background { … }`, so nothing
// blocks the main actor. See README.md ("The SwiftUI sample") for how to run it.

import Foundation
import Stocksync

@MainActor
final class ScannerModel: ObservableObject {
    // Inputs (bound to text fields).
    @Published var code = ""
    @Published var quantity = "1"
    @Published var location = "A-01"
    @Published var hubURL = "http://192.168.1.10:8080"
    @Published var enrollmentKey = ""

    // What the screen shows.
    @Published private(set) var product: Product?
    @Published private(set) var stock: [StockRow] = []
    @Published private(set) var status: NodeStatus?
    @Published private(set) var notice: Notice?
    @Published private(set) var busy = false

    /// A line under the form: what just happened, or what went wrong.
    struct Notice: Equatable {
        enum Tone { case done, saved, problem }

        var text: String
        var tone: Tone
    }

    enum Direction { case receive, ship }

    private var node: SyncNode?
    private var followers: [Task<Void, Never>] = []

    deinit {
        for task in followers {
            task.cancel()
        }
    }

    // MARK: - Lifecycle

    /// Opens the device's database, follows its status and events, and starts background sync
    /// if the device is enrolled.
    func open() async {
        guard node == nil else { return }
        do {
            let path = try Self.databasePath()
            let node = try await SyncNode.openInBackground(path: path)
            self.node = node
            follow(node)
            let status = try await node.background { try $0.status() }
            self.status = status
            if status.enrolled {
                try await node.background { try $0.start() }
            }
        } catch {
            show(error)
        }
    }

    /// Enrolls the device with the hub (a Rust `async` call), then starts background sync.
    func enroll() async {
        guard let node else { return }
        let url = self.hubURL.trimmingCharacters(in: .whitespacesAndNewlines)
        let key = self.enrollmentKey.trimmingCharacters(in: .whitespacesAndNewlines)
        busy = true
        defer { busy = false }
        do {
            let device = try await node.enroll(
                hubUrl: url,
                enrollmentKey: key,
                role: .handheld,
                name: ProcessInfo.processInfo.hostName
            )
            try await node.background { try $0.start() }
            enrollmentKey = ""
            notice = Notice(text: "Enrolled as device \(device.deviceId)", tone: .done)
        } catch {
            show(error)
        }
    }

    private func follow(_ node: SyncNode) {
        followers.append(Task { [weak self] in
            for await status in node.statusUpdates() {
                self?.status = status
            }
        })
        followers.append(Task { [weak self] in
            for await event in node.events() {
                self?.handle(event)
            }
        })
    }

    private func handle(_ event: SyncEvent) {
        switch event {
        case .stockChanged(let productId, _), .productChanged(let productId):
            // Pulled from the hub, or a rejected op withdrawn: refresh what is on screen.
            if productId == product?.id {
                Task { await refreshProduct() }
            }
        case .opSettled(let outcome):
            if outcome.status == .rejected {
                let why = outcome.message ?? outcome.rule ?? "refused"
                notice = Notice(text: "The hub refused an earlier \(outcome.kind): \(why)", tone: .problem)
            }
        default:
            break
        }
    }

    // MARK: - Scanning and recording

    /// The scan: a hardware scanner types the code and Return into the code field.
    func lookUp() async {
        let scanned = self.code.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let node, !scanned.isEmpty else { return }
        do {
            product = try await node.background { try $0.findProduct(code: scanned) }
            notice = nil
            await refreshStock()
        } catch {
            product = nil
            stock = []
            show(error)
        }
    }

    /// Receives or ships `quantity` of the scanned product at `location`. Recorded on the device
    /// at once (offline too); background sync sends it.
    func record(_ direction: Direction) async {
        guard let node, let product else { return }
        let movement: Movement
        switch direction {
        case .receive:
            movement = .receive(product: product.id, location: location, quantity: quantity)
        case .ship:
            movement = .ship(product: product.id, location: location, quantity: quantity)
        }
        busy = true
        defer { busy = false }
        do {
            _ = try await node.background { try $0.record(movement: movement) }
            let verb = direction == .receive ? "Received" : "Shipped"
            notice = Notice(text: "\(verb) \(quantity) × \(product.name)", tone: .done)
        } catch {
            show(error)
        }
        await refreshStock()
    }

    /// Pushes and pulls now (a Rust `async` call); background sync does this by itself.
    func syncNow() async {
        guard let node else { return }
        busy = true
        defer { busy = false }
        do {
            let report = try await node.syncNow()
            notice = Notice(text: "Synced: \(report.applied) sent, \(report.pulled) received", tone: .done)
        } catch {
            show(error)
        }
        await refreshStock()
    }

    // MARK: - Reading

    /// On hand at the chosen location, as this device sees it (including unsent movements).
    var onHandHere: String {
        stock.first { $0.locationCode == location }?.onHand ?? "0"
    }

    var needsEnrollment: Bool {
        status.map { !$0.enrolled || $0.state == .authRequired } ?? false
    }

    var pendingCount: Int64 {
        status?.pending ?? 0
    }

    /// The status bar's words for the sync state.
    var syncText: String {
        guard let status else { return "Opening…" }
        switch status.state {
        case .stopped: return "Sync off"
        case .connecting: return "Connecting…"
        case .syncing: return "Syncing…"
        case .live: return "Live"
        case .idle: return "Up to date"
        case .offline: return "Offline"
        case .backingOff: return "Offline, retrying"
        case .circuitOpen: return "Hub unavailable, retrying later"
        case .authRequired: return "Not enrolled"
        }
    }

    private func refreshProduct() async {
        guard let node, let id = product?.id else { return }
        if let fresh = try? await node.background({ try $0.findProduct(code: id) }) {
            product = fresh
        }
        await refreshStock()
    }

    private func refreshStock() async {
        guard let node, let id = product?.id else { return }
        do {
            stock = try await node.background { try $0.stock(product: id, location: nil) }
        } catch {
            show(error)
        }
    }

    // MARK: - Errors

    private func show(_ error: Error) {
        notice = Self.notice(for: error)
    }

    /// What to tell the user, by error case.
    static func notice(for error: Error) -> Notice {
        guard let error = error as? StocksyncError else {
            return Notice(text: error.localizedDescription, tone: .problem)
        }
        switch error {
        case .Rule(_, let reason):
            // e.g. no_negative_inventory: the rule's own words; nothing was written.
            return Notice(text: reason, tone: .problem)
        case .Offline:
            // Everything is on the device already; background sync sends it later.
            return Notice(text: "Saved on this device, will sync when the hub is reachable.", tone: .saved)
        case .NotFound(let entity, let key):
            return Notice(text: "No \(entity) “\(key)”.", tone: .problem)
        case .Invalid(let reason, let fields):
            let lines = fields.map { "\($0.field): \($0.messages.joined(separator: ", "))" }
            return Notice(text: lines.isEmpty ? reason : lines.joined(separator: "\n"), tone: .problem)
        case .AuthRequired:
            return Notice(text: "This device needs to be enrolled with the hub.", tone: .problem)
        case .Hub(let status, let code, let reason):
            return Notice(text: "The hub refused (\(code), HTTP \(status)): \(reason)", tone: .problem)
        case .Storage(let reason):
            return Notice(text: "Local storage failed: \(reason)", tone: .problem)
        }
    }

    private static func databasePath() throws -> String {
        let folder = try FileManager.default.url(
            for: .applicationSupportDirectory,
            in: .userDomainMask,
            appropriateFor: nil,
            create: true
        )
        return folder.appendingPathComponent("stocksync.db").path
    }
}
