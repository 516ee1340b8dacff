import TensorCore

/// The angular-margin classification head: cosines between normalized embeddings and
/// normalized class centers, a margin on each sample's target cosine, a scale, softmax
/// cross-entropy.
///
/// Concretely, for embeddings `e [N, D]`, centers `W [K, D]` and labels `y`:
/// ```
/// ê = e/‖e‖, Ŵ = W/‖W‖ (rows)          cos = ê·Ŵᵀ                       [N, K]  (one sgemm)
/// z_ij = s·clamp(cos_ij) (j ≠ yᵢ),      z_{i,yᵢ} = s·ψ(clamp(cos_{i,yᵢ}))
/// ℓᵢ = log Σ_j exp(z_ij) − z_{i,yᵢ}
/// G = ∂L/∂cos [N, K] (in place of cos);  ∂ê = G·Ŵ [N, D],  ∂Ŵ = Gᵀ·ê [K, D]  (two sgemm)
/// ∂e, ∂W through the row normalizations (`l2NormalizedRowsBackward`)
/// ```
/// ArcFace (Deng et al., CVPR 2019, arXiv:1801.07698, Eq. 3 and 4) with `ArcFaceMargin` /
/// `CombinedMargin`; CosFace (arXiv:1801.09414, Eq. 4) with `CosFaceMargin`; NormFace
/// (arXiv:1704.06369) with `NormFaceMargin`; SphereFace (arXiv:1704.08063) with
/// `SphereFaceMargin`.
///
/// Sub-center ArcFace (Deng et al., ECCV 2020, arXiv:2010.05186): with `subcenters = k > 1`,
/// `cos_ij = max_s ê_i·Ŵ_{j·k+s}` and the gradient flows to the arg-max sub-center only.
/// Partial FC (An et al., CVPR 2022, arXiv:2203.15565): with `sampleRate < 1`, a training step
/// runs over the batch's classes plus a seeded sample of the others (see `sampledClasses`).
/// The engine (`Engine/MarginEngine.swift`) runs unchunked or in class chunks (`HeadPlan`), each
/// chunk in cache tiles of ≈ 4 MiB of centers. It never materializes Ŵ: the cosine GEMM uses raw
/// W and rescales columns by 1/‖w_k‖, and ∂W goes through the normalization with a per-row
/// rescale and projection (`Engine/CenterRowKernels.swift`). One exponential per logit when the
/// logits fit (the forward keeps them), one recomputed GEMM per extra chunk otherwise.
///
/// A zero embedding row normalizes to zero (ε clamp of `l2NormalizedRows`): all its cosines
/// are 0, which is not an error.
public final class MarginHead: ClassificationHead {
    /// The class centers `W`, stored unnormalized as `[K·k, D]` (row `c·k + s` is sub-center `s`
    /// of class `c`; with `k = 1`, row c is class c's center);
    /// rows are normalized on every step. Named `"<name>.centers"`; weight decay applies.
    /// Initialized from `normal(0, 0.01)`, as arcface_torch's `PartialFC` initializes its
    /// weight (the scale is irrelevant to the forward pass, which normalizes the rows, but it
    /// sets the effective step size of SGD on the unnormalized centers).
    public let centers: Parameter
    /// The logit scale `s > 0` (dimensionless; ArcFace and CosFace use 64).
    public var scale: Double
    /// The target-logit function ψ that `loss` applies. With a `marginWarmup`,
    /// `beginStep(_:stepsPerEpoch:)` sets it to the warm-up's margin of that step.
    public var margin: any Margin
    /// The margin's linear warm-up from 0 over the first epochs (per step), or nil for a constant `margin`.
    public var marginWarmup: MarginWarmup?
    /// Straight-through (the default; arcface_torch since 2022) or the exact chain rule through ψ.
    public var gradientMode: MarginGradient

    /// `K`.
    public let classCount: Int
    /// `D`.
    public let embeddingDimension: Int

    public var parameters: [Parameter] { [centers] }

