import TensorCore

/// Identities and images of a RecordIO pack, read on demand: the streamed counterpart of
/// `FaceDataset` for training sets too large for memory. Only the pack's index and identity
/// records are held (≈ 50 bytes per image, no pixels); each image is read by its `.idx` offset,
/// decoded, converted to `colorMode` and resized and centre-cropped to `imageSize` when a batch
/// asks for it.
///
/// Sample `i` is pack image `samples[i]`, of identity `identities[labels[i]]`. Samples are
/// grouped by identity in the identities' order, as `FaceDataset.load` groups a folder's, so
/// `splitByIdentity` and `subset` give the same identities and sample indices as they do on
/// the folder a pack was made from (`packFaceFolder`), and the `DataLoader`'s seeded plans the
/// same batches.
public struct RecordIOFaceSet: Sendable {
    /// The pack.
    public let records: RecordIODataset
    /// The identity names, `[K]` (the pack's names, or `"0"`, `"1"`, … when it stores none).
    public let identities: [String]
    /// The pack image (index into `records`) of each sample, `[count]`.
    public let samples: [Int]
    /// The label of each sample, `[count]`, in `0..<K`.
    public let labels: [Int]
    /// The size every image is brought to.
    public let imageSize: ImageSize
    /// `.grayscale` (C = 1) or `.rgb` (C = 3).
    public let colorMode: ColorMode

    /// Opens the pack at `recordPath` (its `.idx` beside it) over all of its identities.
    ///
    /// - Throws: `RecordIOError` (`RecordIODataset.open`).
    /// - Precondition: `colorMode` is not `.asStored`; `imageSize` is positive.
    public static func open(recordPath: String, imageSize: ImageSize, colorMode: ColorMode) throws(RecordIOError) -> RecordIOFaceSet {
        let records = try RecordIODataset.open(recordPath: recordPath)
        return RecordIOFaceSet(records: records,
                               identities: records.identityNames ?? (0..<records.identityCount).map { "\($0)" },
                               samples: Array(0..<records.count), labels: records.labels,
                               imageSize: imageSize, colorMode: colorMode)
    }

    init(records: RecordIODataset, identities: [String], samples: [Int], labels: [Int], imageSize: ImageSize, colorMode: ColorMode) {
        precondition(colorMode != .asStored, "RecordIOFaceSet: choose .grayscale or .rgb")
        precondition(imageSize.width >= 1 && imageSize.height >= 1, "RecordIOFaceSet: imageSize must be positive, got \(imageSize)")
        self.records = records
        self.identities = identities
        self.samples = samples
        self.labels = labels
        self.imageSize = imageSize
        self.colorMode = colorMode
    }

    /// The number of samples.
    public var count: Int { samples.count }
    /// The number of identities `K`.
    public var identityCount: Int { identities.count }
    /// The channel count `C` of every decoded image.
    public var channelCount: Int { colorMode == .rgb ? 3 : 1 }

    /// Where sample `index` lies, for messages: `<file> record <key>`.
    public func path(of index: Int) -> String {
        "\(records.reader.path) record \(records.imageKeys[samples[index]])"
    }

    /// The byte size of each sample's record (from the `.idx`; nothing is read), `[count]`.
    public var recordByteCounts: [Int] {
        let all = records.imageRecordByteCounts
        return samples.map { all[$0] }
    }

    /// Splits the identities as `FaceDataset.splitByIdentity` does (the same seed holds out the
    /// same identity indices); each side keeps its identities in this set's order, labels
    /// re-indexed to `0..<k`.
    ///
    /// - Throws: `DatasetError.invalidSplit` unless `2 ≤ heldOutIdentityCount ≤ K − 2`.
    public func splitByIdentity(heldOutIdentityCount: Int, seed: UInt64)
        throws(DatasetError) -> (train: RecordIOFaceSet, heldOut: RecordIOFaceSet) {
        let (train, heldOut) = try identitySplit(identityCount: identityCount, heldOutIdentityCount: heldOutIdentityCount, seed: seed)
        return (subset(identityIndices: train), subset(identityIndices: heldOut))
    }

