import Dispatch
import Synchronization
import TensorCore

/// Seeded mini-batches from a `RecordIOFaceSet`, read and decoded batch by batch on background
/// threads: the streamed counterpart of `DataLoader` (memory holds at most `prefetchDepth`
/// decoded batches beyond the caller's, whatever the set's size).
///
/// Epoch plans (order, flips, shifts) are drawn from `(seed, epoch)` exactly as `DataLoader`
/// draws them, and batches are assembled by the same function, so a loader over a pack and a
/// `DataLoader` over the folder it was packed from (same seed) give the same batches, bit for bit
/// when the pack's payloads are lossless (PNG). Prefetching cannot change any value: a batch is a
/// pure function of the set and its slice of the plan.
///
/// ```swift
/// let set = try RecordIOFaceSet.open(recordPath: "train.rec", imageSize: ImageSize(width: 112, height: 112), colorMode: .rgb)
/// let loader = try StreamingDataLoader(dataset: set, batchSize: 128, augmentation: .standard, seed: 1)
/// let epoch = loader.nextEpoch()
/// while let batch = try epoch.next() { /* batch.images [128, 3, 112, 112] */ }
/// ```
public final class StreamingDataLoader {
    public let dataset: RecordIOFaceSet
    /// Samples per batch `N`.
    public let batchSize: Int
    public let shuffle: Bool
    public let augmentation: Augmentation
    public let dropLast: Bool
    public let seed: UInt64
    /// Batches read ahead of the caller on background threads (0: each batch is read when asked for).
    public let prefetchDepth: Int
    /// The epoch the next `nextEpoch()` produces (set it to resume).
    public var epoch: Int = 0
    /// How many decoded images the loader holds and has decoded (instrumentation for tests and
    /// benchmarks).
    public let statistics = StreamingLoaderStatistics()

    private let queue = DispatchQueue(label: "FaceData.StreamingDataLoader.prefetch", qos: .userInitiated,
                                      attributes: .concurrent)

    /// - Parameters:
    ///   - prefetchDepth: batches decoded ahead in the background, ≥ 0 (default 2: one being
    ///     decoded while the next waits, so a slow record does not stall the step).
    /// - Throws: `DatasetError.batchLargerThanDataset` when `batchSize > dataset.count`.
    /// - Precondition: `batchSize ≥ 1`, `prefetchDepth ≥ 0`, `0 ≤ maxTranslation < min(H, W)`.
    public init(dataset: RecordIOFaceSet, batchSize: Int, shuffle: Bool = true, augmentation: Augmentation,
                dropLast: Bool = true, seed: UInt64, prefetchDepth: Int = 2) throws(DatasetError) {
        precondition(batchSize >= 1, "StreamingDataLoader: batchSize must be ≥ 1, got \(batchSize)")
        precondition(prefetchDepth >= 0, "StreamingDataLoader: prefetchDepth must be ≥ 0, got \(prefetchDepth)")
        let size = dataset.imageSize
        precondition(augmentation.maxTranslation >= 0 && augmentation.maxTranslation < min(size.width, size.height),
                     "StreamingDataLoader: maxTranslation must be in 0..<\(min(size.width, size.height)), got \(augmentation.maxTranslation)")
        guard batchSize <= dataset.count else {
            throw .batchLargerThanDataset(batchSize: batchSize, sampleCount: dataset.count)
        }
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.dropLast = dropLast
        self.seed = seed
        self.prefetchDepth = prefetchDepth
    }

    /// The rows of every batch this loader reads (see `DataLoader.shard`).
    public var shard = BatchShard.whole

    /// Batches in one epoch: `⌊count / batchSize⌋` with `dropLast`, else `⌈count / batchSize⌉`.
    public var batchesPerEpoch: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The batches of epoch `epoch` (the plan is drawn now, no image is read yet; the first
    /// `prefetchDepth` batches start decoding), and advances `epoch` by one.
    public func nextEpoch() -> StreamedEpochBatches {
        var plan = DataLoader.makePlan(sampleCount: dataset.count, batchSize: batchSize, batchesPerEpoch: batchesPerEpoch,
                                       shuffle: shuffle, augmentation: augmentation, seed: seed, epoch: epoch)
        plan.shard = shard
        epoch += 1
        return StreamedEpochBatches(dataset: dataset, plan: plan, depth: prefetchDepth, queue: queue, statistics: statistics)
    }
}

/// Counters of a `StreamingDataLoader`, safe to read from any thread.
public final class StreamingLoaderStatistics: Sendable {
    private let held = Atomic<Int>(0)
    private let peak = Atomic<Int>(0)
    private let decoded = Atomic<Int>(0)

    /// Decoded images the loader holds now: decoded for a batch not yet handed to the caller.
    public var decodedImagesHeld: Int { held.load(ordering: .relaxed) }
    /// The most decoded images it ever held at once (≤ `prefetchDepth · batchSize`, or one
    /// batch without prefetch).
    public var peakDecodedImagesHeld: Int { peak.load(ordering: .relaxed) }
    /// Images decoded since the loader was made.
    public var imagesDecoded: Int { decoded.load(ordering: .relaxed) }

