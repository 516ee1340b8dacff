// swift-tools-version: 6.1
// swift-arcface: angular-margin face-embedding training on the CPU with OpenBLAS.
import PackageDescription

let package = Package(
    name: "swift-arcface",
    products: [
        .library(name: "ArcFace", targets: ["ArcFace"]),
        .library(name: "ArcFaceONNX", targets: ["ONNXExport"]),
        .executable(name: "arcface", targets: ["ArcFaceCLI"]),
        .executable(name: "bench", targets: ["bench"]),
    ],
    // `MPI` (off by default): the MPI communicator (`MPICollectives` over `CMPI`); needs
    // libopenmpi-dev. `swift build --traits MPI`; without it nothing needs MPI.
    traits: [
        .trait(name: "MPI", description: "MPICommunicator over the system MPI (Open MPI: libopenmpi-dev, pkg-config ompi-c)"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
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
        // Only a dependency with the trait MPI (see MPICollectives).
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

        // The depthwise convolution's inner loops in C, compiled for AVX-512, AVX2+FMA and the
        // baseline from one body, picked at run time (Swift has no per-function CPU target).
        .target(name: "CDepthwiseKernels"),

        // MARK: - Public API
        .target(name: "TensorCore", dependencies: ["COpenBLAS"]),
        .target(name: "Layers", dependencies: ["TensorCore", "CDepthwiseKernels"]),
        // The Communicator protocol, the single-process and in-process (threads) communicators.
        .target(name: "Collectives"),
        // MPICommunicator; its code and its CMPI dependency exist only with the trait MPI.
        .target(name: "MPICollectives",
                dependencies: ["Collectives", .target(name: "CMPI", condition: .when(traits: ["MPI"]))]),
        .target(name: "MarginLosses", dependencies: ["TensorCore", "Collectives"]),
        .target(name: "Optimizers", dependencies: ["TensorCore"]),
        .target(name: "FaceData", dependencies: ["TensorCore", "CTurboJPEG", "CPNG"]),
        .target(name: "FaceEvaluation", dependencies: ["TensorCore"]),
        // The settings of a run, read by the checkpoint format, the report and the trainer.
        .target(name: "RunConfiguration", dependencies: ["Layers", "MarginLosses", "Optimizers", "FaceData"]),
        // File formats (safetensors, .npy, CRC-32, durable writes) and the training state they save.
        .target(name: "Checkpointing", dependencies: ["TensorCore", "RunConfiguration", "CZlib"]),
        // One batched, flip-summing embedding function; embedding export; fixed-pairs protocols.
        .target(name: "Inference", dependencies: ["TensorCore", "Layers", "FaceData", "FaceEvaluation", "Checkpointing"]),
        // report.html (inline SVG) and the metrics.json values.
        .target(name: "Reporting", dependencies: ["FaceData", "FaceEvaluation", "RunConfiguration", "Checkpointing"]),
        .target(
            name: "Training",
            dependencies: ["TensorCore", "Collectives", "Layers", "MarginLosses", "Optimizers", "FaceData", "FaceEvaluation",
                           "RunConfiguration", "Checkpointing", "Inference", "Reporting"]
        ),
        .target(
            name: "ArcFace",
            dependencies: ["TensorCore", "Collectives", "Layers", "MarginLosses", "Optimizers", "FaceData", "FaceEvaluation",
                           "RunConfiguration", "Checkpointing", "Inference", "Reporting", "Training"]
        ),
        // ONNX export of a backbone (its own product: only the CLI and users who ask pay for SwiftProtobuf).
        .target(
            name: "ONNXExport",
            dependencies: ["TensorCore", "Layers", "Checkpointing", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Generated/onnx.proto", "Generated/README.md"]
        ),

        // MARK: - Executables
        .executableTarget(
            name: "ArcFaceCLI",
            dependencies: ["ArcFace", "ONNXExport", "MPICollectives", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "bench",
            dependencies: ["ArcFace", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/bench"
        ),

        // MARK: - Unit test bundles
        .target(name: "_TestSupport", dependencies: ["TensorCore", "MarginLosses", "Collectives"]),
        .testTarget(name: "CollectivesTests", dependencies: ["Collectives", "_TestSupport"]),
        // Run under mpirun (make test-mpi); every test skips unless ARCFACE_MPI_TEST_WORLD_SIZE is set.
        .testTarget(name: "MPITests", dependencies: ["MPICollectives", "Collectives", "MarginLosses", "Training", "_TestSupport"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "_TestSupport"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "_TestSupport"]),
        .testTarget(name: "MarginLossesTests", dependencies: ["MarginLosses", "_TestSupport"]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "_TestSupport"]),
        .testTarget(name: "FaceDataTests", dependencies: ["FaceData", "_TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "FaceEvaluationTests", dependencies: ["FaceEvaluation", "_TestSupport"]),
        .testTarget(name: "RunConfigurationTests", dependencies: ["RunConfiguration"]),
        .testTarget(name: "CheckpointingTests", dependencies: ["Checkpointing", "_TestSupport"]),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "_TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "ArcFace", "_TestSupport"]),
        .testTarget(
            name: "ONNXExportTests",
            dependencies: ["ONNXExport", "Layers", "TensorCore", "RunConfiguration", "Training", "_TestSupport",
                           .product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
    ]
)
