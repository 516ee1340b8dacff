import Collectives
import TensorCore

/// The margin head split over the ranks of a `Communicator` by class (model parallelism, as
/// arcface_torch's `PartialFC_V2`): rank `r` of `P` holds the centers of the classes
/// `partition.classes(ofRank: r)` (`≈ K/P`), their gradient and (in the optimizer) their
/// momentum, and computes the logits of the whole global batch against them only.
///
/// One `loss` call on every rank, with each rank's own batch (`[N_r, D]`, `N = Σ N_r`):
/// ```
/// all-gather N_r, then e [N, D] and y [N]              (every rank sees the global batch)
/// forward over the local classes (MarginEngine)        per row: max m_r, Σexp S_r, target cos
/// all-reduce MAX [2N + 1], SUM [3N]                    global m, S, cos θ_y (and the accuracy)
/// ℓ_i, Z_i: identical on every rank                    loss = the global batch's reduction
/// backward over the local classes                      ∂W of the local rows; ∂ê partial [N, D]
/// reduce-scatter SUM ∂ê → rows of this rank [N_r, D]   then through this rank's normalization
/// ```
/// The result equals `MarginHead.loss` on the global batch (the concatenation of the ranks'
/// batches in rank order) to fp32 round-off, for every margin, sub-centers, chunking and Partial
/// FC sampling; with `P = 1` bit for bit. Partial FC draws the global sample (all ranks share
/// `samplingGenerator`'s seed and draw the same classes, as `MarginHead.sampledClasses`) and
/// each rank keeps the sampled classes of its slice, so the classes in play do not depend on `P`.
///
/// `loss` returns `loss`, `perSampleLoss` (`[N]`, rank order) and `correctCount` of the global
/// batch (the same on every rank) and `embeddingGradient` of this rank's rows only, `[N_r, D]`:
/// `∂L/∂e_r` of the global loss. So the backbone gradients of the ranks must be all-reduced by
/// SUM (not averaged) to give the single-process step on the global batch.
///
/// Every rank must call `loss` with the same `reduction`, `computeGradients` and settings. A
/// bad batch on any rank (a label out of range, a non-finite embedding, a size mismatch) or a
/// non-finite center row on any rank throws the same `MarginLossError` on every rank (sample
/// indices are into the global batch, rows are global center rows `c·k + s`), before any
/// gradient is touched; a collective that times out or fails throws `.communication`.
public final class ClassParallelMarginHead: ClassificationHead {
    /// The ranks the classes are split over.
    public let communicator: any Communicator
    /// Which classes each rank holds.
    public let partition: ClassPartition
    /// This rank's classes (global indices).
    public var localClasses: Range<Int> { partition.classes(ofRank: communicator.rank) }
    /// This rank's class centers, `[K_r·k, D]` with `K_r = localClasses.count`: row `c·k + s` is
    /// sub-center `s` of global class `localClasses.lowerBound + c`. Named `"<name>.centers"`
    /// (the same name on every rank: a checkpoint must gather the slices in rank order).
    public let centers: Parameter
    /// `s > 0`.
    public var scale: Double
    /// ψ (see `MarginHead.margin`).
    public var margin: any Margin
    /// See `MarginHead.marginWarmup`.
    public var marginWarmup: MarginWarmup?
    /// See `MarginHead.gradientMode`.
    public var gradientMode: MarginGradient
    /// `K`, all classes over all ranks.
    public let classCount: Int
    /// `D`.
    public let embeddingDimension: Int
    /// `k ≥ 1`.
    public let subcenters: Int
    /// Partial FC's rate in `(0, 1]` (of all `K` classes, as `MarginHead.sampleRate`).
    public var sampleRate: Double
    /// Draws the global sample; the same state on every rank.
    public var samplingGenerator: SeededGenerator
    /// This rank's budget for one batch's extra memory (`HeadPlan`, for the global batch and the
    /// local classes).
    public var memoryBudgetBytes: Int
    /// See `MarginHead.chunkSize` (classes of this rank per chunk).
    public var chunkSize: Int?
    /// See `MarginHead.tileSize`.
    public var tileSize: Int? {
        didSet { precondition(tileSize.map { $0 >= 1 } ?? true, "ClassParallelMarginHead: tileSize must be ≥ 1: \(tileSize ?? 0)") }
    }
    /// See `MarginHead.passTileSize`.
    public var passTileSize: Int? {
        didSet { precondition(passTileSize.map { $0 >= 1 } ?? true, "ClassParallelMarginHead: passTileSize must be ≥ 1: \(passTileSize ?? 0)") }
    }
    /// This rank's plan of the last `loss` call (nil when it had no class in play).
    public private(set) var lastPlan: HeadPlan?
    /// The global classes of the last sampled step, ascending, the same on every rank (nil when
    /// all classes were used).
    public private(set) var lastSampledClasses: [Int]?
    private var scratch = HeadScratch()

