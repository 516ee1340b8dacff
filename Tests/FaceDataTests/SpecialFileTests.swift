import Foundation
import Testing
@testable import FaceData
#if canImport(Glibc)
import Glibc
#endif

/// Entries named like images that are not regular files: a FIFO used to block loading forever,
/// a folder `11.pgm/` was silently ignored. Both are now bad images under `onBadImage`. Each load
/// runs under `withinOneMinute`, which times the load itself: a suite time limit also counts the
/// minutes a loaded 2-core machine makes a test wait for a thread when the whole bundle runs.
@Suite struct SpecialFileTests {
    static let good = encodePGM(FaceImage(width: 4, height: 3, repeating: 0.5))

    func makeDataset() throws -> TemporaryDirectory {
        let root = try TemporaryDirectory()
        for i in 1...3 { try root.write(Self.good, to: "a/\(i).pgm") }
        for i in 1...2 { try root.write(Self.good, to: "b/\(i).pgm") }
        return root
    }

    @Test("a FIFO named like an image is a bad image, never opened, under either policy")
    func fifo() throws {
        let root = try makeDataset()
        let fifo = root.path + "/a/fifo.pgm"
        #expect(mkfifo(fifo, 0o644) == 0)
        let reason = "cannot read file: not a regular file (a FIFO or another special file)"
        let directory = root.path
        let strict = try #require(withinOneMinute { Result { () throws(DatasetError) in try FaceDataset.load(directory: directory, onBadImage: .error) } })
        #expect(throws: DatasetError.image(.unreadableFile(path: fifo, reason: "not a regular file (a FIFO or another special file)"))) {
            try strict.get()
        }
        let skipping = try #require(withinOneMinute { Result { () throws(DatasetError) in try FaceDataset.load(directory: directory, onBadImage: .skip) } })
        let (dataset, report) = try skipping.get()
        #expect(dataset.count == 5)
        #expect(report.skippedImages.map(\.path) == [fifo] && report.skippedImages[0].reason == reason)
        // A symbolic link to the FIFO is refused too.
        try FileManager.default.createSymbolicLink(atPath: root.path + "/b/link.pgm", withDestinationPath: fifo)
        #expect(throws: ImageDecodingError.unreadableFile(path: root.path + "/b/link.pgm",
                                                         reason: "not a regular file (a FIFO or another special file)")) {
            try loadImage(path: root.path + "/b/link.pgm")
        }
    }

    @Test("a folder named like an image is a bad image, not silently ignored")
    func folderNamedLikeAnImage() throws {
        let root = try makeDataset()
        let folder = try root.makeFolder("b/11.pgm")
        #expect(throws: DatasetError.image(.unreadableFile(path: folder, reason: "not a regular file (a directory)"))) {
            try FaceDataset.load(directory: root.path, onBadImage: .error)
        }
        let (_, report) = try FaceDataset.load(directory: root.path, onBadImage: .skip)
        #expect(report.skippedImages.map(\.path) == [folder])
    }
}

@Suite struct EmptyImageMessageTests {
    @Test("an empty file names the format its extension promises")
    func emptyFiles() throws {
        let root = try TemporaryDirectory()
        for (name, format) in [("x.jpg", "a JPEG image"), ("x.jpeg", "a JPEG image"), ("x.png", "a PNG image"), ("x.pgm", "a PGM image")] {
            let path = try root.write([], to: name)
            do { _ = try loadImage(path: path); Issue.record("decoded \(name)") } catch {
                #expect(error.description == "\(path): file is empty (0 bytes); expected \(format)")
            }
        }
        #expect(ImageDecodingError.emptyFile(path: "a/b").description == "a/b: file is empty (0 bytes); expected a PGM, JPEG or PNG image")
    }
}

/// The value of `body` run on a thread of its own, or nil (recording an issue) when it has not
/// returned after 60 seconds of its own running time — a load that blocks on a FIFO.
func withinOneMinute<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T? {
    let box = ResultBox<T>(), done = DispatchSemaphore(value: 0)
    Thread {
        box.value = body()
        done.signal()
    }.start()
    guard done.wait(timeout: .now() + 60) == .success else {
        Issue.record("the load did not return within 60 s (blocked opening a FIFO?)")
        return nil
    }
    return box.value
}

/// Carries `withinOneMinute`'s result from its thread (written before the semaphore is signalled,
/// read after it is waited on).
final class ResultBox<T>: @unchecked Sendable {
    var value: T?
    init() {}
}
