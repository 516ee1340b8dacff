import Foundation
import Testing
@testable import FaceData
import TensorCore

/// `packFaceFolder` / `FacePackWriter`, `RecordIOFaceSet` and `StreamingDataLoader`: a folder
/// packed and read back gives the folder's identities, order and (PNG) pixels; the header layout
/// is InsightFace's; bad input is a typed error that leaves no pack; streamed batches equal the
/// folder loader's and the loader holds a bounded number of decoded images.
@Suite struct RecordIOPackTests {
    /// A folder of identities `s1, s2, s10` (natural order differs from byte order) with files
    /// `1.pgm, 2.pgm, 10.pgm` of seeded noise, and in `s2` one colour PNG of another size.
    static func makeFolder(in directory: TemporaryDirectory, identities: [String] = ["s10", "s2", "s1"],
                           files: [String] = ["10.pgm", "1.pgm", "2.pgm"], width: Int = 12, height: Int = 14) throws -> String {
        var generator = SeededGenerator(seed: 7)
        for identity in identities {
            for file in files {
                let pixels = (0..<(width * height)).map { _ in Float(generator.nextInteger(in: 0...255)) / 255 }
                try directory.write(encodePGM(FaceImage(width: width, height: height, channels: 1, pixels: pixels)),
                                    to: "data/\(identity)/\(file)")
            }
        }
        let colour = (0..<(3 * 16 * 18)).map { _ in Float(generator.nextInteger(in: 0...255)) / 255 }
        try directory.write(try encodePNG(FaceImage(width: 16, height: 18, channels: 3, pixels: colour)), to: "data/s2/3.png")
        return directory.path + "/data"
    }

