// A small SwiftUI scanner app on the Stocksync package (iOS 15+). Not an Xcode project: add
// these three files to an iOS App target and the package to the project, as README.md
// ("The SwiftUI sample") describes.

import SwiftUI

@main
struct StocksyncSampleApp: App {
    @StateObject private var model = ScannerModel()

    var body: some Scene {
        WindowGroup {
            ContentView(model: model)
                .task { await model.open() }
        }
    }
}