    func imageDecoded() {
        decoded.add(1, ordering: .relaxed)
        let now = held.add(1, ordering: .relaxed).newValue
        var seen = peak.load(ordering: .relaxed)
        while now > seen {
            let (exchanged, original) = peak.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if exchanged { break }
            seen = original
        }
    }

    func released(_ count: Int) { held.subtract(count, ordering: .relaxed) }
}

/// The batches of one epoch of a `StreamingDataLoader`, in order; single pass. `next()` hands
/// out a batch and starts decoding the one `prefetchDepth` ahead.
public final class StreamedEpochBatches {
    /// The epoch these batches belong to.
    public let epoch: Int
    /// The number of batches in the epoch.
    public let count: Int

    private let dataset: RecordIOFaceSet
    private let plan: EpochPlan
    private let depth: Int
    private let queue: DispatchQueue
    private let statistics: StreamingLoaderStatistics
    private var nextIndex = 0
    private var scheduled = 0
    private var pending: [PendingRead] = []

    init(dataset: RecordIOFaceSet, plan: EpochPlan, depth: Int, queue: DispatchQueue, statistics: StreamingLoaderStatistics) {
        self.epoch = plan.epoch
        self.count = plan.batchCount
        self.dataset = dataset
        self.plan = plan
        self.depth = depth
        self.queue = queue
        self.statistics = statistics
        fill()
    }

    deinit { discardPending() }

    /// The next batch, or nil after the last one.
    ///
    /// - Throws: the `RecordIOError` of a record of the batch (a truncated or corrupt `.rec`,
    ///   a wrong `.idx` offset, an undecodable payload), naming the file and byte offset.
    public func next() throws(RecordIOError) -> Batch? {
        guard nextIndex < count else { return nil }
        let outcome: (result: Result<Batch, RecordIOError>, decoded: Int)
        if pending.isEmpty {
            outcome = Self.read(nextIndex, dataset: dataset, plan: plan, statistics: statistics)
            scheduled = nextIndex + 1
        } else {
            outcome = pending.removeFirst().wait()
        }
        nextIndex += 1
        statistics.released(outcome.decoded)  // the caller's now; then the next read starts
        fill()
        return try outcome.result.get()
    }

    public var underestimatedCount: Int { count - nextIndex }

    /// Skips the next `batchCount` batches without reading them (to resume an epoch mid-way).
    ///
    /// - Precondition: `0 ≤ batchCount ≤` the number of batches left.
    public func skip(_ batchCount: Int) {
        precondition(batchCount >= 0 && batchCount <= count - nextIndex,
                     "StreamedEpochBatches: cannot skip \(batchCount) of the \(count - nextIndex) batches left")
        guard batchCount > 0 else { return }
        discardPending()
        nextIndex += batchCount
        scheduled = nextIndex
        fill()
    }

    /// Starts reading batches until `depth` are pending.
    private func fill() {
        if scheduled < nextIndex { scheduled = nextIndex }
        while depth > 0, pending.count < depth, scheduled < count {
            let (index, dataset, plan, statistics) = (scheduled, dataset, plan, statistics)
            pending.append(PendingRead(on: queue) { Self.read(index, dataset: dataset, plan: plan, statistics: statistics) })
            scheduled += 1
        }
    }

    private func discardPending() {
        for read in pending { statistics.released(read.wait().decoded) }
        pending.removeAll()
    }

    private static func read(_ index: Int, dataset: RecordIOFaceSet, plan: EpochPlan,
                             statistics: StreamingLoaderStatistics) -> (result: Result<Batch, RecordIOError>, decoded: Int) {
        let range = plan.range(ofBatch: index)
        var decoded = 0
        let result = Result { () throws(RecordIOError) -> Batch in
            try dataset.makeBatch(indices: Array(plan.order[range]), transforms: Array(plan.transforms[range])) {
                statistics.imageDecoded()
                decoded += 1
            }
        }
        return (result, decoded)
    }
}

/// A batch being read on another thread.
///
/// Thread safety (why `@unchecked Sendable` is sound): `outcome` is written exactly once, by the
/// work item, before it signals `ready`; it is read only by `wait()`, after `ready.wait()`.
private final class PendingRead: @unchecked Sendable {
    private var outcome: (result: Result<Batch, RecordIOError>, decoded: Int)?
    private let ready = DispatchSemaphore(value: 0)

    init(on queue: DispatchQueue, work: @escaping @Sendable () -> (result: Result<Batch, RecordIOError>, decoded: Int)) {
        queue.async {
            self.outcome = work()
            self.ready.signal()
        }
    }

    /// Blocks until the batch is read, then returns it. Call at most once.
    func wait() -> (result: Result<Batch, RecordIOError>, decoded: Int) {
        ready.wait()
        guard let outcome else { preconditionFailure("PendingRead: signalled without a result") }
        self.outcome = nil
        return outcome
    }
}
