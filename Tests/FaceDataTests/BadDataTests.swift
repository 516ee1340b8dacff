import Foundation
import Testing
@testable import FaceData

@Suite struct BadDataTests {
    static let good = encodePGM(FaceImage(width: 4, height: 3, repeating: 0.5))
    static let wide = encodePGM(FaceImage(width: 5, height: 3, repeating: 0.5))
    static let corrupt = Array("P5\n4 3\n255\n".utf8) + [1, 2]  // truncated pixel data

    /// a: 3 good; b: 2 good + 1 corrupt; c: 1 good + 1 of another size; d: 1 corrupt.
    static func makeDataset() throws -> TemporaryDirectory {
        let root = try TemporaryDirectory()
        for i in 1...3 { try root.write(good, to: "a/\(i).pgm") }
        for i in 1...2 { try root.write(good, to: "b/\(i).pgm") }
        try root.write(corrupt, to: "b/3.pgm")
        try root.write(good, to: "c/1.pgm")
        try root.write(wide, to: "c/2.pgm")
        try root.write(corrupt, to: "d/1.pgm")
        return root
    }

    @Test("error: the first bad file stops loading, naming it")
    func errorPolicy() throws {
        let root = try Self.makeDataset()
        #expect(throws: DatasetError.image(.truncatedPixelData(path: root.path + "/b/3.pgm", expectedBytes: 12, availableBytes: 2))) {
            try FaceDataset.load(directory: root.path, onBadImage: .error)
        }
        #expect(throws: DatasetError.self) { try FaceDataset.load(directory: root.path) }
    }

    @Test("skip: bad files are listed, sparse identities reported, empty ones dropped")
    func skipPolicy() throws {
        let root = try Self.makeDataset()
        let (dataset, report) = try FaceDataset.load(directory: root.path, onBadImage: .skip)
        #expect(dataset.identities == ["a", "b", "c"])
        #expect(dataset.labels == [0, 0, 0, 1, 1, 2])
        #expect(report.skippedImages.map(\.path) == ["b/3.pgm", "c/2.pgm", "d/1.pgm"].map { root.path + "/" + $0 })
        #expect(report.skippedImages[1].reason.contains("5×3") || report.skippedImages[1].reason.contains("5"))
        #expect(report.sparseIdentities == [.init(name: "c", imageCount: 1), .init(name: "d", imageCount: 0)])
        #expect(report.skippedImagesText.split(separator: "\n").count == 3)
        // Each line names its file once: the reason does not repeat the path.
        #expect(report.skippedImages[0].reason == "truncated PGM raster: expected 12 bytes of pixel data, found 2")
        #expect(report.skippedImagesText.hasPrefix(root.path + "/b/3.pgm\ttruncated PGM raster: expected 12 bytes"))
        for line in report.skippedImagesText.split(separator: "\n") {
            let fields = line.split(separator: "\t")
            #expect(fields.count == 2 && !fields[1].contains(root.path), "\(line)")
        }
        #expect(report.warnings[0] == "skipped \(root.path)/b/3.pgm: truncated PGM raster: expected 12 bytes of pixel data, found 2")
        #expect(report.warnings.count == 5)
    }

    @Test("a symbolic link loop is an error naming the link, under either policy")
    func symlinkLoops() throws {
        let root = try Self.makeDataset()
        let fileManager = FileManager.default
        try fileManager.createSymbolicLink(atPath: root.path + "/a/9.pgm", withDestinationPath: "10.pgm")
        try fileManager.createSymbolicLink(atPath: root.path + "/a/10.pgm", withDestinationPath: root.path + "/a/9.pgm")
        for policy in BadImagePolicy.allCases {
            do {
                _ = try FaceDataset.load(directory: root.path, onBadImage: policy)
                Issue.record("a symbolic link loop was accepted")
            } catch {
                guard case .symbolicLinkLoop(let path) = error else { Issue.record("\(error)"); continue }
                #expect(path.hasPrefix(root.path + "/a/") && path.hasSuffix(".pgm"))
                #expect(error.description.contains(path))
            }
        }
        // A folder linking to itself at the root.
        let other = try Self.makeDataset()
        try fileManager.createSymbolicLink(atPath: other.path + "/e", withDestinationPath: "e")
        #expect(throws: DatasetError.symbolicLinkLoop(path: other.path + "/e")) {
            try FaceDataset.load(directory: other.path, onBadImage: .skip)
        }
        // A link that resolves is followed as before.
        let linked = try Self.makeDataset()
        try fileManager.createSymbolicLink(atPath: linked.path + "/a/4.pgm", withDestinationPath: "1.pgm")
        #expect(try FaceDataset.load(directory: linked.path, onBadImage: .skip).dataset.count == 7)
    }

    @Test("a folder without read permission is an error naming it", .enabled(if: getuid() != 0, "root reads any folder"))
    func permissionDenied() throws {
        let root = try Self.makeDataset()
        try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: root.path + "/b")
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root.path + "/b") }
        #expect(throws: DatasetError.unreadable(path: root.path + "/b", reason: "Permission denied")) {
            try FaceDataset.load(directory: root.path, onBadImage: .skip)
        }
    }
}
