/// Seeded mini-batches from a `RecordIODataset`, decoded batch by batch: the lazy counterpart of
/// `DataLoader` for sets too large for memory (MS1M, Glint360K).
///
/// Epoch plans (order, flips, shifts) are drawn exactly as `DataLoader` draws them from the same
/// seed, so a loader over a set and a `DataLoader` over the same images decoded in memory give
/// the same batches. Each image is converted to `colorMode` and resized and centre-cropped to
/// `imageSize` when its batch is made.
///
/// ```swift
/// let set = try RecordIODataset.open(recordPath: "faces_emore/train.rec")
/// let loader = try RecordIOLoader(dataset: set, imageSize: ImageSize(width: 112, height: 112),
///                                 batchSize: 128, seed: 1)
/// let epoch = loader.epoch(0)
/// for index in 0..<epoch.count { let batch = try epoch.batch(index) /* images [128, 3, 112, 112] */ }
/// ```
public struct RecordIOLoader: Sendable {
    public let dataset: RecordIODataset
    /// The network input size every image is brought to.
    public let imageSize: ImageSize
    /// `.grayscale` (C = 1) or `.rgb` (C = 3).
    public let colorMode: ColorMode
    public let batchSize: Int
    public let shuffle: Bool
    public let augmentation: Augmentation
    public let dropLast: Bool
    public let seed: UInt64

    /// - Throws: `DatasetError.batchLargerThanDataset` when `batchSize > dataset.count`.
    /// - Precondition: `batchSize ≥ 1`; `colorMode` is not `.asStored`; the translation fits the size.
    public init(dataset: RecordIODataset, imageSize: ImageSize, colorMode: ColorMode = .rgb, batchSize: Int,
                shuffle: Bool = true, augmentation: Augmentation = .standard, dropLast: Bool = true,
                seed: UInt64) throws(DatasetError) {
        precondition(batchSize >= 1, "RecordIOLoader: batchSize must be ≥ 1, got \(batchSize)")
        precondition(colorMode != .asStored, "RecordIOLoader: choose .grayscale or .rgb")
        precondition(augmentation.maxTranslation >= 0 && augmentation.maxTranslation < min(imageSize.width, imageSize.height),
                     "RecordIOLoader: maxTranslation must be in 0..<\(min(imageSize.width, imageSize.height)), got \(augmentation.maxTranslation)")
        guard batchSize <= dataset.count else {
            throw .batchLargerThanDataset(batchSize: batchSize, sampleCount: dataset.count)
        }
        self.dataset = dataset
        self.imageSize = imageSize
        self.colorMode = colorMode
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.dropLast = dropLast
        self.seed = seed
    }

    /// Batches in one epoch: `⌊count / batchSize⌋` with `dropLast`, else `⌈count / batchSize⌉`.
    public var batchesPerEpoch: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The batches of epoch `epoch`: the plan is drawn now (no image is read); each batch is read
    /// and decoded when asked for.
    public func epoch(_ epoch: Int) -> RecordIOEpoch {
        RecordIOEpoch(loader: self, plan: DataLoader.makePlan(
            sampleCount: dataset.count, batchSize: batchSize, batchesPerEpoch: batchesPerEpoch,
            shuffle: shuffle, augmentation: augmentation, seed: seed, epoch: epoch))
    }
}

/// One epoch of a `RecordIOLoader`.
public struct RecordIOEpoch: Sendable {
    let loader: RecordIOLoader
    let plan: EpochPlan

    /// The number of batches.
    public var count: Int { plan.batchCount }

    /// The sample indices of batch `index`, `[N]`.
    public func indices(ofBatch index: Int) -> [Int] { Array(plan.order[plan.range(ofBatch: index)]) }

    /// Batch `index`, read and decoded now.
    ///
    /// - Returns: `images` `[N, C, H, W]` in [−1, 1], `labels` `[N]`, `indices` into the set.
    /// - Throws: any `RecordIOError` of the records read.
    /// - Precondition: `index` in `0..<count`.
    public func batch(_ index: Int) throws(RecordIOError) -> Batch {
        precondition(index >= 0 && index < count, "RecordIOEpoch: batch \(index) outside 0..<\(count)")
        let range = plan.range(ofBatch: index)
        return try loader.dataset.makeBatch(indices: Array(plan.order[range]), transforms: Array(plan.transforms[range]),
                                            imageSize: loader.imageSize, colorMode: loader.colorMode)
    }
}
