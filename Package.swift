// swift-tools-version: 6.0
// swift-arcface: angular-margin face-embedding training on the CPU with OpenBLAS.
import PackageDescription

let package = Package(
    name: "swift-arcface",
    products: [
        .library(name: "ArcFace", targets: ["ArcFace"]),
        .executable(name: "arcface", targets: ["ArcFaceCLI"]),
        .executable(name: "bench", targets: ["bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // MARK: - Implementation details
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // MARK: - Public API
        .target(name: "TensorCore", dependencies: ["COpenBLAS"]),
        .target(name: "Layers", dependencies: ["TensorCore"]),
        .target(name: "MarginLosses", dependencies: ["TensorCore"]),
        .target(name: "Optimizers", dependencies: ["TensorCore"]),
        .target(name: "FaceData", dependencies: ["TensorCore", "CTurboJPEG", "CPNG"]),
        .target(name: "FaceEvaluation", dependencies: ["TensorCore"]),
        .target(
            name: "Training",
            dependencies: ["TensorCore", "Layers", "MarginLosses", "Optimizers", "FaceData", "FaceEvaluation", "CZlib"]
        ),
        .target(
            name: "ArcFace",
            dependencies: ["TensorCore", "Layers", "MarginLosses", "Optimizers", "FaceData", "FaceEvaluation", "Training"]
        ),

        // MARK: - Executables
        .executableTarget(
            name: "ArcFaceCLI",
            dependencies: ["ArcFace", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "bench",
            dependencies: ["ArcFace", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/bench"
        ),

        // MARK: - Unit test bundles
        .target(name: "_TestSupport", dependencies: ["TensorCore", "MarginLosses"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "_TestSupport"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "_TestSupport"]),
        .testTarget(name: "MarginLossesTests", dependencies: ["MarginLosses", "_TestSupport"]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "_TestSupport"]),
        .testTarget(name: "FaceDataTests", dependencies: ["FaceData", "_TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "FaceEvaluationTests", dependencies: ["FaceEvaluation", "_TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "ArcFace", "_TestSupport"]),
    ]
)