    /// The samples of the given identities, in this set's order, labels re-indexed to
    /// `0..<identityIndices.count` (as `FaceDataset.subset`).
    ///
    /// - Precondition: the indices are distinct and in `0..<K`.
    public func subset(identityIndices: some Sequence<Int>) -> RecordIOFaceSet {
        let selected = identityIndices.sorted()
        var newLabel = [Int](repeating: -1, count: identityCount)
        for (position, index) in selected.enumerated() {
            precondition(index >= 0 && index < identityCount && newLabel[index] < 0,
                         "subset: identity index \(index) outside 0..<\(identityCount) or given twice")
            newLabel[index] = position
        }
        var samples: [Int] = [], labels: [Int] = []
        for (sample, label) in zip(self.samples, self.labels) where newLabel[label] >= 0 {
            samples.append(sample)
            labels.append(newLabel[label])
        }
        return RecordIOFaceSet(records: records, identities: selected.map { identities[$0] }, samples: samples,
                               labels: labels, imageSize: imageSize, colorMode: colorMode)
    }

    /// Sample `index`, read and decoded now: `[C, H, W]` of `imageSize` in [0, 1].
    ///
    /// - Throws: a record error naming the file and byte offset, `.labelMismatch`, `.image`.
    public func image(at index: Int) throws(RecordIOError) -> FaceImage {
        try records.sample(at: samples[index]).image.converted(to: colorMode).resizedAndCropped(to: imageSize)
    }

    /// Every sample decoded into memory, as a `FaceDataset` with the same identities, labels and
    /// sample order (for small sets: held-out and validation identities).
    ///
    /// - Throws: as `image(at:)`; `.badIdentityRange` when the set is empty.
    public func decoded() throws(RecordIOError) -> FaceDataset {
        guard count > 0 else { throw .badIdentityRange(path: records.reader.path, key: 0, reason: "no image selected") }
        var images: [FaceImage] = []
        images.reserveCapacity(count)
        for index in 0..<count { images.append(try image(at: index)) }
        return FaceDataset(identities: identities, images: images, labels: labels, paths: (0..<count).map(path(of:)))
    }

    /// The batch of the given samples with their transforms, decoded now, assembled exactly as
    /// `FaceDataset.makeBatch(indices:transforms:)` assembles it (so decoded pixels equal to a
    /// folder's give the same tensor bit for bit).
    ///
    /// - Parameter onDecoded: called after each image is decoded (the loader counts them).
    /// - Returns: `images` `[N, C, H, W]` in [−1, 1], `labels` `[N]`, `indices` (sample indices) `[N]`.
    /// - Throws: as `image(at:)`.
    public func makeBatch(indices: [Int], transforms: [SampleTransform],
                          onDecoded: () -> Void = {}) throws(RecordIOError) -> Batch {
        precondition(!indices.isEmpty && indices.count == transforms.count,
                     "RecordIOFaceSet.makeBatch: \(indices.count) indices, \(transforms.count) transforms")
        var images: [FaceImage] = []
        images.reserveCapacity(indices.count)
        for index in indices {
            images.append(try image(at: index))
            onDecoded()
        }
        let chunk = FaceDataset(identities: identities, images: images, labels: indices.map { labels[$0] },
                                paths: indices.map(path(of:)))
        var batch = chunk.makeBatch(indices: Array(0..<indices.count), transforms: transforms)
        batch.indices = indices
        return batch
    }
}

extension RecordIOFaceSet {
    /// What `FaceDataset.load` would report for these images: the identities with fewer than
    /// two images, in this set's order (a pack holds no skipped files; `packFaceFolder` reported those).
    public var loadReport: DatasetLoadReport {
        var counts = [Int](repeating: 0, count: identityCount)
        for label in labels { counts[label] += 1 }
        var report = DatasetLoadReport()
        for (name, count) in zip(identities, counts) where count < 2 {
            report.sparseIdentities.append(.init(name: name, imageCount: count))
        }
        return report
    }
}
