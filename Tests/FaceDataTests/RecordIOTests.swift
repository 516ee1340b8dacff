import FaceData
import Foundation
import Testing

/// The error `body` throws as a `RecordIOError`, or nil.
private func recordError<T>(_ body: () throws(RecordIOError) -> T) -> RecordIOError? { thrownError(body) }

@Suite struct RecordIOTests {
    /// tiny.rec/.idx from Fixtures/make_fixtures.py (an independent Python writer).
    @Test func readsTheInsightFaceLayout() throws {
        let set = try RecordIODataset.open(recordPath: fixturesDirectory + "/tiny.rec")
        #expect(set.indexPath == fixturesDirectory + "/tiny.idx")
        #expect(set.count == 4 && set.identityCount == 2)
        #expect(set.imageKeys == [1, 2, 3, 4] && set.labels == [0, 0, 1, 1])
        for index in 0..<4 {
            let (image, header) = try set.sample(at: index)
            #expect(image == FaceImage(width: 2, height: 2, repeating: Float(50 * (index + 1)) / 255))
            #expect(header.labels.isEmpty == (index < 3))
        }
        let batch = try set.makeBatch(indices: [3, 0], transforms: [.identity, .identity],
                                      imageSize: ImageSize(width: 2, height: 2), colorMode: .grayscale)
        #expect(batch.images.shape == [2, 1, 2, 2] && batch.labels == [1, 0] && batch.indices == [3, 0])
        #expect(batch.images.storage[0] == Float(200) / 255 * 2 - 1)
        let slice = try set.faceDataset(indices: [2, 3], imageSize: ImageSize(width: 2, height: 2), colorMode: .rgb)
        #expect(slice.identityCount == 1 && slice.labels == [0, 0] && slice.channelCount == 3)
    }

    @Test func sequentialIterationVisitsEveryRecord() throws {
        let reader = try RecordIOReader(path: fixturesDirectory + "/tiny.rec")
        var records = reader.records()
        var offsets: [Int] = []
        while let record = records.next() { offsets.append(record.offset) }
        #expect(offsets == [0, 40, 144, 248, 352, 464, 504])
        #expect(records.error == nil)
    }

    @Test func writerRoundTripsAndSplitsAtTheMagicNumber() throws {
        // Data holding the magic number at aligned offsets 4 and 12 is written in three parts
        // (cflag 1, 2, 3) and read back whole; a short record is padded to 4 bytes.
        let magic: [UInt8] = [0x0A, 0x23, 0xD7, 0xCE]
        let tricky: [UInt8] = [1, 2, 3, 4] + magic + [5, 6, 7, 8] + magic + [9]
        var writer = RecordIOWriter()
        writer.append(tricky, key: 0)
        writer.append([42], key: 1)
        let root = try TemporaryDirectory()
        let rec = try root.write(writer.recordBytes, to: "w.rec")
        #expect(writer.indexText == "0\t0\n1\t36\n")
        // Parts: 8 + 4 | 8 + 4 | 8 + 1 + 3 padding = 36 bytes, then 8 + 1 + 3.
        #expect(writer.recordBytes.count == 48)
        #expect(Array(writer.recordBytes[4..<8]) == [4, 0, 0, 0x20])  // length 4, cflag 1 in bits 29–31
        let reader = try RecordIOReader(path: rec)
        #expect(try reader.record(at: 0).data == tricky)
        #expect(try reader.record(at: 0).nextOffset == 36)
        #expect(try reader.record(at: 36).data == [42])
    }

    @Test func labelsFromHeadersWithoutIdentityRecords() throws {
        // A set without record-0 ranges: every key is an image labelled by its own header.
        let image = try encodePNG(FaceImage(width: 2, height: 2, repeating: 0))
        var writer = RecordIOWriter()
        for (key, label) in [(0, 2), (1, 0), (2, 1)] {
            writer.append(header: ImageRecordHeader(label: Float(label)), image: image, key: key)
        }
        let root = try TemporaryDirectory()
        let rec = try root.write(writer.recordBytes, to: "flat.rec")
        try root.write(Array(writer.indexText.utf8), to: "flat.idx")
        let set = try RecordIODataset.open(recordPath: rec)
        #expect(set.imageKeys == [0, 1, 2] && set.labels == [2, 0, 1] && set.identityCount == 3)
    }