    /// `k ≥ 1`, the centers per class (sub-center ArcFace; 1 for a plain head).
    public let subcenters: Int
    /// The fraction of classes in play per training step (Partial FC), in `(0, 1]`; 1 uses all.
    public var sampleRate: Double
    /// Draws the negative classes of each sampled step (Partial FC); seeded at init.
    public var samplingGenerator: SeededGenerator
    /// The most extra memory (bytes) one batch may allocate beyond the parameters and their
    /// gradient; decides between the unchunked path and the class-chunked one (`HeadPlan`).
    /// The head keeps those chunk buffers between batches (no page faults per step).
    public var memoryBudgetBytes: Int
    /// An explicit number of classes per chunk (overrides `memoryBudgetBytes`), or nil.
    public var chunkSize: Int?
    /// An explicit number of classes per cache tile (see `HeadPlan.tileSize`), or nil for
    /// `HeadPlan.defaultTileSize` (≈ 4 MiB of centers). A tuning and testing knob: results
    /// do not depend on it beyond fp32 round-off.
    public var tileSize: Int? {
        didSet { precondition(tileSize.map { $0 >= 1 } ?? true, "MarginHead: tileSize must be ≥ 1: \(tileSize ?? 0)") }
    }
    /// An explicit number of classes per pass (see `HeadPlan.passTileSize`), or nil for the
    /// default (≈ 16 MiB of centers). A tuning and testing knob like `tileSize`.
    public var passTileSize: Int? {
        didSet { precondition(passTileSize.map { $0 >= 1 } ?? true, "MarginHead: passTileSize must be ≥ 1: \(passTileSize ?? 0)") }
    }
    /// The plan of the last `loss` call (for reports and benchmarks).
    public private(set) var lastPlan: HeadPlan?
    /// The global classes of the last sampled step, ascending (nil when all classes were used).
    public private(set) var lastSampledClasses: [Int]?
    /// The engine's chunk buffers, reused between batches.
    private var scratch = HeadScratch()

    /// The default `memoryBudgetBytes`: 1 GiB (K = 100,000 with N = 512 and D = 512 runs
    /// unchunked; K = 1,000,000 runs in chunks).
    public static let defaultMemoryBudgetBytes = 1 << 30

    /// - Parameters:
    ///   - classCount: `K ≥ 1` identities.
    ///   - embeddingDimension: `D ≥ 1`.
    ///   - scale: `s > 0`.
    ///   - margin: ψ, e.g. `ArcFaceMargin(margin: 0.5)`.
    ///   - marginWarmupEpochs: `≥ 0`; with `W > 0`, a `MarginWarmup` of `margin` over `W` epochs
    ///     (applied by `beginStep(_:stepsPerEpoch:)`, from 0 at step 0); 0 keeps `margin` constant.
    ///   - gradientMode: `.straightThrough` (default, `MarginGradient.default`) or `.exact` (see
    ///     `MarginGradient` for why the exact gradient is not the default).
    ///   - subcenters: `k ≥ 1` centers per class (sub-center ArcFace, Deng et al., ECCV 2020,
    ///     arXiv:2010.05186; they use k = 3): `centers` is then `[K·k, D]`.
    ///   - sampleRate: Partial FC's sampling rate in `(0, 1]` (An et al., arXiv:2203.15565).
    ///   - memoryBudgetBytes: see the property.
    ///   - chunkSize: see the property.
    ///   - generator: draws the centers, `K·k·D` normal samples (and then one seed for the
    ///     sampling generator when `sampleRate < 1`).
    ///   - name: prefix of the parameter name.
    public init(classCount: Int, embeddingDimension: Int, scale: Double, margin: any Margin,
                marginWarmupEpochs: Int = 0, gradientMode: MarginGradient = .default, subcenters: Int = 1, sampleRate: Double = 1,
                memoryBudgetBytes: Int = MarginHead.defaultMemoryBudgetBytes, chunkSize: Int? = nil,
                generator: inout SeededGenerator, name: String = "head") {
        precondition(classCount >= 1 && embeddingDimension >= 1,
                     "MarginHead: classCount \(classCount) and embeddingDimension \(embeddingDimension) must be ≥ 1")
        precondition(scale.isFinite && scale > 0, "MarginHead: scale must be finite and > 0: \(scale)")
        precondition(subcenters >= 1, "MarginHead: subcenters must be ≥ 1: \(subcenters)")
        precondition(sampleRate > 0 && sampleRate <= 1, "MarginHead: sampleRate must be in (0, 1]: \(sampleRate)")
        precondition(chunkSize.map { $0 >= 1 } ?? true, "MarginHead: chunkSize must be ≥ 1: \(chunkSize ?? 0)")
        precondition(marginWarmupEpochs >= 0, "MarginHead: marginWarmupEpochs must be ≥ 0: \(marginWarmupEpochs)")
        self.classCount = classCount
        self.embeddingDimension = embeddingDimension
        self.scale = scale
        self.margin = margin
        self.marginWarmup = marginWarmupEpochs > 0 ? MarginWarmup(margin: margin, epochs: marginWarmupEpochs) : nil
        self.gradientMode = gradientMode
        self.subcenters = subcenters
        self.sampleRate = sampleRate
        self.memoryBudgetBytes = memoryBudgetBytes
        self.chunkSize = chunkSize
        self.centers = Parameter(
            name: "\(name).centers",
            value: .randomNormal([classCount * subcenters, embeddingDimension], standardDeviation: 0.01, using: &generator))
        self.samplingGenerator = SeededGenerator(seed: sampleRate < 1 ? generator.next() : 0)
    }

