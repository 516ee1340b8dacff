import Dispatch
import TensorCore

/// Turns a `FaceDataset` into seeded mini-batches: shuffling, augmentation, batching, and an
/// optional background prefetch of the next batch.
///
/// Every epoch has a *plan* drawn up front from two random streams derived from
/// `(seed, epoch)`: the sample order (a Fisher–Yates shuffle, or data set order) and one
/// `SampleTransform` per sample (flip bit first, then `dx`, then `dy`, in epoch order). A batch is
/// then a pure function of the data set and its slice of the plan, so:
/// - the same seed gives the same batches, whatever the prefetch setting or thread timing;
/// - each epoch has its own order and augmentations, and `epoch` can be set to resume a run;
/// - prefetching (one batch ahead, on a private serial queue) cannot change any value.
///
/// Batches hold `[N, C, H, W]` images with values `x·2 − 1` in [−1, 1]. Without `dropLast` the
/// last batch of an epoch may be smaller than `batchSize`.
///
/// ```swift
/// let loader = try DataLoader(dataset: train, batchSize: 64, shuffle: true,
///                             augmentation: .standard, dropLast: true, seed: 42)
/// for batch in loader.nextEpoch() { /* batch.images [64, 1, 112, 92], batch.labels [64] */ }
/// ```
///
/// Prefetch runs batch assembly (memory copies) on a second thread while the caller computes;
/// leave it off when OpenBLAS already uses every core (more busy threads than cores slow both).
public final class DataLoader {
    /// The samples.
    public let dataset: FaceDataset
    /// Samples per batch `N` (the last batch of an epoch may be smaller unless `dropLast`).
    public let batchSize: Int
    /// Whether each epoch visits the samples in a fresh seeded random order.
    public let shuffle: Bool
    /// The training-time transforms.
    public let augmentation: Augmentation
    /// Whether an incomplete last batch is dropped.
    public let dropLast: Bool
    /// The seed of every random stream of the loader.
    public let seed: UInt64
    /// Whether `nextEpoch()` assembles the next batch in the background.
    public let prefetch: Bool
    /// The epoch that the next call to `nextEpoch()` (or `batches()`) produces, from 0. Set it to
    /// resume a run: epoch `e`'s batches depend only on `seed` and `e`.
    public var epoch: Int = 0
    /// The rows of every batch this loader reads, for one rank of a data-parallel run
    /// (default `BatchShard.whole`). The plan (order, flips, shifts, `batchesPerEpoch`) is that of
    /// the global `batchSize`, so every rank shares it and reads its own disjoint part.
    public var shard = BatchShard.whole

    private let prefetchQueue = DispatchQueue(label: "FaceData.DataLoader.prefetch", qos: .userInitiated)

    /// - Parameters:
    ///   - dataset: the samples (must be consistent: one label and path per image, one image size).
    ///   - batchSize: samples per batch, ≥ 1 and ≤ `dataset.count`.
    ///   - shuffle: draw a new random order every epoch (otherwise data set order).
    ///   - augmentation: per-sample random transforms (`.none` for none).
    ///   - dropLast: drop the incomplete last batch of each epoch.
    ///   - seed: seeds the shuffle and augmentation streams.
    ///   - prefetch: assemble the next batch on a background thread (results are identical).
    /// - Throws: `DatasetError.batchLargerThanDataset` when `batchSize > dataset.count`.
    /// - Precondition: `batchSize ≥ 1`; `0 ≤ augmentation.maxTranslation < min(H, W)`.
    public init(dataset: FaceDataset, batchSize: Int, shuffle: Bool, augmentation: Augmentation,
                dropLast: Bool, seed: UInt64, prefetch: Bool = false) throws(DatasetError) {
        precondition(batchSize >= 1, "DataLoader: batchSize must be ≥ 1, got \(batchSize)")
        precondition(dataset.labels.count == dataset.count && dataset.paths.count == dataset.count,
                     "DataLoader: \(dataset.count) images, \(dataset.labels.count) labels, \(dataset.paths.count) paths")
        let size = dataset.imageSize
        precondition(augmentation.maxTranslation >= 0 && augmentation.maxTranslation < min(size.width, size.height),
                     "DataLoader: maxTranslation must be in 0..<\(min(size.width, size.height)) pixels, got \(augmentation.maxTranslation)")
        guard batchSize <= dataset.count else {
            throw .batchLargerThanDataset(batchSize: batchSize, sampleCount: dataset.count)
        }
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.dropLast = dropLast
        self.seed = seed
        self.prefetch = prefetch
    }