    @Test("PNG pack round trip: identities, order, counts and pixels equal the folder loader's, bit for bit")
    func losslessRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let folder = try Self.makeFolder(in: directory)
        let summary = try packFaceFolder(directory: folder, recordPath: directory.path + "/x.rec", encoding: .png)
        #expect(summary.identities == ["s1", "s2", "s10"])
        #expect(summary.imageCount == 10)
        let size = ImageSize(width: 12, height: 14)
        let expected = try FaceDataset.load(directory: folder, imageSize: size, colorMode: .grayscale)
        let packed = try RecordIOFaceSet.open(recordPath: summary.recordPath, imageSize: size, colorMode: .grayscale).decoded()
        #expect(packed.identities == expected.identities)
        #expect(packed.labels == expected.labels)
        #expect(packed.images == expected.images)
        // RGB too (the grey files are replicated, the PNG kept).
        let rgb = try RecordIOFaceSet.open(recordPath: summary.recordPath, imageSize: size, colorMode: .rgb).decoded()
        #expect(rgb.images == (try FaceDataset.load(directory: folder, imageSize: size, colorMode: .rgb)).images)
        // No temporary file is left beside the pack.
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == ["data", "x.idx", "x.rec"])
    }

    @Test("JPEG pack: pixels within JPEG tolerance of the folder's; quality changes the size")
    func jpegRoundTrip() throws {
        let directory = try TemporaryDirectory()
        // Smooth images (noise is JPEG's worst case): a gradient per file.
        for (i, identity) in ["a", "b"].enumerated() {
            for j in 0..<3 {
                let pixels = (0..<(32 * 32)).map { Float(($0 % 32) * 4 + ($0 / 32) * 2 + 10 * (i + j)) / 255 }
                try directory.write(encodePGM(FaceImage(width: 32, height: 32, channels: 1, pixels: pixels)), to: "d/\(identity)/\(j).pgm")
            }
        }
        let high = try packFaceFolder(directory: directory.path + "/d", recordPath: directory.path + "/high.rec", encoding: .jpeg(quality: 95))
        let low = try packFaceFolder(directory: directory.path + "/d", recordPath: directory.path + "/low.rec", encoding: .jpeg(quality: 20))
        #expect(low.byteCount < high.byteCount)
        let size = ImageSize(width: 32, height: 32)
        let expected = try FaceDataset.load(directory: directory.path + "/d", imageSize: size, colorMode: .grayscale)
        let packed = try RecordIOFaceSet.open(recordPath: high.recordPath, imageSize: size, colorMode: .grayscale).decoded()
        #expect(packed.labels == expected.labels)
        var worst: Float = 0
        for (a, b) in zip(packed.images, expected.images) {
            for (x, y) in zip(a.pixels, b.pixels) { worst = max(worst, abs(x - y)) }
        }
        #expect(worst <= 4 / 255, "largest pixel difference \(worst * 255)/255")
    }

    @Test("header layout: record 0 flag 2 (a, b), identity records (start, end) + name, image labels; readable by RecordIODataset")
    func headerLayout() throws {
        let directory = try TemporaryDirectory()
        let folder = try Self.makeFolder(in: directory)
        let summary = try packFaceFolder(directory: folder, recordPath: directory.path + "/x.rec", encoding: .png)
        let reader = try RecordIOReader(path: summary.recordPath)
        let records = Array(reader.records())
        #expect(records.count == 1 + 10 + 3)
        let header = try parseImageRecord(records[0].data, path: "x", offset: 0).header
        #expect(header.flag == 2 && header.labels == [11, 14])
        let ranges = try (11..<14).map { try parseImageRecord(records[$0].data, path: "x", offset: 0) }
        #expect(ranges.map(\.header.labels) == [[1, 4], [4, 8], [8, 11]])
        #expect(ranges.map { String(decoding: $0.image, as: UTF8.self) } == ["s1", "s2", "s10"])
        let imageLabels = try (1..<11).map { try parseImageRecord(records[$0].data, path: "x", offset: 0).header.label }
        #expect(imageLabels == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
        // The .idx lists keys 0..<14 at the records' offsets.
        let index = try String(contentsOfFile: summary.indexPath, encoding: .utf8)
        #expect(index == records.enumerated().map { "\($0.offset)\t\($0.element.offset)\n" }.joined())
        let set = try RecordIODataset.open(recordPath: summary.recordPath)
        #expect(set.count == 10 && set.identityCount == 3 && set.identityNames == ["s1", "s2", "s10"])
        #expect(set.imageRecordByteCounts == (1..<11).map { records[$0 + 1].offset - records[$0].offset })
    }

    @Test("an empty folder, an empty identity, one identity, an unwritable output, a non-.rec output: typed errors, no pack left")
    func badInput() throws {
        let directory = try TemporaryDirectory()
        let output = directory.path + "/out.rec"
        try directory.makeFolder("empty")
        #expect(packError { () throws(PackError) in try packFaceFolder(directory: directory.path + "/empty", recordPath: output) }
                    == .dataset(.noImages(path: directory.path + "/empty")))
        try directory.makeFolder("hollow/a")
        try directory.write(encodePGM(FaceImage(width: 2, height: 2, channels: 1, pixels: [0, 1, 0, 1])), to: "hollow/b/1.pgm")
        #expect(packError { () throws(PackError) in try packFaceFolder(directory: directory.path + "/hollow", recordPath: output) }
                    == .dataset(.emptyIdentity(path: directory.path + "/hollow/a")))
        let folder = try Self.makeFolder(in: directory)
        let missing = directory.path + "/no/such/folder/x.rec"
        guard case .writeFailed(let path, let reason)? = packError({ () throws(PackError) in try packFaceFolder(directory: folder, recordPath: missing) }) else {
            Issue.record("expected writeFailed"); return
        }
        #expect(path == missing && reason.contains("no such folder"))
        #expect(packError { () throws(PackError) in try packFaceFolder(directory: folder, recordPath: directory.path + "/x.bin") }
                    == .invalidOutputPath(path: directory.path + "/x.bin"))
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == ["data", "empty", "hollow"])
    }

    @Test("a folder where the .rec or .idx would go: writeFailed before packing, and no .idx or .rec left beside it")
    func folderAtTarget() throws {
        let directory = try TemporaryDirectory()
        let folder = try Self.makeFolder(in: directory)
        for (taken, other) in [("a.rec", "a.idx"), ("b.idx", "b.rec")] {
            try directory.makeFolder(taken)
            let recordPath = directory.path + "/" + (taken.hasSuffix(".rec") ? taken : other)
            var encoded = 0
            let error = packError { () throws(PackError) in
                try packFaceFolder(directory: folder, recordPath: recordPath) { done, _ in encoded = done }
            }
            #expect(error == .writeFailed(path: directory.path + "/" + taken, reason: "a folder of that name exists"), "\(String(describing: error))")
            #expect(encoded == 0, "refused before packing")
            // The .idx was renamed into place before the .rec rename failed (EISDIR) and stayed.
            #expect(!FileManager.default.fileExists(atPath: directory.path + "/" + other), "\(other) left behind")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == ["a.rec", "b.idx", "data"])
    }

    @Test("bad images follow BadImagePolicy: error names the file and leaves no pack; skip leaves it out and lists it")
    func badImages() throws {
        let directory = try TemporaryDirectory()
        let folder = try Self.makeFolder(in: directory)
        let bad = try directory.write(Array("P5\n12 14\n255\n".utf8) + [1, 2, 3], to: "data/s1/4.pgm")
        let output = directory.path + "/x.rec"
        guard case .dataset(.image(let error))? = packError({ () throws(PackError) in try packFaceFolder(directory: folder, recordPath: output) }) else {
            Issue.record("expected a bad image error"); return
        }
        #expect(error.description.contains(bad))
        #expect(!FileManager.default.fileExists(atPath: output) && !FileManager.default.fileExists(atPath: directory.path + "/x.idx"))
        // An earlier pack at the target survives a failed one.
        let first = try packFaceFolder(directory: folder, recordPath: output, encoding: .png, onBadImage: .skip)
        #expect(first.report.skippedImages.map(\.path) == [bad])
        #expect(first.imageCount == 10)
        let before = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(packError { () throws(PackError) in try packFaceFolder(directory: folder, recordPath: output) } != nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: output)) == before)
    }

    /// 40 identities × 10 noise images of 20×16, packed PNG: a set many times a batch.
    static func largePack(in directory: TemporaryDirectory) throws -> (folder: FaceDataset, pack: RecordIOFaceSet) {
        let writer = try FacePackWriter(recordPath: directory.path + "/large.rec", encoding: .png)
        var generator = SeededGenerator(seed: 3)
        var images: [FaceImage] = [], labels: [Int] = []
        for identity in 0..<40 {
            writer.beginIdentity("id\(identity)")
            for _ in 0..<10 {
                let image = FaceImage(width: 20, height: 16, channels: 1,
                                      pixels: (0..<320).map { _ in Float(generator.nextInteger(in: 0...255)) / 255 })
                try writer.append(image)
                images.append(image)
                labels.append(identity)
            }
        }
        _ = try writer.finish()
        let folder = FaceDataset(identities: (0..<40).map { "id\($0)" }, images: images, labels: labels,
                                 paths: images.indices.map { "memory \($0)" })
        let pack = try RecordIOFaceSet.open(recordPath: directory.path + "/large.rec", imageSize: ImageSize(width: 20, height: 16),
                                            colorMode: .grayscale)
        return (folder, pack)
    }

    @Test("streamed batches equal DataLoader's bit for bit (shuffle, flips, shifts, skip, a split), with bounded decoded images",
          arguments: [0, 1, 3])
    func streamedBatches(depth: Int) throws {
        let directory = try TemporaryDirectory()
        let (folder, pack) = try Self.largePack(in: directory)
        let folderTrain = try folder.splitByIdentity(heldOutIdentityCount: 5, seed: 9).train
        let packTrain = try pack.splitByIdentity(heldOutIdentityCount: 5, seed: 9).train
        #expect(packTrain.identities == folderTrain.identities && packTrain.labels == folderTrain.labels)
        let augmentation = Augmentation(horizontalFlip: true, maxTranslation: 3)
        let reference = try DataLoader(dataset: folderTrain, batchSize: 8, shuffle: true, augmentation: augmentation, dropLast: true, seed: 5)
        let streamed = try StreamingDataLoader(dataset: packTrain, batchSize: 8, augmentation: augmentation, seed: 5, prefetchDepth: depth)
        #expect(streamed.batchesPerEpoch == reference.batchesPerEpoch)
        for epoch in 0..<2 {
            reference.epoch = epoch
            streamed.epoch = epoch
            let expected = reference.nextEpoch(), actual = streamed.nextEpoch()
            if epoch == 1 { expected.skip(30); actual.skip(30) }
            var batches = 0
            while let batch = try actual.next() {
                let want = try #require(expected.next())
                #expect(batch.images.storage == want.images.storage)
                #expect(batch.labels == want.labels && batch.indices == want.indices && batch.transforms == want.transforms)
                #expect(streamed.statistics.peakDecodedImagesHeld <= max(1, depth) * 8)
                batches += 1
            }
            #expect(expected.next() == nil)
            #expect(batches == (epoch == 0 ? 43 : 13))
        }
        #expect(streamed.statistics.decodedImagesHeld == 0)
        #expect(streamed.statistics.peakDecodedImagesHeld <= max(1, depth) * 8)
        #expect(streamed.statistics.imagesDecoded <= (43 + 13 + 2 * depth) * 8)
    }

    @Test("a .rec truncated or an .idx offset corrupted after opening: a typed error naming the file and offset")
    func corruptionMidEpoch() throws {
        let directory = try TemporaryDirectory()
        let (_, pack) = try Self.largePack(in: directory)
        let path = directory.path + "/large.rec"
        // A wrong .idx offset (4 bytes into a record): the record's read fails with badMagic.
        let index = try String(contentsOfFile: directory.path + "/large.idx", encoding: .utf8)
        var lines = index.split(separator: "\n").map(String.init)
        let fields = lines[7].split(separator: "\t")
        lines[7] = "\(fields[0])\t\(Int(fields[1])! + 4)"
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory.path + "/large.idx", atomically: true, encoding: .utf8)
        let shifted = try RecordIOFaceSet.open(recordPath: path, imageSize: pack.imageSize, colorMode: .grayscale)
        let loader = try StreamingDataLoader(dataset: shifted, batchSize: 8, shuffle: false, augmentation: .none, seed: 1)
        let batches = loader.nextEpoch()
        guard case .badMagic(let file, let offset, _)? = recordError({ () throws(RecordIOError) in try batches.next() }) else {
            Issue.record("expected badMagic"); return
        }
        #expect(file == path && offset == Int(fields[1])! + 4)
        try index.write(toFile: directory.path + "/large.idx", atomically: true, encoding: .utf8)

        // Truncated after opening: the first record past the end fails.
        let reopened = try RecordIOFaceSet.open(recordPath: path, imageSize: pack.imageSize, colorMode: .grayscale)
        let stream = try StreamingDataLoader(dataset: reopened, batchSize: 8, shuffle: false, augmentation: .none, seed: 1).nextEpoch()
        _ = try stream.next()
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 3000)
        try handle.close()
        var failure: RecordIOError?
        while failure == nil {
            do { guard try stream.next() != nil else { break } } catch { failure = error }
        }
        let error = try #require(failure)
        #expect(error.description.contains(path) && error.description.contains("byte"), "\(error)")
    }
}

/// The error a pack throws, or nil.
private func packError(_ body: () throws(PackError) -> PackSummary) -> PackError? {
    do { _ = try body(); return nil } catch { return error }
}

/// The error a streamed read throws, or nil.
private func recordError(_ body: () throws(RecordIOError) -> Batch?) -> RecordIOError? {
    do { _ = try body(); return nil } catch { return error }
}