    /// A head after checking, before allocating anything, that its state fits in memory.
    ///
    /// Needs `3·K·k·D·4` bytes (centers, gradient, SGD momentum) plus one batch of `batchSize`
    /// under the chosen plan; throws `HeadMemoryError.stateDoesNotFit` with both numbers when
    /// that exceeds `availableBytes` (default: `SystemMemory.availableBytes`).
    public convenience init(checkingMemoryFor batchSize: Int, classCount: Int, embeddingDimension: Int, scale: Double,
                            margin: any Margin, marginWarmupEpochs: Int = 0, gradientMode: MarginGradient = .default,
                            subcenters: Int = 1, sampleRate: Double = 1, memoryBudgetBytes: Int = MarginHead.defaultMemoryBudgetBytes,
                            chunkSize: Int? = nil, availableBytes: Int = SystemMemory.availableBytes,
                            generator: inout SeededGenerator, name: String = "head") throws(HeadMemoryError) {
        try MarginHead.checkMemory(batchSize: batchSize, classCount: classCount, embeddingDimension: embeddingDimension,
                                   subcenters: subcenters, memoryBudgetBytes: memoryBudgetBytes, chunkSize: chunkSize,
                                   availableBytes: availableBytes)
        self.init(classCount: classCount, embeddingDimension: embeddingDimension, scale: scale, margin: margin,
                  marginWarmupEpochs: marginWarmupEpochs, gradientMode: gradientMode, subcenters: subcenters,
                  sampleRate: sampleRate, memoryBudgetBytes: memoryBudgetBytes, chunkSize: chunkSize, generator: &generator, name: name)
    }

    /// Throws unless `3·K·k·D·4` bytes of state plus one batch's extra memory fit in `availableBytes`.
    ///
    /// - Returns: the plan of a full batch of `batchSize` and the total bytes needed.
    @discardableResult
    public static func checkMemory(batchSize: Int, classCount: Int, embeddingDimension: Int, subcenters: Int = 1,
                                   memoryBudgetBytes: Int = defaultMemoryBudgetBytes, chunkSize: Int? = nil,
                                   availableBytes: Int = SystemMemory.availableBytes)
        throws(HeadMemoryError) -> (plan: HeadPlan, neededBytes: Int)
    {
        let plan = try HeadPlan(batchSize: batchSize, classCount: classCount, subcenters: subcenters,
                                embeddingDimension: embeddingDimension, memoryBudgetBytes: memoryBudgetBytes,
                                chunkSize: chunkSize)
        let (state, overflow) = (3 * 4 * subcenters * embeddingDimension).multipliedReportingOverflow(by: classCount)
        let needed = overflow ? Int.max : state + plan.extraBytes
        guard needed <= availableBytes else {
            throw .stateDoesNotFit(neededBytes: needed, availableBytes: availableBytes, classCount: classCount,
                                   subcenters: subcenters, embeddingDimension: embeddingDimension)
        }
        return (plan, needed)
    }