    /// Batches in one epoch: `⌊count / batchSize⌋` with `dropLast`, else `⌈count / batchSize⌉`.
    public var batchesPerEpoch: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The batches of epoch `epoch`, produced lazily (with prefetch, one batch ahead), and
    /// advances `epoch` by one.
    public func nextEpoch() -> EpochBatches {
        let plan = makePlan(epoch: epoch)
        epoch += 1
        return EpochBatches(dataset: dataset, plan: plan, queue: prefetch ? prefetchQueue : nil)
    }

    /// All batches of the next epoch at once (`Array(nextEpoch())`); advances `epoch` by one.
    public func batches() -> [Batch] {
        Array(nextEpoch())
    }

    /// The un-augmented images of the given samples, for evaluation
    /// (`dataset.makeTensor(indices:flipped:)`).
    ///
    /// - Returns: `[N, C, H, W]`, values `x·2 − 1` in [−1, 1]; mirrored left–right if `flipped`.
    public func makeTensor(indices: [Int], flipped: Bool = false) -> Tensor {
        dataset.makeTensor(indices: indices, flipped: flipped)
    }

    /// The sample order and transforms of epoch `epoch`.
    func makePlan(epoch: Int) -> EpochPlan {
        var plan = DataLoader.makePlan(sampleCount: dataset.count, batchSize: batchSize, batchesPerEpoch: batchesPerEpoch,
                                       shuffle: shuffle, augmentation: augmentation, seed: seed, epoch: epoch)
        plan.shard = shard
        return plan
    }

    /// The plan of epoch `epoch` over `sampleCount` samples (shared with `RecordIOLoader`).
    static func makePlan(sampleCount total: Int, batchSize: Int, batchesPerEpoch: Int, shuffle: Bool,
                         augmentation: Augmentation, seed: UInt64, epoch: Int) -> EpochPlan {
        precondition(epoch >= 0, "DataLoader: epoch must be ≥ 0, got \(epoch)")
        /// An independent seed for random stream `stream` of epoch `epoch`.
        func streamSeed(stream: UInt64, epoch: Int) -> UInt64 {
            splitMix64(splitMix64(seed ^ (stream &* 0xD1B5_4A32_D192_ED03)) &+ UInt64(epoch))
        }
        var order = Array(0..<total)
        if shuffle {
            var generator = SeededGenerator(seed: streamSeed(stream: 1, epoch: epoch))
            generator.shuffle(&order)
        }
        let sampleCount = batchesPerEpoch == 0 ? 0 : min(order.count, batchesPerEpoch * batchSize)
        order.removeLast(order.count - sampleCount)

        var transforms = [SampleTransform](repeating: .identity, count: sampleCount)
        let t = augmentation.maxTranslation
        if augmentation.horizontalFlip || t > 0 {
            var generator = SeededGenerator(seed: streamSeed(stream: 2, epoch: epoch))
            for position in 0..<sampleCount {
                if augmentation.horizontalFlip { transforms[position].isFlipped = generator.next() >> 63 == 1 }
                if t > 0 {
                    transforms[position].offsetX = generator.nextInteger(in: -t...t)
                    transforms[position].offsetY = generator.nextInteger(in: -t...t)
                }
            }
        }
        return EpochPlan(epoch: epoch, order: order, transforms: transforms, batchSize: batchSize)
    }
}

