// `swift run -c release bench`: throughput per batch size and ratios to the GEMM floor.
//
// Margin head forward+backward against the three raw sgemm calls of the same shapes (timed
// alternately in the same run), one K = 10⁶ row in class-chunked mode, a Conv2D layer against
// the three GEMMs it issues, MobileFaceNet's depthwise convolutions against the memory bandwidth
// (a copy of the same bytes), 1×1 convolutions against their GEMMs, a whole training step
// of the default model on synthetic data; the class-parallel head (K = 10⁶) and the data-parallel
// training step on P = 1 and 2 ranks (threads), with the share in collectives and the scaling
// efficiency; and arcface_torch's backbones (IResNet-18/34/50/100, MobileFaceNet: forward and
// training-step images/s and GFLOP/s, IResNet-50's 3×3 convolutions against their GEMMs, an
// optional per-layer profile).
// Prints a table; `--json PATH` writes every sample; `--check PATH` compares the ratios with
// committed thresholds (CI's `make bench-check`).
import ArcFace
import ArgumentParser
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Throughput of the margin head, a convolution layer and a training step, with ratios to the GEMM floor.")

    @Flag(help: "A small sweep (N ∈ {32, 128}, K = 10⁴, no K = 10⁶ row, steps at batch 32): seconds, not minutes.")
    var quick = false
    @Option(help: "Head batch sizes, comma-separated (default 32,64,128,256,512,1024).")
    var batchSizes: String?
    @Option(help: "Head class counts, comma-separated (default 10000,100000).")
    var classes: String?
    @Option(help: "Embedding dimension D.")
    var dimension = 512
    @Option(help: "Batch size of the class-chunked row (K = --chunked-classes); 0 skips it (default 512, --quick 0).")
    var chunkedBatchSize: Int?
    @Option(help: "Class count of the class-chunked row.")
    var chunkedClasses = 1_000_000
    @Option(help: "Classes per chunk of the chunked row (default: chosen from the head's 1 GiB memory budget).")
    var chunkSize: Int?
    @Option(help: "Classes per cache tile of the head (default: about 4 MiB of centers per tile).")
    var tileSize: Int?
    @Option(help: "Classes per pass of the head (forward and ∂embeddings GEMMs; default: about 16 MiB of centers).")
    var passTileSize: Int?
    @Option(help: "Batch sizes of the convolution and training-step tables (default 32,64,128,256).")
    var stepBatchSizes: String?
    @Option(help: "Timed repetitions per measurement.")
    var repetitions: Int?
    @Option(help: "Untimed warm-up runs per measurement.")
    var warmup = 1
    @Option(help: "OpenBLAS (and Swift loop) threads; default: as OpenBLAS starts (OPENBLAS_NUM_THREADS or all cores).")
    var threads: Int?
    @Option(help: "Write the results as JSON to this path.")
    var json: String?
    @Option(help: "Compare the ratios with the thresholds in this JSON file; exit 1 when one is exceeded.")
    var check: String?
    @Option(help: "Batch sizes of the depthwise and 1×1 convolution tables (default 32,128; --quick 32).")
    var depthwiseBatchSizes: String?
    @Option(help: "Instruction sets of the depthwise table's kernels, comma-separated: baseline, avx2, avx512 (default: the CPU's widest; one the CPU lacks is an error).")
    var depthwiseInstructionSets: String?
    @Option(help: "Class count K of the distributed head table (default 1000000, --quick 100000).")
    var distributedClasses: Int?
    @Option(help: "Global batch N of the distributed head table, split over the ranks (default 512, --quick 128).")
    var distributedBatchSize: Int?
    @Option(help: "Global batch of the distributed training-step table (default 128, --quick 32).")
    var distributedStepBatchSize: Int?
    @Option(help: "Rank counts P of the distributed tables, comma-separated, 1 first (default 1,2).")
    var ranks: String?
    @Option(help: "Run only these tables, comma-separated: head, conv, step, depthwise, pointwise, distributed, backbones (default: all).")
    var only: String?
    @Option(help: "Backbones of the backbones table, comma-separated: r18, r34, r50, r100, mbf (default: all; --quick mbf).")
    var backbones: String?
    @Option(help: "Batch sizes of the backbones table (default 32,128; --quick 8).")
    var backboneBatchSizes: String?
    @Option(help: "Timed repetitions per backbone row (default 3; --quick 2); warm-up at most 1.")
    var backboneRepetitions: Int?
    @Flag(help: "Also time each top-level layer of every backbone's training step (first backbone batch size).")
    var backboneProfile = false
    @Flag(help: "Run even in a debug build (numbers are then meaningless).")
    var allowDebugBuild = false

    func run() throws {
        #if DEBUG
        if !allowDebugBuild {
            emit("bench: this is a debug build; its numbers mean nothing. Run `swift run -c release bench` "
                  + "(or pass --allow-debug-build).")
            throw ExitCode(2)
        }
        #endif
        if let threads { BLAS.threadCount = threads }
        let headBatches = try list(batchSizes, default: quick ? [32, 128] : [32, 64, 128, 256, 512, 1024], "--batch-sizes")
        let headClasses = try list(classes, default: quick ? [10_000] : [10_000, 100_000], "--classes")
        let stepBatches = try list(stepBatchSizes, default: quick ? [32] : [32, 64, 128, 256], "--step-batch-sizes")
        let million = chunkedBatchSize ?? (quick ? 0 : 512)
        let reps = repetitions ?? (quick ? 3 : 5)

        let depthwiseBatches = try list(depthwiseBatchSizes, default: quick ? [32] : [32, 128], "--depthwise-batch-sizes")
        let depthwiseSets = try (depthwiseInstructionSets?.split(separator: ",").map(String.init) ?? ["\(DepthwiseInstructionSet.best)"]).map {
            guard let set = DepthwiseInstructionSet(name: $0) else {
                throw ValidationError("--depthwise-instruction-sets takes baseline, avx2 and/or avx512: '\($0)'")
            }
            guard DepthwiseInstructionSet.available.contains(set) else {
                throw ValidationError("--depthwise-instruction-sets: this CPU does not run \(set) (it runs \(DepthwiseInstructionSet.available.map(\.description).joined(separator: ", ")))")
            }
            return set
        }
        let tables = Set((only ?? "head,conv,step,depthwise,pointwise,distributed,backbones").split(separator: ",").map { String($0) })
        guard tables.isSubset(of: ["head", "conv", "step", "depthwise", "pointwise", "distributed", "backbones"]) else {
            throw ValidationError("--only takes head, conv, step, depthwise, pointwise, distributed and/or backbones: '\(only ?? "")'")
        }
        let rankCounts = try list(ranks, default: [1, 2], "--ranks")
        let distributedHeadBatch = distributedBatchSize ?? (quick ? 128 : 512)
        let distributedStepBatch = distributedStepBatchSize ?? (quick ? 32 : 128)
        for p in rankCounts where distributedHeadBatch % p != 0 || distributedStepBatch % p != 0 {
            throw ValidationError("--ranks: \(p) ranks do not divide the global batches \(distributedHeadBatch) and \(distributedStepBatch)")
        }
        if let distributedClasses, distributedClasses < 2 {
            throw ValidationError("--distributed-classes must be ≥ 2: \(distributedClasses)")
        }
        let backboneBatches = try list(backboneBatchSizes, default: quick ? [8] : [32, 128], "--backbone-batch-sizes")
        let backboneNames = backbones ?? (quick ? "mbf" : BackboneFamily.all.map(\.name).joined(separator: ","))
        guard let families = BackboneFamily.parse(backboneNames) else {
            throw ValidationError("--backbones takes r18, r34, r50, r100 and/or mbf, comma-separated: '\(backboneNames)'")
        }
        let backboneReps = backboneRepetitions ?? (quick ? 2 : 3)
        guard backboneReps > 0 else { throw ValidationError("--backbone-repetitions must be positive: \(backboneReps)") }
        let environment = Environment.current(threads: BLAS.threadCount)
        emit(environment.summary)
        var report = Report(environment: environment, heads: [], convolutions: [], steps: [])

        if tables.contains("head") {
            emit("\nmargin head forward+backward (ArcFace s=64 m=0.5), D = \(dimension); floor = 3 raw sgemm, same run")
            emit(pad(["N", "K", "mode", "head ms (med/p90)", "floor ms", "ratio", "samples/s", "GFLOP/s", "extra MiB"]))
        }
        for k in headClasses where tables.contains("head") {
            for n in headBatches {
                let row = benchmarkHead(n: n, k: k, d: dimension, chunkSize: nil, tileSize: tileSize,
                                        passTileSize: passTileSize, warmup: warmup,
                                        repetitions: reps)
                report.heads.append(row)
                printHead(row)
            }
        }
        if million > 0 && tables.contains("head") {
            let row = benchmarkHead(n: million, k: chunkedClasses, d: dimension, chunkSize: chunkSize, tileSize: tileSize, passTileSize: passTileSize,
                                    warmup: min(warmup, 1),
                                    repetitions: min(reps, 3))
            report.heads.append(row)
            printHead(row)
        }

        if tables.contains("conv") {
            emit("\nConv2D 16→32, 3×3, pad 1, 56×46 forward+backward; floor = the per-image GEMMs it issues; "
                 + "batched = the 3 batch-wide GEMMs of the same convolution; same run")
            emit(pad(["N", "layer ms (med/p90)", "GEMMs ms", "ratio", "batched ms", "ratio", "images/s"]))
        }
        for n in stepBatches where tables.contains("conv") {
            let row = benchmarkConvolution(n: n, warmup: warmup, repetitions: reps)
            report.convolutions.append(row)
            emit(pad(["\(n)", ms(row.layer), ms(row.gemms.median), fixed(row.ratio, 3), ms(row.batchedGEMMs.median),
                      fixed(row.ratioToBatchedGEMMs, 3), fixed(row.imagesPerSecond, 1)]))
        }

        if tables.contains("depthwise") {
            runDepthwiseTable(batches: depthwiseBatches, instructionSets: depthwiseSets, repetitions: reps, report: &report)
        }
        if tables.contains("pointwise") {
            runPointwiseTable(batches: depthwiseBatches, repetitions: reps, report: &report)
        }

        if tables.contains("step") {
            emit("\ntraining step, default model (AT&T backbone 112×92, ArcFace over 30 classes, SGD), synthetic data")
            emit(pad(["N", "step ms (med/p90)", "images/s"]))
        }
        for n in stepBatches where tables.contains("step") {
            let row = benchmarkTrainingStep(n: n, warmup: warmup, repetitions: reps)
            report.steps.append(row)
            emit(pad(["\(n)", ms(row.step), fixed(row.imagesPerSecond, 1)]))
        }

        if tables.contains("distributed") {
            runDistributedTables(k: distributedClasses ?? (quick ? 100_000 : 1_000_000), headBatch: distributedHeadBatch,
                                 stepBatch: distributedStepBatch, rankCounts: rankCounts, repetitions: min(reps, 3),
                                 report: &report)
        }
        if tables.contains("backbones") {
            runBackboneTables(families: families, batches: backboneBatches, repetitions: backboneReps, report: &report)
        }

        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            emit("\nwrote \(json)")
        }
        if let check {
            let failures = try Thresholds.load(path: check).violations(in: report)
            if failures.isEmpty {
                emit("\nbench-check: every ratio within \(check)")
            } else {
                emit("\nbench-check FAILED (\(check)):")
                for failure in failures { emit("  " + failure) }
                throw ExitCode(1)
            }
        }
    }

    private func list(_ text: String?, default values: [Int], _ option: String) throws -> [Int] {
        guard let text else { return values }
        let parsed = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parsed.isEmpty, parsed.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("\(option) takes positive integers separated by commas: '\(text)'")
        }
        return parsed.map { $0! }
    }

    private func runDistributedTables(k: Int, headBatch: Int, stepBatch: Int, rankCounts: [Int], repetitions: Int,
                                      report: inout Report) {
        let threadsBefore = BLAS.threadCount
        BLAS.threadCount = 1
        defer { BLAS.threadCount = threadsBefore }
        emit("\nclass-parallel margin head (ArcFace s=64 m=0.5), K = \(k), D = \(dimension), global batch N = \(headBatch) "
             + "split over P ranks (threads, InProcessCommunicator), 1 BLAS thread per rank; step = zero ∂W, forward+backward, "
             + "SGD on the slice; rank 0's wall time; coll. = seconds inside the head's collectives; "
             + "efficiency = T(P=1) / (P·T(P)), same N and K; cores used = process CPU s / wall s over the timed steps")
        emit(pad(["P", "step ms (med/p90)", "coll. ms", "coll. share", "samples/s", "chunks", "state MiB/rank",
                  "needed MiB/rank", "cores used", "efficiency"]))
        var headBase: Double?
        for p in rankCounts {
            guard var row = benchmarkDistributedHead(ranks: p, k: k, d: dimension, n: headBatch, warmup: min(warmup, 1),
                                                     repetitions: repetitions) else { continue }
            if p == 1 { headBase = row.step.median }
            if p > 1, let headBase { row.scalingEfficiency = headBase / (Double(p) * row.step.median) }
            report.distributedHeads.append(row)
            emit(pad(["\(p)", ms(row.step), ms(row.collectiveSeconds), fixed(row.collectiveShare, 3),
                      fixed(row.samplesPerSecond, 1), "\(row.chunkCount)",
                      fixed(Double(row.stateBytesPerRank) / 1_048_576, 0), fixed(Double(row.neededBytesPerRank) / 1_048_576, 0),
                      fixed(row.coresUsed, 2), row.scalingEfficiency.map { fixed($0, 3) } ?? "–"]))
        }
        emit("\ndata-parallel training step, default model (AT&T backbone, class-parallel ArcFace over 30 classes, SGD), "
             + "global batch \(stepBatch) split over P ranks (threads), 1 BLAS thread per rank; coll. = the head's collectives "
             + "+ the backbone-gradient all-reduce; efficiency = T(P=1) / (P·T(P))")
        emit(pad(["P", "step ms (med/p90)", "coll. ms", "coll. share", "images/s", "cores used", "efficiency"]))
        var stepBase: Double?
        for p in rankCounts {
            var row = benchmarkDistributedStep(ranks: p, n: stepBatch, classCount: 30, warmup: warmup, repetitions: max(repetitions, 5))
            if p == 1 { stepBase = row.step.median }
            if p > 1, let stepBase { row.scalingEfficiency = stepBase / (Double(p) * row.step.median) }
            report.distributedSteps.append(row)
            emit(pad(["\(p)", ms(row.step), ms(row.collectiveSeconds), fixed(row.collectiveShare, 3),
                      fixed(row.imagesPerSecond, 1), fixed(row.coresUsed, 2), row.scalingEfficiency.map { fixed($0, 3) } ?? "–"]))
        }
    }

    private func runDepthwiseTable(batches: [Int], instructionSets: [DepthwiseInstructionSet], repetitions: Int,
                                   report: inout Report) {
        let bandwidth = benchmarkBandwidth(warmup: warmup, repetitions: max(repetitions, 3), threads: BLAS.threadCount)
        report.bandwidth = bandwidth
        emit("\nmemory bandwidth: parallel copy of 256 MiB on \(BLAS.threadCount) thread(s), read + written bytes / best time: "
             + "\(fixed(bandwidth.bytesPerSecond / 1e9, 1)) GB/s (median \(ms(bandwidth.copy.median)) ms)")
        emit("depthwise Conv2D (MobileFaceNet shapes; g = groups); bytes = x + y + w (forward), x + ∂y + ∂x + w + ∂w "
             + "(backward); bound = bytes / copy bandwidth")
        emit("  (÷ copy: over a parallel copy of the same bytes timed alternately with the passes, robust to machine load)")
        emit("  (isa: the depthwise kernels' instruction set; the grouped g < C row runs im2col + GEMM whatever it says)")
        emit(pad(["isa", "N", "C", "H=W", "k/s/p", "g", "fwd ms", "GB/s", "÷ bound", "÷ copy", "bwd ms", "GB/s", "÷ bound", "÷ copy"]))
        let saved = DepthwiseInstructionSet.processDefault
        defer { DepthwiseInstructionSet.processDefault = saved }
        for isa in instructionSets {
            DepthwiseInstructionSet.processDefault = isa
            for n in batches {
            for shape in mobileFaceNetDepthwiseShapes {
                var row = benchmarkDepthwise(n: n, channels: shape.channels, size: shape.size, kernelSize: shape.k,
                                             stride: shape.stride, padding: shape.padding, groups: shape.groups,
                                             bandwidth: bandwidth.bytesPerSecond, warmup: warmup, repetitions: repetitions)
                row.instructionSet = "\(isa)"
                report.depthwise.append(row)
                emit(pad(["\(isa)", "\(n)", "\(row.channels)", "\(row.height)", "\(row.kernelSize)/\(row.stride)/\(row.padding)",
                          "\(row.groups)", ms(row.forward.median), fixed(row.forwardBytesPerSecond / 1e9, 1),
                          fixed(row.forwardToBound, 2), fixed(row.forwardToCopy, 2), ms(row.backward.median),
                          fixed(row.backwardBytesPerSecond / 1e9, 1), fixed(row.backwardToBound, 2),
                          fixed(row.backwardToCopy, 2)]))
            }
            }
        }
    }

    private func runPointwiseTable(batches: [Int], repetitions: Int, report: inout Report) {
        emit("\n1×1 Conv2D forward+backward against the GEMMs it issues (stride 1: on the image; stride 2: "
             + "on the gathered pixels); same run")
        emit(pad(["N", "Cin→Cout", "H=W", "stride", "layer ms", "GEMMs ms", "ratio"]))
        for n in batches {
            for shape in pointwiseShapes {
                let row = benchmarkPointwise(n: n, inputChannels: shape.cin, outputChannels: shape.cout, size: shape.size,
                                             stride: shape.stride, warmup: warmup, repetitions: repetitions)
                report.pointwise.append(row)
                emit(pad(["\(n)", "\(shape.cin)→\(shape.cout)", "\(shape.size)", "\(shape.stride)", ms(row.layer.median),
                          ms(row.gemms.median), fixed(row.ratio, 3)]))
            }
        }
    }

    private func runBackboneTables(families: [BackboneFamily], batches: [Int], repetitions: Int, report: inout Report) {
        let warm = min(warmup, 1)
        emit("\narcface_torch backbones, RGB 112×112, D = 512, synthetic images; forward = inference mode; "
             + "train = zero gradients, forward (training mode), backward from a random ∂embedding without the "
             + "image gradient, SGD step (no margin head); GFLOP/s against the network's FLOPs: forward 1×, train 3×")
        emit(pad(["backbone", "N", "GFLOP/img", "fwd ms", "fwd img/s", "fwd GFLOP/s", "train ms", "train img/s",
                  "train GFLOP/s"]))
        for family in families {
            for n in batches {
                let row = benchmarkBackbone(family, n: n, warmup: warm, repetitions: repetitions)
                report.backbones.append(row)
                emit(pad([family.name, "\(n)", fixed(family.forwardFLOPs / 1e9, 2), ms(row.forward.median),
                          fixed(row.forwardImagesPerSecond, 1), fixed(row.forwardGFLOPs, 1), ms(row.training.median),
                          fixed(row.trainingImagesPerSecond, 2), fixed(row.trainingGFLOPs, 1)]))
            }
        }
        if families.contains(where: { $0.name == "r50" }), let n = batches.first {
            emit("\nIResNet-50's stride-1 3×3 convolutions (C → C, padding 1) forward+backward with ∂x against the "
                 + "GEMMs they issue, N = \(n); weighted = Σ count·layer / Σ count·GEMMs")
            emit(pad(["C", "H=W", "count", "layer ms", "GEMMs ms", "ratio", "GEMM GFLOP/s"]))
            var layerTotal = 0.0, gemmTotal = 0.0
            for shape in iresnet50ConvolutionShapes {
                let row = benchmarkBackboneConvolution(n: n, channels: shape.channels, size: shape.size, count: shape.count,
                                                       warmup: warm, repetitions: repetitions)
                report.backboneConvolutions.append(row)
                layerTotal += Double(shape.count) * row.layer.median
                gemmTotal += Double(shape.count) * row.gemms.median
                emit(pad(["\(shape.channels)", "\(shape.size)", "\(shape.count)", ms(row.layer.median),
                          ms(row.gemms.median), fixed(row.ratio, 3), fixed(row.gemmGFLOPs, 1)]))
            }
            emit("weighted over r50's \(iresnet50ConvolutionShapes.map(\.count).reduce(0, +)) convolutions: "
                 + "\(fixed(layerTotal / gemmTotal, 3))× their GEMMs (\(fixed(layerTotal, 2)) s vs \(fixed(gemmTotal, 2)) s per step)")
        }
        if backboneProfile, let n = batches.first {
            for family in families {
                let rows = profileBackbone(family, n: n, warmup: warm, repetitions: repetitions)
                report.backboneProfiles.append(contentsOf: rows)
                let total = rows.reduce(0) { $0 + $1.forward + $1.backward }
                emit("\nper-layer training step, \(family.name), N = \(n) (top-level layers; medians; total "
                     + "\(ms(total)) ms)")
                emit(pad(["#", "fwd ms", "bwd ms", "share", "layer"]))
                for row in rows {
                    emit(pad(["\(row.index)", ms(row.forward), ms(row.backward),
                              fixed(100 * (row.forward + row.backward) / total, 1) + "%", row.layer]))
                }
                let kinds = profileBackboneByKind(family, n: n, warmup: warm, repetitions: repetitions)
                report.backboneKindProfiles.append(contentsOf: kinds)
                let kindTotal = kinds.reduce(0) { $0 + $1.forward + $1.backward }
                emit("by kind of leaf layer (sums over the step; total \(ms(kindTotal)) ms)")
                emit(pad(["count", "fwd ms", "bwd ms", "share", "kind"]))
                for row in kinds.sorted(by: { $0.forward + $0.backward > $1.forward + $1.backward }) {
                    emit(pad(["\(row.count)", ms(row.forward), ms(row.backward),
                              fixed(100 * (row.forward + row.backward) / kindTotal, 1) + "%", row.kind]))
                }
            }
        }
    }

    private func printHead(_ row: HeadResult) {
        let mode = row.chunked ? "\(row.chunkCount)×\(row.chunkSize)" : "fused"
        emit(pad(["\(row.batchSize)", "\(row.classCount)", mode, ms(row.head), ms(row.gemmFloor.median),
                   fixed(row.ratio, 3), fixed(row.samplesPerSecond, 0), fixed(row.gflops, 1),
                   fixed(Double(row.extraBytes) / 1_048_576, 1)]))
    }
}

