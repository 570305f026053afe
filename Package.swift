// swift-tools-version:6.0
// FedHost: federated learning on small sensor models, with strategies loaded as C-ABI plugins.
// No package dependencies: plugins are loaded with dlopen through Glibc.
import PackageDescription

/// Flags measured to matter for the training kernels (see docs/performance.md):
/// errno-free sqrt (otherwise every lane calls sqrtf@plt) and a host-specific target
/// (FMA and AVX; otherwise SIMD FMAs become fmaf@plt calls). Builds are host-specific.
let fastMath: [SwiftSetting] = [
  .unsafeFlags(["-Xcc", "-fno-math-errno", "-target-cpu", "native"])
]

/// Plugins export exactly one symbol, `fedhost_plugin_entry` (see Plugins/exports.map).
let pluginExports: [LinkerSetting] = [
  .unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/exports.map"])
]

/// The strategy library: one Swift plugin per directory under Plugins/, all built the same way.
let strategyPlugins = ["FedAvgM", "FedAdam", "FedYogi", "FedAdagrad", "FedMedian", "FedTrimmedAvg", "Krum", "MultiKrum", "Bulyan", "QFedAvg", "DPFedAvg", "SCAFFOLD", "PowerOfChoice"]

let package = Package(
  name: "FedHost",
  products: [
    .executable(name: "host", targets: ["Host"]),
    .library(name: "FedAvg", type: .dynamic, targets: ["FedAvg"]),
    .library(name: "FedProx", type: .dynamic, targets: ["FedProx"]),
    .library(name: "SimilarityAware", type: .dynamic, targets: ["SimilarityAware"]),
    .library(name: "MEFLVariance", type: .dynamic, targets: ["MEFLVariance"]),
    // The engine as a C library for other processes and languages (bridges/flower's ClientApp).
    .library(name: "FedHostEngine", type: .dynamic, targets: ["FedHostEngine"]),
  ] + strategyPlugins.map { .library(name: $0, type: .dynamic, targets: [$0]) },
  targets: [
    // The contract: one C header, nothing else. Host and plugins both import it.
    .target(name: "PluginAPI", path: "Sources/PluginAPI"),
    // Boilerplate shared by plugins written in Swift (entry symbol, error capture, config parsing).
    // Linked statically into each plugin, never into the host: only C types cross the boundary.
    .target(name: "PluginKit", dependencies: ["PluginAPI"], path: "Sources/PluginKit",
            swiftSettings: fastMath),
    // Everything the host does, testable: model, data, plugin loading, federation, pipelines, reports.
    .target(name: "FedHostCore", dependencies: ["PluginAPI"], path: "Sources/FedHostCore",
            swiftSettings: fastMath),
    // fedhost_engine.h (C types only) and the Swift that implements it over FedHostCore.
    .target(name: "FedHostEngineAPI", path: "Sources/FedHostEngine/API"),
    .target(name: "FedHostEngine", dependencies: ["FedHostCore", "FedHostEngineAPI"], path: "Sources/FedHostEngine/Engine",
            swiftSettings: fastMath),
    .executableTarget(name: "Host", dependencies: ["FedHostCore"], path: "Sources/Host"),
    .executableTarget(name: "FedHostBench", dependencies: ["FedHostCore"], path: "Sources/FedHostBench",
                      swiftSettings: fastMath),

    .target(name: "FedAvg", dependencies: ["PluginKit"], path: "Plugins/FedAvg", swiftSettings: fastMath,
            linkerSettings: pluginExports),
    .target(name: "FedProx", dependencies: ["PluginKit"], path: "Plugins/FedProx", swiftSettings: fastMath,
            linkerSettings: pluginExports),
    .target(name: "SimilarityAware", dependencies: ["PluginKit"], path: "Plugins/SimilarityAware",
            swiftSettings: fastMath, linkerSettings: pluginExports),
    .target(name: "MEFLVariance", dependencies: ["PluginKit"], path: "Plugins/MEFLVariance",
            swiftSettings: fastMath, linkerSettings: pluginExports),
  ] + strategyPlugins.map {
    .target(name: $0, dependencies: ["PluginKit"], path: "Plugins/\($0)", swiftSettings: fastMath,
            linkerSettings: pluginExports)
  } + [
    .testTarget(name: "FedHostCoreTests", dependencies: ["FedHostCore"], path: "Tests/FedHostCoreTests"),
    .testTarget(name: "EndToEndTests", dependencies: ["FedHostCore"], path: "Tests/EndToEndTests"),
  ]
)
