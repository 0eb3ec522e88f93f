// swift-tools-version:5.9
// The Stocksync Swift package: the uniffi-generated bindings of the Rust core plus a thin
// async/await layer (target `Stocksync`), over the Rust static library packaged as
// `StocksyncFFI.xcframework` (built by `build-xcframework.sh`, not committed).
import PackageDescription

let package = Package(
    name: "Stocksync",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Stocksync", targets: ["Stocksync"]),
    ],
    targets: [
        // The Rust core (bindings/ffi) as a static library per platform, with the C header and
        // module map uniffi generates (C module `StocksyncFFI`).
        .binaryTarget(name: "StocksyncFFI", path: "StocksyncFFI.xcframework"),
        .target(
            name: "Stocksync",
            dependencies: ["StocksyncFFI"],
            path: "Sources/Stocksync",
            linkerSettings: [
                // A static library does not carry the Rust crates' link attributes: the TLS
                // certificate check (rustls-platform-verifier → security-framework) and the time
                // zone lookup use these Apple frameworks. The full list for a build:
                // `cargo rustc --release -p stocksync-ffi --target aarch64-apple-ios
                //  --crate-type staticlib -- --print native-static-libs`.
                .linkedFramework("Security"),
                .linkedFramework("CoreFoundation"),
            ]
        ),
    ]
)
