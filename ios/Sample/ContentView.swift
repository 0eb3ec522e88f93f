// The scanner screen: a code field (a hardware scanner types into it and presses Return), the
// product with its stock, Receive / Ship with a quantity, and a status bar at the bottom.

import Stocksync
import SwiftUI

struct ContentView: View {
    @ObservedObject var model: ScannerModel
    @FocusState private var scanning: Bool

    var body: some View {
        NavigationView {
            Form {
                if model.needsEnrollment {
                    enrollment
                }
                scan
                if let product = model.product {
                    details(of: product)
                    movement
                }
                if let notice = model.notice {
                    Section {
                        Text(notice.text)
                            .foregroundColor(color(of: notice.tone))
                    }
                }
            }
            .navigationTitle("Stocksync")
            .toolbar {
                Button("Sync") {
                    Task { await model.syncNow() }
                }
                .disabled(model.busy || model.needsEnrollment)
            }
            .safeAreaInset(edge: .bottom) {
                statusBar
            }
        }
        .navigationViewStyle(.stack)
        .onAppear { scanning = true }
    }

    private var enrollment: some View {
        Section("Enroll this device") {
            TextField("Hub URL", text: $model.hubURL)
                .keyboardType(.URL)
                .textInputAutocapitalization(.never)
                .autocorrectionDisabled()
            SecureField("Enrollment key", text: $model.enrollmentKey)
            Button("Enroll") {
                Task { await model.enroll() }
            }
            .disabled(model.busy || model.enrollmentKey.isEmpty)
        }
    }

    private var scan: some View {
        Section("Scan") {
            TextField("Barcode or SKU", text: $model.code)
                .focused($scanning)
                .textInputAutocapitalization(.never)
                .autocorrectionDisabled()
                .submitLabel(.search)
                .onSubmit {
                    Task { await model.lookUp() }
                }
            TextField("Location", text: $model.location)
                .textInputAutocapitalization(.characters)
                .autocorrectionDisabled()
        }
    }

    private func details(of product: Product) -> some View {
        Section(product.name) {
            row("SKU", product.sku)
            if let barcode = product.barcode {
                row("Barcode", barcode)
            }
            row("On hand at \(model.location)", model.onHandHere)
            ForEach(model.stock, id: \.locationId) { line in
                row(line.locationCode, pending(line))
            }
        }
    }

    private var movement: some View {
        Section("Quantity") {
            TextField("Quantity", text: $model.quantity)
                .keyboardType(.decimalPad)
            HStack {
                Button("Receive") {
                    Task { await model.record(.receive) }
                }
                .buttonStyle(.borderedProminent)
                Spacer()
                Button("Ship") {
                    Task { await model.record(.ship) }
                }
                .buttonStyle(.bordered)
            }
            .disabled(model.busy)
        }
    }

    private var statusBar: some View {
        HStack {
            Circle()
                .fill(model.pendingCount > 0 ? Color.orange : Color.green)
                .frame(width: 8, height: 8)
            Text(model.syncText)
            Spacer()
            Text("\(model.pendingCount) pending")
                .monospacedDigit()
        }
        .font(.footnote)
        .padding(.horizontal)
        .padding(.vertical, 8)
        .background(.bar)
    }

    private func row(_ label: String, _ value: String) -> some View {
        HStack {
            Text(label)
            Spacer()
            Text(value)
                .foregroundColor(.secondary)
        }
    }

    /// "5", or "5 (2 not yet synced)" when this device has unsent movements there.
    private func pending(_ line: StockRow) -> String {
        line.pending == "0" ? line.onHand : "\(line.onHand) (\(line.pending) not yet synced)"
    }

    private func color(of tone: ScannerModel.Notice.Tone) -> Color {
        switch tone {
        case .done: return .primary
        case .saved: return .orange
        case .problem: return .red
        }
    }
}