    public var parameters: [Parameter] { [centers] }

    /// A head whose centers are exactly the rows of this rank's classes of the `MarginHead` made
    /// with the same arguments and generator state: every rank draws all `K·k·D` normal samples
    /// (in `MarginHead`'s order) and keeps its slice, so the model does not depend on `P`
    /// (drawing costs ≈ 10 ns per sample; only the slice is stored).
    ///
    /// - Parameters: as `MarginHead.init`, plus
    ///   - communicator: the ranks (default: one process, `SingleProcessCommunicator`).
    public init(classCount: Int, embeddingDimension: Int, scale: Double, margin: any Margin,
                marginWarmupEpochs: Int = 0, gradientMode: MarginGradient = .default, subcenters: Int = 1,
                sampleRate: Double = 1, memoryBudgetBytes: Int = MarginHead.defaultMemoryBudgetBytes,
                chunkSize: Int? = nil, communicator: any Communicator = SingleProcessCommunicator(),
                generator: inout SeededGenerator, name: String = "head") {
        precondition(classCount >= 1 && embeddingDimension >= 1,
                     "ClassParallelMarginHead: classCount \(classCount) and embeddingDimension \(embeddingDimension) must be ≥ 1")
        precondition(scale.isFinite && scale > 0, "ClassParallelMarginHead: scale must be finite and > 0: \(scale)")
        precondition(subcenters >= 1, "ClassParallelMarginHead: subcenters must be ≥ 1: \(subcenters)")
        precondition(sampleRate > 0 && sampleRate <= 1, "ClassParallelMarginHead: sampleRate must be in (0, 1]: \(sampleRate)")
        precondition(chunkSize.map { $0 >= 1 } ?? true, "ClassParallelMarginHead: chunkSize must be ≥ 1: \(chunkSize ?? 0)")
        precondition(marginWarmupEpochs >= 0, "ClassParallelMarginHead: marginWarmupEpochs must be ≥ 0: \(marginWarmupEpochs)")
        let partition = ClassPartition(classCount: classCount, worldSize: communicator.size)
        let slice = partition.classes(ofRank: communicator.rank)
        let rowWidth = subcenters * embeddingDimension
        var values = Tensor(shape: [slice.count * subcenters, embeddingDimension])
        for element in 0..<(classCount * rowWidth) {   // MarginHead's draws, in order
            let sample = generator.nextNormal() * 0.01
            let local = element - slice.lowerBound * rowWidth
            if local >= 0 && local < values.count { values.storage[local] = sample }
        }
        self.communicator = communicator
        self.partition = partition
        self.centers = Parameter(name: "\(name).centers", value: values)
        self.scale = scale
        self.margin = margin
        self.marginWarmup = marginWarmupEpochs > 0 ? MarginWarmup(margin: margin, epochs: marginWarmupEpochs) : nil
        self.gradientMode = gradientMode
        self.classCount = classCount
        self.embeddingDimension = embeddingDimension
        self.subcenters = subcenters
        self.sampleRate = sampleRate
        self.memoryBudgetBytes = memoryBudgetBytes
        self.chunkSize = chunkSize
        self.samplingGenerator = SeededGenerator(seed: sampleRate < 1 ? generator.next() : 0)
    }