/// Machine and library facts recorded with every run.
struct Environment: Codable {
    var blasCore: String
    var threads: Int
    var openblasNumThreads: String?
    var openblasCoretype: String?
    var toolchain: String
    var cpu: String?
    /// The depthwise kernels' instruction set (the CPU's widest unless `--depthwise-instruction-sets`).
    var depthwiseInstructionSet: String

    static func current(threads: Int) -> Environment {
        let env = ProcessInfo.processInfo.environment
        return Environment(blasCore: BLAS.coreName, threads: threads, openblasNumThreads: env["OPENBLAS_NUM_THREADS"],
                           openblasCoretype: env["OPENBLAS_CORETYPE"], toolchain: toolchainVersion(), cpu: cpuModel(),
                           depthwiseInstructionSet: "\(DepthwiseInstructionSet.best)")
    }

    var summary: String {
        "bench: OpenBLAS core \(blasCore), \(threads) thread(s) (OPENBLAS_NUM_THREADS=\(openblasNumThreads ?? "unset"), "
            + "OPENBLAS_CORETYPE=\(openblasCoretype ?? "unset")); depthwise kernels \(depthwiseInstructionSet); \(toolchain); "
            + "\(cpu ?? "unknown CPU")"
    }
}

struct Report: Codable {
    var environment: Environment
    var heads: [HeadResult]
    var convolutions: [ConvolutionResult]
    var steps: [StepResult]
    var bandwidth: BandwidthResult? = nil
    var depthwise: [DepthwiseResult] = []
    var pointwise: [PointwiseResult] = []
    var distributedHeads: [DistributedHeadResult] = []
    var distributedSteps: [DistributedStepResult] = []
    var backbones: [BackboneResult] = []
    var backboneConvolutions: [BackboneConvolutionResult] = []
    var backboneProfiles: [LayerProfileRow] = []
    var backboneKindProfiles: [LayerKindProfileRow] = []
}

