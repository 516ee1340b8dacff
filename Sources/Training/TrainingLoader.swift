import FaceData
import RunConfiguration

/// The images a run trains on: a folder decoded into memory, or a RecordIO pack read on demand.
public enum TrainingImages: Sendable {
    /// A folder-per-identity data set, decoded (`FaceDataset.load`).
    case folder(FaceDataset)
    /// A RecordIO pack (`train.rec` + `train.idx`), streamed: images are read and decoded batch
    /// by batch, on background threads, so memory does not grow with the set.
    case pack(RecordIOFaceSet)

    /// The identity names, `[K]`, in label order.
    public var identities: [String] {
        switch self {
        case .folder(let set): set.identities
        case .pack(let set): set.identities
        }
    }

    /// The number of images.
    public var count: Int {
        switch self {
        case .folder(let set): set.count
        case .pack(let set): set.count
        }
    }
}

/// The trainer's batches: a `DataLoader` over a decoded set, or a `StreamingDataLoader` over a
/// pack; the same seeded plans either way.
final class TrainingLoader {
    enum Source {
        case memory(DataLoader)
        case streamed(StreamingDataLoader)
    }

    let source: Source

    init(_ source: Source) { self.source = source }

    /// Batches per epoch.
    var batchesPerEpoch: Int {
        switch source {
        case .memory(let loader): loader.batchesPerEpoch
        case .streamed(let loader): loader.batchesPerEpoch
        }
    }

    /// The batches of epoch `epoch`.
    func batches(ofEpoch epoch: Int) -> TrainingEpochBatches {
        switch source {
        case .memory(let loader):
            loader.epoch = epoch
            return .memory(loader.nextEpoch())
        case .streamed(let loader):
            loader.epoch = epoch
            return .streamed(loader.nextEpoch())
        }
    }

    /// Where sample `index` was read from (a file, or `<pack> record <key>`).
    func path(of index: Int) -> String {
        switch source {
        case .memory(let loader): loader.dataset.paths[index]
        case .streamed(let loader): loader.dataset.path(of: index)
        }
    }

    /// The streaming loader's counters; nil for a decoded set.
    var streamingStatistics: StreamingLoaderStatistics? {
        if case .streamed(let loader) = source { return loader.statistics }
        return nil
    }
}

/// One epoch of a `TrainingLoader`.
enum TrainingEpochBatches {
    case memory(EpochBatches)
    case streamed(StreamedEpochBatches)

    func skip(_ count: Int) {
        switch self {
        case .memory(let batches): batches.skip(count)
        case .streamed(let batches): batches.skip(count)
        }
    }

    /// The next batch, or nil after the last.
    ///
    /// - Throws: `TrainingError.data(.records)` when a pack's record cannot be read or decoded.
    func next() throws(TrainingError) -> Batch? {
        switch self {
        case .memory(let batches): return batches.next()
        case .streamed(let batches):
            do { return try batches.next() } catch { throw .data(.records(error)) }
        }
    }
}
