// The distributed tables (`--only distributed`): the class-parallel margin head and the
// data-parallel training step on P = 1 and P ranks, with the share of time in collectives and the
// scaling efficiency. Ranks are threads of this process (`InProcessCommunicator`), each with one
// OpenBLAS thread (`BLAS.threadCount = 1`, set for the table and restored after).
import ArcFace
import Foundation

/// One row of the distributed head table: rank 0's view of one step.
struct DistributedHeadResult: Codable {
    var ranks: Int, classCount: Int, embeddingDimension: Int, globalBatchSize: Int
    /// Wall time of one step on rank 0: zero gradients, `ClassParallelMarginHead.loss` with
    /// gradients, SGD step on this rank's centers.
    var step: Timing
    /// Seconds per step rank 0 spent inside the head's collectives (`TimedCommunicator`), median.
    var collectiveSeconds: Double
    /// `collectiveSeconds / step.median`.
    var collectiveShare: Double
    /// Centers + gradient + momentum of the largest slice: `3·⌈K/P⌉·D·4` bytes.
    var stateBytesPerRank: Int
    /// What `ClassParallelMarginHead.checkMemory` says one rank needs (state, the plan's extra
    /// memory for the global batch, the gathered embeddings).
    var neededBytesPerRank: Int
    var chunkCount: Int
    var samplesPerSecond: Double
    /// CPU seconds of the whole process per wall second over the timed steps: what the ranks
    /// actually got of the machine (2 on an idle 2-core machine at P = 2; less under load).
    var coresUsed: Double
    /// `T(P = 1) / (P · T(P))` for the same global batch and K (nil for P = 1).
    var scalingEfficiency: Double?
}

/// One row of the distributed training-step table.
struct DistributedStepResult: Codable {
    var ranks: Int, globalBatchSize: Int, classCount: Int
    var step: Timing
    var collectiveSeconds: Double
    var collectiveShare: Double
    var imagesPerSecond: Double
    /// As `DistributedHeadResult.coresUsed`.
    var coresUsed: Double
    var scalingEfficiency: Double?
}