    /// The loss of a batch through the fused engine (`Engine/MarginEngine.swift`): unchunked when
    /// the plan fits `memoryBudgetBytes` (or `chunkSize` is nil and it fits), else class-chunked
    /// with an online log-sum-exp; with `sampleRate < 1` and `computeGradients`, over the
    /// sampled classes only (Partial FC; see `sampledClasses(labels:)`). Then the output's
    /// `updatedRows` lists the centers' rows of those classes: pass it to
    /// `SGD.step(learningRate:updatingOnly:)` so that every other row stays untouched.
    ///
    /// - Throws: `MarginLossError`: a bad batch (labels, sizes), `.memoryBudgetTooSmall` for a
    ///   batch whose plan cannot fit `memoryBudgetBytes` even one class per chunk (stating the
    ///   bytes needed), `.nonFiniteEmbedding(sample:)`
    ///   for an embedding row holding NaN or ±Inf, `.nonFiniteParameter(parameter: centers.name,
    ///   row:)` for a center row in play (all rows, or the sampled ones) holding NaN or ±Inf —
    ///   found from the inverse norms the forward computes anyway (NaN for a NaN row, 0 for an
    ///   infinite one), so it costs no pass over `W`. Nothing is accumulated on error.
    public func loss(embeddings: Tensor, labels: [Int], reduction: Reduction,
                     computeGradients: Bool) throws(MarginLossError) -> HeadOutput {
        let n = checkedBatchSize(embeddings)
        let d = embeddingDimension
        try validateBatch(rowCount: n, labels: labels, classCount: classCount)
        try validateFiniteRows(embeddings.storage, columns: d)

        // The plan first: a batch the memory budget cannot hold is an error before anything
        // (the sampling generator included) changes.
        let samples = sampleRate < 1 && computeGradients
        let inPlay = samples ? sampledClassCount(labels: labels) : classCount
        let plan: HeadPlan
        do {
            plan = try HeadPlan(batchSize: n, classCount: inPlay, subcenters: subcenters, embeddingDimension: d,
                                memoryBudgetBytes: memoryBudgetBytes, chunkSize: chunkSize, tileSize: tileSize,
                                passTileSize: passTileSize)
        } catch {
            guard case let .budgetTooSmall(budget, needed) = error else { preconditionFailure("MarginHead: \(error)") }
            throw .memoryBudgetTooSmall(batchSize: n, budgetBytes: budget, neededBytes: needed)
        }

        var classes: [Int]? = nil
        var localLabels = labels
        var updatedRows: [ParameterRows] = []
        if samples {
            let sampled = sampledClasses(labels: labels)
            var position = [Int: Int](minimumCapacity: sampled.count)
            for (local, global) in sampled.enumerated() { position[global] = local }
            localLabels = labels.map { position[$0]! }
            classes = sampled
            lastSampledClasses = sampled
            var rows = [Int]()
            rows.reserveCapacity(sampled.count * subcenters)
            for c in sampled { for s in 0..<subcenters { rows.append(c * subcenters + s) } }
            updatedRows = [ParameterRows(parameter: centers, rows: rows)]
        } else if computeGradients {
            lastSampledClasses = nil
        }
        assert((classes?.count ?? classCount) == inPlay, "MarginHead: sampled \(classes?.count ?? 0) classes, planned \(inPlay)")
        lastPlan = plan
        let (unitEmbeddings, embeddingNorms) = l2NormalizedRows(embeddings)   // ê [N, D]
        let batch = EngineBatch(unitEmbeddings: unitEmbeddings.storage, n: n, d: d, centers: centers.value.storage,
                                classes: classes, classCount: inPlay, subcenters: subcenters, labels: localLabels,
                                plan: plan)
        let settings = EngineLoss(scale: scale, margin: margin, gradientMode: gradientMode, reduction: reduction)
        let result: EngineResult
        do {
            result = try runMarginEngine(batch, loss: settings, computeGradients: computeGradients,
                                         centerGradient: &centers.gradient.storage, scratch: &scratch)
        } catch {
            throw .nonFiniteParameter(parameter: centers.name, row: error.row)
        }
        let summary = result.summary
        guard computeGradients else {
            return HeadOutput(loss: summary.loss, perSampleLoss: summary.perSample,
                              embeddingGradient: Tensor(shape: [0]), correctCount: summary.correctCount)
        }
        let embeddingGradient = l2NormalizedRowsBackward(
            gradient: Tensor(shape: [n, d], storage: result.unitEmbeddingGradient), normalized: unitEmbeddings,
            norms: embeddingNorms)
        return HeadOutput(loss: summary.loss, perSampleLoss: summary.perSample,
                          embeddingGradient: embeddingGradient, correctCount: summary.correctCount,
                          updatedRows: updatedRows)
    }