/// One epoch's sample order and per-sample transforms, `[samples]` each.
struct EpochPlan: Sendable {
    var epoch: Int
    var order: [Int]
    var transforms: [SampleTransform]
    var batchSize: Int

    var batchCount: Int { (order.count + batchSize - 1) / batchSize }

    /// The rows of every batch this plan's reader takes (`BatchShard.whole`: all).
    var shard = BatchShard.whole

    /// The plan positions of batch `index` that this plan's reader takes (`shard`).
    func range(ofBatch index: Int) -> Range<Int> {
        shard.rows(of: (index * batchSize)..<min(order.count, (index + 1) * batchSize))
    }

    func makeBatch(_ index: Int, from dataset: FaceDataset) -> Batch {
        let range = range(ofBatch: index)
        return dataset.makeBatch(indices: order[range], transforms: transforms[range])
    }
}

/// The batches of one epoch, in order; a single-pass sequence.
///
/// With prefetch, the batch after the one just returned is being assembled on the loader's
/// serial queue while the caller works; `next()` waits for it if it is not ready yet.
public final class EpochBatches: Sequence, IteratorProtocol {
    /// The epoch these batches belong to.
    public let epoch: Int
    /// The number of batches in the epoch.
    public let count: Int

    private let dataset: FaceDataset
    private let plan: EpochPlan
    private let queue: DispatchQueue?
    private var nextIndex = 0
    private var pending: PendingBatch?

    init(dataset: FaceDataset, plan: EpochPlan, queue: DispatchQueue?) {
        self.epoch = plan.epoch
        self.count = plan.batchCount
        self.dataset = dataset
        self.plan = plan
        self.queue = queue
        startPrefetch()
    }

    /// The next batch, or nil after the last one.
    public func next() -> Batch? {
        guard nextIndex < count else { return nil }
        let batch = pending?.wait() ?? plan.makeBatch(nextIndex, from: dataset)
        pending = nil
        nextIndex += 1
        startPrefetch()
        return batch
    }

    public var underestimatedCount: Int { count - nextIndex }

    /// Skips the next `batchCount` batches without assembling them (to resume an epoch in its
    /// middle: the remaining batches are exactly those an uninterrupted pass would give).
    ///
    /// - Precondition: `0 ≤ batchCount ≤` the number of batches left.
    public func skip(_ batchCount: Int) {
        precondition(batchCount >= 0 && batchCount <= count - nextIndex,
                     "EpochBatches: cannot skip \(batchCount) of the \(count - nextIndex) batches left")
        guard batchCount > 0 else { return }
        _ = pending?.wait()
        pending = nil
        nextIndex += batchCount
        startPrefetch()
    }

    private func startPrefetch() {
        guard let queue, nextIndex < count else { return }
        let (dataset, plan, index) = (dataset, plan, nextIndex)
        pending = PendingBatch(on: queue) { plan.makeBatch(index, from: dataset) }
    }
}

/// A batch being assembled on another thread.
///
/// Thread safety (why `@unchecked Sendable` is sound): `result` is written exactly once, by the
/// work item, before it signals `ready`; it is read only by `wait()`, after `ready.wait()`. The
/// semaphore orders the write before the read, and nothing else touches `result`.
private final class PendingBatch: @unchecked Sendable {
    private var result: Batch?
    private let ready = DispatchSemaphore(value: 0)

    init(on queue: DispatchQueue, work: @escaping @Sendable () -> Batch) {
        queue.async {
            self.result = work()
            self.ready.signal()
        }
    }

    /// Blocks until the batch is assembled, then returns it. Call at most once.
    func wait() -> Batch {
        ready.wait()
        guard let batch = result else { preconditionFailure("PendingBatch: signalled without a result") }
        result = nil
        return batch
    }
}