/// Ratio thresholds (`Benchmarks/thresholds.json`): the largest allowed median ratio of the head
/// to its GEMM floor (unchunked and chunked) and of the convolution layer to its GEMMs.
struct Thresholds: Codable {
    var headToGEMMFloor: Double
    var chunkedHeadToGEMMFloor: Double?
    var convolutionToGEMMs: Double

    static func load(path: String) throws -> Thresholds {
        try JSONDecoder().decode(Thresholds.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func violations(in report: Report) -> [String] {
        var failures: [String] = []
        for row in report.heads {
            let limit = row.chunked ? (chunkedHeadToGEMMFloor ?? headToGEMMFloor) : headToGEMMFloor
            if !(row.ratio <= limit) {
                failures.append("head N=\(row.batchSize) K=\(row.classCount)\(row.chunked ? " chunked" : ""): "
                                + "ratio to the GEMM floor \(fixed(row.ratio, 3)) > threshold \(limit)")
            }
        }
        for row in report.convolutions where !(row.ratio <= convolutionToGEMMs) {
            failures.append("Conv2D N=\(row.batchSize): ratio to its GEMMs \(fixed(row.ratio, 3)) > threshold \(convolutionToGEMMs)")
        }
        return failures
    }
}

func toolchainVersion() -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["swift", "--version"]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = Pipe()
    do {
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if let line = text.split(separator: "\n").first(where: { $0.contains("Swift version") }) { return String(line) }
    } catch {}
    #if compiler(>=6.3)
    return "Swift ≥ 6.3 (compiler)"
    #else
    return "Swift < 6.3 (compiler)"
    #endif
}

func cpuModel() -> String? {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
    return text.split(separator: "\n").first { $0.hasPrefix("model name") }
        .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" }
}

/// Prints a line and flushes it at once (one table row at a time, also through a pipe or a file).
func emit(_ line: String = "") {
    print(line)
    fflush(nil)
}

func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
func ms(_ seconds: Double) -> String { fixed(seconds * 1000, 2) }
func ms(_ timing: Timing) -> String { "\(ms(timing.median)) / \(ms(timing.p90))" }
func pad(_ cells: [String]) -> String {
    cells.map { $0.count >= 12 ? $0 + " " : $0 + String(repeating: " ", count: 12 - $0.count) }.joined()
}

Bench.main()