    /// Sets `margin` to `marginWarmup`'s margin at the first step of training epoch `epoch`
    /// (0-based); nothing without a warm-up.
    public func beginEpoch(_ epoch: Int) {
        if let marginWarmup { margin = marginWarmup.margin(atEpoch: epoch) }
    }

    /// Sets `margin` to `marginWarmup`'s margin of global step `step` (0-based):
    /// `min(1, step/(W·stepsPerEpoch))` of the full margin; nothing without a warm-up.
    public func beginStep(_ step: Int, stepsPerEpoch: Int) {
        if let marginWarmup { margin = marginWarmup.margin(atStep: step, stepsPerEpoch: stepsPerEpoch) }
    }

    /// Partial FC's classes for one step (An et al., "Killing Two Birds with One Stone: Efficient
    /// and Robust Training of Face Recognition CNNs by Partial FC", CVPR 2022, arXiv:2203.15565,
    /// Sec. 3.2): every label of the batch, plus negatives drawn uniformly without replacement
    /// from the other classes with `samplingGenerator` until `max(⌊r·K⌋, positives)` classes.
    ///
    /// - Returns: the global class indices, ascending.
    public func sampledClasses(labels: [Int]) -> [Int] {
        Self.sampledClasses(labels: labels, classCount: classCount, sampleRate: sampleRate, generator: &samplingGenerator)
    }

    /// `sampledClasses(labels:)` of a head with `classCount` classes and `sampleRate`, drawing
    /// with `generator` (shared with `ClassParallelMarginHead`, which draws the global sample).
    static func sampledClasses(labels: [Int], classCount: Int, sampleRate: Double,
                               generator: inout SeededGenerator) -> [Int] {
        var isPositive = [Bool](repeating: false, count: classCount)
        for label in labels { isPositive[label] = true }
        let positives = isPositive.indices.filter { isPositive[$0] }
        let wanted = Self.sampledClassCount(classCount: classCount, sampleRate: sampleRate, positives: positives.count)
        var candidates = isPositive.indices.filter { !isPositive[$0] }
        let draws = wanted - positives.count
        for i in 0..<draws {   // partial Fisher–Yates
            let j = i + Int(generator.next(upperBound: UInt64(candidates.count - i)))
            candidates.swapAt(i, j)
        }
        return (positives + candidates.prefix(draws)).sorted()
    }

    /// How many classes `sampledClasses(labels:)` returns for `labels` (valid labels), without
    /// drawing: `min(K, max(⌊r·K⌋, distinct labels))`.
    private func sampledClassCount(labels: [Int]) -> Int {
        Self.sampledClassCount(classCount: classCount, sampleRate: sampleRate, positives: Set(labels).count)
    }

    private static func sampledClassCount(classCount: Int, sampleRate: Double, positives: Int) -> Int {
        min(classCount, max(Int(sampleRate * Double(classCount)), positives))
    }

    private func checkedBatchSize(_ embeddings: Tensor) -> Int {
        precondition(embeddings.rank == 2 && embeddings.shape[1] == embeddingDimension,
                     "MarginHead: embeddings must be [N, \(embeddingDimension)], got \(embeddings.shape)")
        precondition(centers.value.shape == [classCount * subcenters, embeddingDimension],
                     "MarginHead: centers must be [\(classCount * subcenters), \(embeddingDimension)], got \(centers.value.shape)")
        return embeddings.shape[0]
    }
}