    /// This rank's slice of `head`: its centers' rows of `localClasses` (copied), every setting,
    /// the margin warm-up and the sampling generator's state. Gradients start at zero.
    public init(slicing head: MarginHead, communicator: any Communicator = SingleProcessCommunicator()) {
        let partition = ClassPartition(classCount: head.classCount, worldSize: communicator.size)
        let slice = partition.classes(ofRank: communicator.rank)
        let rowWidth = head.subcenters * head.embeddingDimension
        let storage = Array(head.centers.value.storage[(slice.lowerBound * rowWidth)..<(slice.upperBound * rowWidth)])
        self.communicator = communicator
        self.partition = partition
        self.centers = Parameter(name: head.centers.name,
                                 value: Tensor(shape: [slice.count * head.subcenters, head.embeddingDimension], storage: storage),
                                 appliesWeightDecay: head.centers.appliesWeightDecay)
        self.scale = head.scale
        self.margin = head.margin
        self.marginWarmup = head.marginWarmup
        self.gradientMode = head.gradientMode
        self.classCount = head.classCount
        self.embeddingDimension = head.embeddingDimension
        self.subcenters = head.subcenters
        self.sampleRate = head.sampleRate
        self.samplingGenerator = head.samplingGenerator
        self.memoryBudgetBytes = head.memoryBudgetBytes
        self.chunkSize = head.chunkSize
        self.tileSize = head.tileSize
        self.passTileSize = head.passTileSize
    }

    /// Throws unless one rank's state and batch fit in `availableBytes`: the centers, gradient and
    /// momentum of the largest slice (`3·⌈K/P⌉·k·D·4` bytes), one batch's extra memory for the
    /// global batch `N = P·batchSize` over `⌈K/P⌉` classes (`HeadPlan`), and the gathered
    /// embeddings with the collectives' copies of them (`2·N·D·4`).
    ///
    /// - Parameters:
    ///   - batchSize: `N_r`, each rank's batch.
    ///   - worldSize: `P ≥ 1`.
    /// - Returns: rank 0's plan of a full batch and the bytes one rank needs.
    /// - Throws: `HeadMemoryError.stateDoesNotFit` (stating the slice's classes) or `.budgetTooSmall`.
    @discardableResult
    public static func checkMemory(batchSize: Int, worldSize: Int, classCount: Int, embeddingDimension: Int,
                                   subcenters: Int = 1, memoryBudgetBytes: Int = MarginHead.defaultMemoryBudgetBytes,
                                   chunkSize: Int? = nil, availableBytes: Int = SystemMemory.availableBytes)
        throws(HeadMemoryError) -> (plan: HeadPlan, neededBytes: Int)
    {
        let partition = ClassPartition(classCount: classCount, worldSize: worldSize)
        let (globalBatch, batchOverflow) = batchSize.multipliedReportingOverflow(by: worldSize)
        let slice = partition.largestSliceCount
        let plan = try HeadPlan(batchSize: globalBatch, classCount: slice, subcenters: subcenters,
                                embeddingDimension: embeddingDimension, memoryBudgetBytes: memoryBudgetBytes,
                                chunkSize: chunkSize)
        let (state, stateOverflow) = (3 * 4 * subcenters * embeddingDimension).multipliedReportingOverflow(by: slice)
        let (gathered, gatherOverflow) = (2 * 4 * embeddingDimension).multipliedReportingOverflow(by: globalBatch)
        let needed = batchOverflow || stateOverflow || gatherOverflow ? Int.max
            : state.addingReportingOverflow(plan.extraBytes).partialValue + gathered
        guard needed <= availableBytes else {
            throw .stateDoesNotFit(neededBytes: needed, availableBytes: availableBytes, classCount: slice,
                                   subcenters: subcenters, embeddingDimension: embeddingDimension)
        }
        return (plan, needed)
    }

