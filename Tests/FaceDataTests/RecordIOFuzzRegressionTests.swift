import FaceData
import Foundation
import Testing

/// Inputs that crashed, exhausted memory or leaked in the RecordIO fuzz harness
/// (`Fuzz/Sources/FuzzRecordIO`): the leak was found by the fuzzer, the other three while reading
/// the reader to write the harness and confirmed through it. Each must now be a typed error or a
/// correct result. The same inputs are fuzz seeds
/// (`Fuzz/corpus/recordio/regression-*.seed`, written by `Fuzz/write-recordio-seeds.py`).
@Suite struct RecordIOFuzzRegressionTests {
    /// A 1×1 PGM image record with scalar label `label`.
    private func imageRecord(label: Float) -> [UInt8] {
        ImageRecordHeader(label: label).encoded + Array("P5\n1 1\n255\n".utf8) + [7]
    }

    private func open(_ records: [[UInt8]], index: String? = nil) throws -> (path: String, result: Result<RecordIODataset, RecordIOError>, root: TemporaryDirectory) {
        var writer = RecordIOWriter()
        for (key, record) in records.enumerated() { writer.append(record, key: key) }
        let root = try TemporaryDirectory()
        let rec = try root.write(writer.recordBytes, to: "f.rec")
        try root.write(Array((index ?? writer.indexText).utf8), to: "f.idx")
        let result = Result { () throws(RecordIOError) in try RecordIODataset.open(recordPath: rec) }
        return (rec, result, root)
    }

    @Test func indexKeyIntMaxIsNotAnOverflow() throws {
        // Was an arithmetic-overflow trap: the largest key + 1.
        let (rec, result, _) = try open([imageRecord(label: 0)], index: "0\t0\n9223372036854775807\t0\n")
        // Without identity ranges every key is an image; key Int.max is read at offset 0, label 0.
        let set = try result.get()
        #expect(set.imageKeys == [0, Int.max] && set.labels == [0, 0] && set.identityCount == 1)
        #expect(set.reader.path == rec)
    }

    @Test func rangesBeyondTheIndexAreRefusedBeforeAllocating() throws {
        // Record 0 claims 10¹² image records while the index has 2 lines (keys 0 and 10¹²): was
        // an 8 TB allocation. Now the first record number missing from the index is named.
        let header = ImageRecordHeader(labels: [1e12, 1e12]).encoded
        let (rec, result, _) = try open([header], index: "0\t0\n1000000000000\t0\n")
        let idx = String(rec.dropLast(4)) + ".idx"
        #expect(throws: RecordIOError.missingKey(path: idx, key: 1)) { try result.get() }
    }

    @Test func aHugeLabelMakesABatchWithoutNamingEveryIdentity() throws {
        // A flat set whose only image has label 10⁹: makeBatch allocated 10⁹ identity names.
        let (_, result, _) = try open([imageRecord(label: 1e9), imageRecord(label: 3)])
        let set = try result.get()
        #expect(set.identityCount == 1_000_000_001 && set.labels == [1_000_000_000, 3])
        let batch = try set.makeBatch(indices: [0, 1], transforms: [.identity, .identity],
                                      imageSize: ImageSize(width: 1, height: 1), colorMode: .grayscale)
        #expect(batch.labels == [1_000_000_000, 3] && batch.indices == [0, 1])
        #expect(batch.images.storage == [Float(7) / 255 * 2 - 1, Float(7) / 255 * 2 - 1])
    }

    @Test func anEmptyIndexIsATypedError() throws {
        // Reading the empty .idx leaked Foundation's 4 KiB read buffer (LeakSanitizer in the
        // fuzzer); it is now read through a FileHandle and gives the set's typed error.
        let (rec, result, _) = try open([imageRecord(label: 0)], index: "")
        #expect(throws: RecordIOError.badIdentityRange(path: rec, key: 0, reason: "the set holds no image")) { try result.get() }
    }
}