/// Runs `body(rank communicator)` on `size` threads (one `InProcessCommunicator` each; a plain
/// `SingleProcessCommunicator` on this thread for `size = 1`) and returns the results by rank.
func runRankThreads<R>(_ size: Int, _ body: @escaping (any Communicator) -> R) -> [R] {
    if size == 1 { return [body(SingleProcessCommunicator())] }
    let box = RankResults<R>(size)
    let lock = NSLock()
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) let work = body
    for communicator in InProcessCommunicator.group(size: size, timeout: .seconds(1800)) {
        nonisolated(unsafe) let rankCommunicator = communicator
        let thread = Thread {
            let result = work(rankCommunicator)
            lock.lock()
            box.results[rankCommunicator.rank] = result
            lock.unlock()
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    for _ in 0..<size { done.wait() }
    return box.results.map { $0! }
}

/// Each rank's result, written by its thread under a lock.
private final class RankResults<R>: @unchecked Sendable {
    var results: [R?]
    init(_ size: Int) { results = Array(repeating: nil, count: size) }
}

/// Times `step` `warmup + repetitions` times on every rank, a barrier (untimed) before each, and
/// returns rank 0's step times, its seconds inside `timed` per step, and the process's CPU seconds
/// per wall second over the timed steps.
private func timeRankSteps(_ communicator: any Communicator, _ timed: TimedCommunicator, warmup: Int, repetitions: Int,
                           _ step: () -> Void) -> (Timing, [Double], Double) {
    var samples: [Double] = [], collective: [Double] = []
    var cpuStart = 0.0, wallStart = ContinuousClock.now
    for repetition in 0..<(warmup + repetitions) {
        if repetition == warmup {
            try! communicator.barrier()
            cpuStart = processCPUSeconds()
            wallStart = ContinuousClock.now
        }
        try! communicator.barrier()
        timed.reset()
        let start = ContinuousClock.now
        step()
        let elapsed = seconds(ContinuousClock.now - start)
        if repetition >= warmup {
            samples.append(elapsed)
            collective.append(timed.totalSeconds)
        }
    }
    try! communicator.barrier()
    let cores = (processCPUSeconds() - cpuStart) / seconds(ContinuousClock.now - wallStart)
    return (Timing(samples: samples), collective, cores)
}

/// User + system CPU seconds of every thread of this process.
private func processCPUSeconds() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

private func median(_ values: [Double]) -> Double { Timing(samples: values).median }

/// The class-parallel ArcFace head (s = 64, m = 0.5) at `K`, `D`, global batch `N` on `ranks`
/// ranks: one step = zero gradients, forward+backward of the global batch (each rank `N/P` rows),
/// SGD (momentum 0.9, weight decay 5e-4) on each rank's slice. Nil (with a message) when a rank's
/// memory does not fit the machine's available memory.
func benchmarkDistributedHead(ranks: Int, k: Int, d: Int, n: Int, warmup: Int, repetitions: Int) -> DistributedHeadResult? {
    let needed: Int, plan: HeadPlan
    do {
        (plan, needed) = try ClassParallelMarginHead.checkMemory(batchSize: n / ranks, worldSize: ranks, classCount: k,
                                                                 embeddingDimension: d,
                                                                 availableBytes: SystemMemory.availableBytes / ranks)
    } catch {
        emit("  P = \(ranks): skipped, \(error)")
        return nil
    }
    let embeddings = randomFloats(n * d, seed: 8)
    let labels = (0..<n).map { ($0 &* 7919) % k }
    let perRank = runRankThreads(ranks) { communicator -> (Timing, [Double], Double) in
        let rows = n / ranks, first = communicator.rank * rows
        let timed = TimedCommunicator(wrapping: communicator)
        var generator = SeededGenerator(seed: 7)
        let head = ClassParallelMarginHead(classCount: k, embeddingDimension: d, scale: 64, margin: ArcFaceMargin(margin: 0.5),
                                           communicator: timed, generator: &generator)
        let optimizer = SGD(parameters: head.parameters, configuration: SGDConfiguration(momentum: 0.9, weightDecay: 5e-4))
        let local = Tensor(shape: [rows, d], storage: Array(embeddings[(first * d)..<((first + rows) * d)]))
        let localLabels = Array(labels[first..<(first + rows)])
        return timeRankSteps(communicator, timed, warmup: warmup, repetitions: repetitions) {
            optimizer.zeroGradients()
            let out = try! head.loss(embeddings: local, labels: localLabels, reduction: .mean, computeGradients: true)
            _ = optimizer.step(learningRate: 0.1)
            blackHole(out.loss)
        }
    }
    let (step, collective, cores) = perRank[0]
    let largestSlice = (k + ranks - 1) / ranks
    return DistributedHeadResult(ranks: ranks, classCount: k, embeddingDimension: d, globalBatchSize: n, step: step,
                                 collectiveSeconds: median(collective), collectiveShare: median(collective) / step.median,
                                 stateBytesPerRank: 3 * largestSlice * d * 4, neededBytesPerRank: needed,
                                 chunkCount: plan.chunkCount, samplesPerSecond: Double(n) / step.median, coresUsed: cores,
                                 scalingEfficiency: nil)
}

/// A data-parallel training step of the default model (`TrainingConfiguration.base`, ArcFace over
/// `classCount` identities) on synthetic data, global batch `n`, on `ranks` ranks, as the Trainer
/// runs it: each rank's backbone forward on its `n/P` images, the class-parallel head on the
/// global batch, backbone backward, all-reduce (SUM) of the backbone gradients in one buffer,
/// SGD. Collective seconds: the head's collectives and the gradient all-reduce.
func benchmarkDistributedStep(ranks: Int, n: Int, classCount: Int, warmup: Int, repetitions: Int) -> DistributedStepResult {
    let configuration = TrainingConfiguration.base
    let b = configuration.backbone
    let pixels = b.inputChannels * b.inputHeight * b.inputWidth
    let images = randomFloats(n * pixels, seed: 13).map { max(-1, min(1, $0 * 0.5)) }
    let perRank = runRankThreads(ranks) { communicator -> (Timing, [Double], Double) in
        let rows = n / ranks, first = communicator.rank * rows
        let timed = TimedCommunicator(wrapping: communicator)
        let model = FaceRecognitionModel(configuration: configuration, classCount: classCount, communicator: timed)
        let optimizer = SGD(parameters: model.parameters, configuration: SGDConfiguration(
            momentum: Float(configuration.momentum), weightDecay: Float(configuration.weightDecay)))
        let local = Tensor(shape: [rows, b.inputChannels, b.inputHeight, b.inputWidth],
                           storage: Array(images[(first * pixels)..<((first + rows) * pixels)]))
        let labels = (first..<(first + rows)).map { $0 % classCount }
        model.backbone.computesInputGradient = false
        let parameters = model.backbone.parameters
        return timeRankSteps(communicator, timed, warmup: warmup, repetitions: repetitions) {
            optimizer.zeroGradients()
            let (embeddings, cache) = model.backbone.forward(local, mode: .training)
            let out = try! model.head.loss(embeddings: embeddings, labels: labels, reduction: .mean, computeGradients: true)
            _ = model.backbone.backward(out.embeddingGradient, cache: cache)
            if ranks > 1 {
                var flat = [Float]()
                flat.reserveCapacity(parameters.reduce(0) { $0 + $1.gradient.count })
                for parameter in parameters { flat.append(contentsOf: parameter.gradient.storage) }
                try! timed.allReduce(&flat, .sum)
                var offset = 0
                for parameter in parameters {
                    let count = parameter.gradient.count
                    parameter.gradient.storage.replaceSubrange(0..<count, with: flat[offset..<(offset + count)])
                    offset += count
                }
            }
            _ = optimizer.step(learningRate: 0.01)
            blackHole(out.loss)
        }
    }
    let (step, collective, cores) = perRank[0]
    return DistributedStepResult(ranks: ranks, globalBatchSize: n, classCount: classCount, step: step,
                                 collectiveSeconds: median(collective), collectiveShare: median(collective) / step.median,
                                 imagesPerSecond: Double(n) / step.median, coresUsed: cores, scalingEfficiency: nil)
}