    /// The loss of the global batch (see the type's description); call it on every rank at once.
    ///
    /// - Parameters:
    ///   - embeddings: this rank's `[N_r, D]`, `N_r ≥ 0` (at least one row over all ranks).
    ///   - labels: this rank's `[N_r]`, global classes in `0..<K`.
    /// - Returns: the global batch's loss, per-sample losses `[N]` and correct count; this rank's
    ///   `∂L/∂e` `[N_r, D]`; with Partial FC, `updatedRows` lists this rank's center rows in play
    ///   (possibly none).
    /// - Throws: `MarginLossError`, the same on every rank: as `MarginHead.loss` (samples of the
    ///   global batch, global center rows), or `.communication` when a collective times out or
    ///   fails. Nothing is accumulated on error.
    public func loss(embeddings: Tensor, labels: [Int], reduction: Reduction,
                     computeGradients: Bool) throws(MarginLossError) -> HeadOutput {
        let d = embeddingDimension, k = subcenters
        precondition(embeddings.rank == 2 && embeddings.shape[1] == d,
                     "ClassParallelMarginHead: embeddings must be [N, \(d)], got \(embeddings.shape)")
        precondition(centers.value.shape == [localClasses.count * k, d],
                     "ClassParallelMarginHead: centers must be [\(localClasses.count * k), \(d)], got \(centers.value.shape)")
        let p = communicator.size, rank = communicator.rank

        // The global batch: sizes first, so that every rank sees a mismatch on any rank.
        let sizes = try communicate { () throws(CommunicatorError) in
            try communicator.allGather([embeddings.shape[0], labels.count])
        }
        for r in 0..<p where sizes[2 * r] != sizes[2 * r + 1] {
            throw .batchSizeMismatch(embeddings: sizes[2 * r], labels: sizes[2 * r + 1])
        }
        let rowCounts = (0..<p).map { sizes[2 * $0] }
        let rowOffset = rowCounts[..<rank].reduce(0, +)
        let n = rowCounts.reduce(0, +)
        guard n > 0 else { throw .emptyBatch }
        let (globalEmbeddings, globalLabels) = try communicate { () throws(CommunicatorError) in
            (try communicator.allGather(embeddings.storage, counts: rowCounts.map { $0 * d }),
             try communicator.allGather(labels, counts: rowCounts))
        }
        try validateBatch(rowCount: n, labels: globalLabels, classCount: classCount)
        try validateFiniteRows(globalEmbeddings, columns: d)

        // The classes in play: the global sample (the same draw on every rank), each rank its slice.
        let samples = sampleRate < 1 && computeGradients
        let generatorBefore = samplingGenerator
        let sampled = samples ? MarginHead.sampledClasses(labels: globalLabels, classCount: classCount,
                                                          sampleRate: sampleRate, generator: &samplingGenerator) : nil
        let inPlayRanges = (0..<p).map { r in inPlay(partition.classes(ofRank: r), sampled: sampled) }
        // Every rank plans every rank's batch, so that a budget too small anywhere throws everywhere.
        var plan: HeadPlan?
        for r in 0..<p where !inPlayRanges[r].isEmpty {
            do {
                let rankPlan = try HeadPlan(batchSize: n, classCount: inPlayRanges[r].count, subcenters: k, embeddingDimension: d,
                                            memoryBudgetBytes: memoryBudgetBytes, chunkSize: chunkSize, tileSize: tileSize,
                                            passTileSize: passTileSize)
                if r == rank { plan = rankPlan }
            } catch {
                samplingGenerator = generatorBefore
                guard case let .budgetTooSmall(budget, needed) = error else { preconditionFailure("ClassParallelMarginHead: \(error)") }
                throw .memoryBudgetTooSmall(batchSize: n, budgetBytes: budget, neededBytes: needed)
            }
        }

        let slice = localClasses
        // Slice-local indices of this rank's classes in play (Partial FC), and the engine's labels:
        // the local class in play of each sample whose label this rank holds, else −1.
        let localInPlay: [Int]? = sampled.map { Array($0[inPlayRanges[rank]]).map { $0 - slice.lowerBound } }
        var engineLabels = [Int](repeating: -1, count: n)
        var position = [Int: Int]()
        if let localInPlay { for (index, c) in localInPlay.enumerated() { position[c] = index } }
        for (i, label) in globalLabels.enumerated() where slice.contains(label) {
            engineLabels[i] = localInPlay == nil ? label - slice.lowerBound : position[label - slice.lowerBound]!
        }
        var updatedRows: [ParameterRows] = []
        if let localInPlay {
            lastSampledClasses = sampled
            updatedRows = [ParameterRows(parameter: centers,
                                         rows: localInPlay.flatMap { c in (0..<k).map { c * k + $0 } })]
        } else if computeGradients {
            lastSampledClasses = nil
        }
        lastPlan = plan

        let (unitEmbeddings, embeddingNorms) = l2NormalizedRows(Tensor(shape: [n, d], storage: globalEmbeddings))
        let batch = plan.map {
            EngineBatch(unitEmbeddings: unitEmbeddings.storage, n: n, d: d, centers: centers.value.storage,
                        classes: localInPlay, classCount: inPlayRanges[rank].count, subcenters: k,
                        labels: engineLabels, plan: $0)
        }
        let context = ClassParallelContext(communicator: communicator, labels: globalLabels,
                                           owners: globalLabels.map { partition.owner(ofClass: $0) },
                                           classStart: slice.lowerBound, localClasses: localInPlay,
                                           firstRow: slice.lowerBound * k)
        let settings = EngineLoss(scale: scale, margin: margin, gradientMode: gradientMode, reduction: reduction)
        let result: EngineResult
        do {
            result = try runClassParallelEngine(batch, rows: n, d: d, loss: settings, computeGradients: computeGradients,
                                                centerGradient: &centers.gradient.storage, scratch: &scratch,
                                                context: context)
        } catch {
            switch error {
            case let .nonFiniteCenterRow(row): throw .nonFiniteParameter(parameter: centers.name, row: row)
            case let .communication(failure): throw .communication(failure)
            }
        }
        let summary = result.summary
        guard computeGradients else {
            return HeadOutput(loss: summary.loss, perSampleLoss: summary.perSample,
                              embeddingGradient: Tensor(shape: [0]), correctCount: summary.correctCount)
        }
        // ∂ê summed over the ranks, each rank receiving its own rows.
        let localRows = rowCounts[rank]
        let localUnitGradient = try communicate { () throws(CommunicatorError) in
            try communicator.reduceScatter(result.unitEmbeddingGradient, counts: rowCounts.map { $0 * d }, .sum)
        }
        let rows = (rowOffset * d)..<((rowOffset + localRows) * d)
        let embeddingGradient = l2NormalizedRowsBackward(
            gradient: Tensor(shape: [localRows, d], storage: localUnitGradient),
            normalized: Tensor(shape: [localRows, d], storage: Array(unitEmbeddings.storage[rows])),
            norms: Array(embeddingNorms[rowOffset..<(rowOffset + localRows)]))
        return HeadOutput(loss: summary.loss, perSampleLoss: summary.perSample, embeddingGradient: embeddingGradient,
                          correctCount: summary.correctCount, updatedRows: updatedRows)
    }

    /// See `MarginHead.beginEpoch(_:)`.
    public func beginEpoch(_ epoch: Int) {
        if let marginWarmup { margin = marginWarmup.margin(atEpoch: epoch) }
    }

    /// See `MarginHead.beginStep(_:stepsPerEpoch:)`.
    public func beginStep(_ step: Int, stepsPerEpoch: Int) {
        if let marginWarmup { margin = marginWarmup.margin(atStep: step, stepsPerEpoch: stepsPerEpoch) }
    }

    /// The positions in `sampled` (ascending global classes) of the classes of `slice`, or (no
    /// sampling) `0..<slice.count`.
    private func inPlay(_ slice: Range<Int>, sampled: [Int]?) -> Range<Int> {
        guard let sampled else { return 0..<slice.count }
        let start = firstIndex(in: sampled, notBelow: slice.lowerBound)
        return start..<firstIndex(in: sampled, notBelow: slice.upperBound)
    }

    private func firstIndex(in sorted: [Int], notBelow value: Int) -> Int {
        var (low, high) = (0, sorted.count)
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func communicate<R>(_ body: () throws(CommunicatorError) -> R) throws(MarginLossError) -> R {
        do { return try body() } catch { throw .communication(error) }
    }
}
