// swift-tools-version: 6.0
// libFuzzer harnesses for every reader of swift-arcface: one executable per reader, each a
// `LLVMFuzzerTestOneInput` that feeds arbitrary bytes to the reader and must never crash, hang or
// leak (a thrown typed error is the expected outcome for most inputs).
//
// Build and run through the root Makefile: `make fuzz` (`FUZZ_RUNS=N` executions per harness,
// from the seed corpus in `Fuzz/corpus/<reader>/` and the PGM seeds of `write-pgm-seeds.sh`). Directly:
//   swift build --package-path Fuzz -Xswiftc -sanitize=fuzzer,address
//   Fuzz/write-pgm-seeds.sh /tmp/seeds && Fuzz/.build/debug/FuzzPGM -runs=20000 /tmp/work /tmp/seeds
//
// To add a reader: add an
// executable target `Fuzz<Reader>` (depending on `CLibFuzzer`) with a `main.swift` like `Sources/FuzzPGM/main.swift`, a seed
// corpus folder `corpus/<reader>/` with a few small valid files, and the pair to `FUZZ_TARGETS`
// in the root Makefile. A crash found becomes a regression test in the reader's test target.
import PackageDescription

let package = Package(
    name: "swift-arcface-fuzz",
    dependencies: [.package(name: "swift-arcface", path: "..")],
    targets: [
        .target(name: "CLibFuzzer"),
        .executableTarget(name: "FuzzPGM", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
        .executableTarget(name: "FuzzSafetensors", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
        .executableTarget(name: "FuzzConfiguration", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
        .executableTarget(name: "FuzzNumPy", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
        .executableTarget(name: "FuzzVerificationBin", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
        .executableTarget(name: "FuzzLFWPairs", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
        .executableTarget(name: "FuzzImage", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
        .executableTarget(name: "FuzzRecordIO", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
        .executableTarget(name: "FuzzLandmarks", dependencies: ["CLibFuzzer", .product(name: "ArcFace", package: "swift-arcface")]),
    ]
)
