// Training from an InsightFace RecordIO pack (`train.rec` + `train.idx`) instead of a folder:
// the same identity split, validation split and seeded batches, with the training images
// streamed from the pack (only the held-out and validation identities are decoded into memory).
import Foundation
import FaceData
import RunConfiguration
import Checkpointing

extension Experiment {
    /// Whether `data` names a RecordIO pack (a path ending in `.rec`, its `.idx` beside it)
    /// rather than a folder-per-identity data set.
    public static func isRecordIOPack(_ data: String) -> Bool { data.hasSuffix(".rec") }

    /// Opens the pack at `recordPath` (images brought to the backbone's input size and channels)
    /// and splits it by identity with `configuration.seed`, as `loadSplit` splits a folder: a pack
    /// made from a folder (`packFaceFolder`) gives the same identities on each side.
    ///
    /// - Throws: `TrainingError.data`: `.records` (the pack cannot be read), `.dataset(.invalidSplit)`,
    ///   `.heldOutSetTooSmall`.
    public static func splitPack(recordPath: String, configuration: TrainingConfiguration) throws(TrainingError)
        -> (train: RecordIOFaceSet, heldOut: RecordIOFaceSet) {
        try split(openPack(recordPath: recordPath, configuration: configuration), configuration: configuration)
    }

    /// The pack at `recordPath`, its images brought to the backbone's input.
    static func openPack(recordPath: String, configuration: TrainingConfiguration) throws(TrainingError) -> RecordIOFaceSet {
        let input = configuration.backbone
        do {
            return try RecordIOFaceSet.open(recordPath: recordPath,
                                            imageSize: ImageSize(width: input.inputWidth, height: input.inputHeight),
                                            colorMode: input.inputChannels == 3 ? .rgb : .grayscale)
        } catch { throw .data(.records(error)) }
    }

    static func split(_ set: RecordIOFaceSet, configuration: TrainingConfiguration) throws(TrainingError)
        -> (train: RecordIOFaceSet, heldOut: RecordIOFaceSet) {
        let parts: (train: RecordIOFaceSet, heldOut: RecordIOFaceSet)
        do { parts = try set.splitByIdentity(heldOutIdentityCount: configuration.heldOutIdentities, seed: configuration.seed) }
        catch { throw .data(.dataset(error)) }
        try checkHeldOutPairs(labels: parts.heldOut.labels, configuration: configuration)
        return parts
    }

    /// The training side, the decoded held-out identities, both fingerprints and the load report
    /// of `data`: a folder (`loadSplit`) or a RecordIO pack (`splitPack`; only the held-out
    /// images are decoded, the training images stay in the pack; the report lists the identities
    /// with fewer than two images).
    static func loadTrainingSplit(data: String, configuration: TrainingConfiguration) throws(TrainingError)
        -> (train: TrainingImages, heldOut: FaceDataset, fingerprint: TrainingSetFingerprint,
            heldOutFingerprint: TrainingSetFingerprint, report: DatasetLoadReport) {
        guard isRecordIOPack(data) else {
            let (train, heldOut, report) = try loadSplit(directory: data, configuration: configuration)
            return (.folder(train), heldOut, TrainingSetFingerprint(train), TrainingSetFingerprint(heldOut), report)
        }
        let set = try openPack(recordPath: data, configuration: configuration)
        let (train, heldOutPart) = try split(set, configuration: configuration)
        let heldOut: FaceDataset
        do { heldOut = try heldOutPart.decoded() } catch { throw .data(.records(error)) }
        let report = set.loadReport
        return (.pack(train), heldOut, TrainingSetFingerprint(train), TrainingSetFingerprint(heldOutPart), report)
    }

    /// Checks that held-out identities with these labels give genuine pairs, enough for the folds.
    ///
    /// - Throws: `TrainingError.data(.heldOutSetTooSmall)`.
    static func checkHeldOutPairs(labels: [Int], configuration: TrainingConfiguration) throws(TrainingError) {
        let genuine = Dictionary(grouping: labels, by: { $0 }).values.reduce(0) { $0 + $1.count * ($1.count - 1) / 2 }
        guard genuine > 0 else {
            throw .data(.heldOutSetTooSmall(reason: "no held-out identity has two images, so there are no genuine pairs"))
        }
        guard 2 * genuine >= configuration.folds else {
            throw .data(.heldOutSetTooSmall(reason: "\(2 * genuine) balanced pairs cannot fill \(configuration.folds) folds"))
        }
    }

    /// Checks that the images of `set` are brought to the backbone's input.
    static func checkCompatible(_ set: RecordIOFaceSet, with configuration: TrainingConfiguration) throws(TrainingError) {
        let size = set.imageSize, b = configuration.backbone
        guard size.width == b.inputWidth, size.height == b.inputHeight, set.channelCount == b.inputChannels else {
            throw .data(.imageSizeMismatch(expected: "\(b.inputChannels)×\(b.inputHeight)×\(b.inputWidth) (channels×height×width)",
                                           found: "\(set.channelCount)×\(size.height)×\(size.width)"))
        }
    }
}

extension Trainer {
    /// `validationSplit(of:configuration:)` for a pack: the same seeded identity choice; the
    /// validation identities are decoded into memory (they are evaluated every epoch), the fit
    /// identities stay in the pack.
    ///
    /// - Throws: as the folder version, and `TrainingError.data(.records)` for a validation image.
    public static func validationSplit(of trainingSet: RecordIOFaceSet, configuration: TrainingConfiguration)
        throws(TrainingError) -> (fit: RecordIOFaceSet, validation: FaceDataset?) {
        let count = configuration.validationIdentities, total = trainingSet.identityCount
        guard count > 0 else { return (trainingSet, nil) }
        guard count >= 2, total - count >= 2 else {
            throw .data(.validationSplitTooSmall(validationIdentities: count, trainingIdentities: total))
        }
        let parts: (train: RecordIOFaceSet, heldOut: RecordIOFaceSet)
        do { parts = try trainingSet.splitByIdentity(heldOutIdentityCount: count, seed: configuration.seed &+ 0x7A1D) }
        catch { throw .data(.dataset(error)) }
        let perIdentity = Dictionary(grouping: parts.heldOut.labels, by: { $0 })
        guard perIdentity.values.contains(where: { $0.count >= 2 }) else {
            throw .data(.validationWithoutGenuinePairs(identities: parts.heldOut.identities))
        }
        do { return (parts.train, try parts.heldOut.decoded()) } catch { throw .data(.records(error)) }
    }

    /// The streaming loader's counters when training from a pack (decoded images held, at most,
    /// in total); nil for a folder.
    public var streamingStatistics: StreamingLoaderStatistics? { loader.streamingStatistics }
}

extension TrainingSetFingerprint {
    /// The fingerprint of a pack's images from its `.idx` and identity ranges alone (nothing is
    /// decoded): the image count per identity and a CRC-32 of the sorted
    /// `identity/record <key><TAB>record byte size` lines.
    init(_ set: RecordIOFaceSet) {
        images = set.count
        var counts: [String: Int] = [:]
        var lines: [String] = []
        let sizes = set.recordByteCounts
        for index in 0..<set.count {
            let identity = set.identities[set.labels[index]]
            counts[identity, default: 0] += 1
            lines.append(identity + "/record " + String(set.records.imageKeys[set.samples[index]]) + "\t" + String(sizes[index]) + "\n")
        }
        imagesPerIdentity = counts
        digest = Safetensors.hex(CRC32.checksum(Array(lines.sorted().joined().utf8)))
    }
}