    @Test func brokenSetsAreTypedErrors() throws {
        let rec = try fixtureBytes("tiny.rec"), idx = try fixtureBytes("tiny.idx")
        let root = try TemporaryDirectory()
        func open(_ recBytes: [UInt8], _ idxBytes: [UInt8]) throws -> RecordIOError? {
            let recPath = try root.write(recBytes, to: "t.rec")
            try root.write(idxBytes, to: "t.idx")
            return recordError { () throws(RecordIOError) in try RecordIODataset.open(recordPath: recPath) }
        }
        let recPath = root.path + "/t.rec", idxPath = root.path + "/t.idx"
        // Truncated inside record 6 (starts at byte 504): found when the identity records are read.
        #expect(try open(Array(rec.prefix(rec.count - 4)), idx)
                == .truncatedRecord(path: recPath, offset: 504, needed: 8 + 32, available: 8 + 28))
        // Wrong magic at record 5 (byte 464).
        var badMagic = rec
        badMagic[464] ^= 0xFF
        let magicError = try open(badMagic, idx)
        #expect(magicError == .badMagic(path: recPath, offset: 464, found: 0xCED7_23F5))
        #expect(magicError?.description.contains("byte 464") == true)
        // An index offset that does not point at a record.
        let shifted = Array(String(decoding: idx, as: UTF8.self).replacingOccurrences(of: "5\t464", with: "5\t468").utf8)
        #expect(try open(rec, shifted) == .badMagic(path: recPath, offset: 468, found: 0x20))
        // Bad index lines.
        #expect(try open(rec, Array("0\t0\n1\tforty\n".utf8)) == .badIndexLine(path: idxPath, line: 2, text: "1\tforty"))
        #expect(try open(rec, Array("0\t0\n1\t99999\n".utf8))
                == .indexOffsetOutOfRange(path: idxPath, line: 2, offset: 99999, fileSize: rec.count))
        let withoutFive = Array(String(decoding: idx, as: UTF8.self).replacingOccurrences(of: "5\t464\n", with: "").utf8)
        #expect(try open(rec, withoutFive) == .missingKey(path: idxPath, key: 5))
        // Record 0's ranges must be record numbers within the index (here NaN).
        var nanHeader = rec
        nanHeader.replaceSubrange((8 + 24)..<(8 + 28), with: [0x00, 0x00, 0xC0, 0x7F])
        guard case .badIdentityRange(_, 0, _)? = try open(nanHeader, idx) else {
            Issue.record("a NaN range must be .badIdentityRange")
            return
        }
        try root.write(idx, to: "t.idx")
        // A middle part where a record must start.
        var badFlag = rec
        badFlag[40 + 7] |= 0x40  // cflag 2 on record 1
        let set = try RecordIODataset.open(recordPath: try root.write(badFlag, to: "t.rec"))
        #expect(recordError { () throws(RecordIOError) in try set.sample(at: 0) }
                == .badContinuation(path: recPath, offset: 40, flag: 2, partIndex: 0))
        // A corrupt image payload names the record.
        var badImage = rec
        badImage[40 + 8 + 24 + 20] ^= 0xFF  // inside the PNG's IHDR
        let damaged = try RecordIODataset.open(recordPath: try root.write(badImage, to: "t.rec"))
        guard case .image(let imageError)? = recordError({ () throws(RecordIOError) in try damaged.sample(at: 0) }) else {
            Issue.record("a corrupt payload must be .image")
            return
        }
        #expect(imageError.path == "\(recPath) record 1 at byte 40")
    }
}

@Suite struct RecordIOLoaderTests {
    @Test func batchesEqualTheInMemoryDataLoaders() throws {
        // 3 identities × 4 PNG images of 6×5 RGB, packed with our writer in the InsightFace layout.
        var images: [FaceImage] = []
        var writer = RecordIOWriter()
        writer.append(header: ImageRecordHeader(labels: [13, 16]), image: [], key: 0)
        for k in 0..<12 {
            let image = colourPattern(width: 6, height: 5, base: 5 * k)
            images.append(image)
            writer.append(header: ImageRecordHeader(label: Float(k / 4)), image: try encodePNG(image), key: k + 1)
        }
        for identity in 0..<3 {
            writer.append(header: ImageRecordHeader(labels: [Float(4 * identity + 1), Float(4 * identity + 5)]),
                          image: [], key: 13 + identity)
        }
        let root = try TemporaryDirectory()
        let rec = try root.write(writer.recordBytes, to: "train.rec")
        try root.write(Array(writer.indexText.utf8), to: "train.idx")
        let set = try RecordIODataset.open(recordPath: rec)
        #expect(set.labels == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2] && set.identityCount == 3)

        let augmentation = Augmentation(horizontalFlip: true, maxTranslation: 2)
        let lazy = try RecordIOLoader(dataset: set, imageSize: ImageSize(width: 6, height: 5), batchSize: 5,
                                      augmentation: augmentation, seed: 9)
        let inMemory = FaceDataset(identities: ["0", "1", "2"], images: images, labels: set.labels,
                                   paths: images.indices.map { "\($0)" })
        let loader = try DataLoader(dataset: inMemory, batchSize: 5, shuffle: true, augmentation: augmentation,
                                    dropLast: true, seed: 9)
        for epoch in 0..<2 {
            let expected = loader.batches()
            let batches = lazy.epoch(epoch)
            #expect(batches.count == 2 && expected.count == 2)
            for index in 0..<batches.count {
                let batch = try batches.batch(index)
                #expect(batch.images == expected[index].images && batch.labels == expected[index].labels)
                #expect(batch.indices == expected[index].indices && batch.transforms == expected[index].transforms)
            }
        }
    }
}
