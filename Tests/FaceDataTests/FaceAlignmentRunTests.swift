import Foundation
import Testing
@testable import FaceData

/// `alignFaces`: a landmark file in, crops out under a folder mirroring the image paths, with the
/// input's channels and the chosen format; bad images stop the run (default) or are skipped and
/// listed; nothing is written before the output paths are checked.
@Suite struct FaceAlignmentRunTests {
    /// Landmarks at the template moved by a small similarity, as a plain line.
    static func landmarkLine(_ path: String, shift: Double = 0) -> String {
        let placement = SimilarityTransform(scale: 0.5, rotation: 0.05, translation: SIMD2(5 + shift, 4))
        let points = ArcFaceTemplate.points112.map { placement($0) }
        return path + " " + points.map { "\($0.x) \($0.y)" }.joined(separator: " ")
    }

    /// An image folder with a grey PNG, an RGB JPEG and a PGM in subfolders, and a landmark file.
    func makeImages(_ directory: TemporaryDirectory) throws -> (images: String, landmarks: String) {
        let grey = FaceImage(width: 64, height: 60, pixels: (0..<(64 * 60)).map { Float(($0 * 7) % 256) / 255 })
        try directory.write(try encodePNG(grey), to: "images/alice/1.png")
        try directory.write(try encodeJPEG(colourPattern(width: 64, height: 60)), to: "images/bob/2.jpg")
        try directory.write(encodePGM(grey), to: "images/carol/3.pgm")
        let text = [Self.landmarkLine("alice/1.png"), Self.landmarkLine("bob/2.jpg", shift: 1),
                    Self.landmarkLine("carol/3.pgm", shift: 2)].joined(separator: "\n") + "\n"
        let landmarks = try directory.write(Array(text.utf8), to: "marks.txt")
        return (directory.path + "/images", landmarks)
    }

    func files(under folder: String) -> [String] {
        (FileManager.default.subpaths(atPath: folder) ?? []).filter { path in
            var isFolder: ObjCBool = false
            return FileManager.default.fileExists(atPath: folder + "/" + path, isDirectory: &isFolder) && !isFolder.boolValue
        }.sorted()
    }

    @Test("crops mirror the paths, keep the channels, follow the input's format (PGM → PNG)")
    func mirrorsAndKeepsChannels() throws {
        let directory = try TemporaryDirectory()
        let (images, landmarksPath) = try makeImages(directory)
        let landmarks = try LandmarkFile.read(path: landmarksPath)
        let output = directory.path + "/out"
        var progress: [Int] = []
        let report = try alignFaces(landmarks: landmarks, imageDirectory: images, outputDirectory: output) { done, total in
            #expect(total == 3)
            progress.append(done)
        }
        #expect(progress == [1, 2, 3])
        #expect(files(under: output) == ["alice/1.png", "bob/2.jpg", "carol/3.png"], "no temporary file is left")
        #expect(report.writtenFiles == ["alice/1.png", "bob/2.jpg", "carol/3.png"].map { output + "/" + $0 })
        let png = try loadImage(path: output + "/alice/1.png")
        let jpeg = try loadImage(path: output + "/bob/2.jpg")
        #expect(ImageFormat(signature: try fixtureFreeBytes(output + "/bob/2.jpg")) == .jpeg)
        #expect(ImageFormat(signature: try fixtureFreeBytes(output + "/carol/3.png")) == .png)
        #expect((png.width, png.height, png.channels) == (112, 112, 1))
        #expect((jpeg.width, jpeg.height, jpeg.channels) == (112, 112, 3))
        // The PNG crop is the library crop of the decoded input, rounded to 8 bits.
        let input = try loadImage(path: images + "/alice/1.png")
        let (crop, _) = try #require(input.aligned(landmarks: landmarks.entries[0].landmarks))
        let worst = zip(png.pixels, crop.pixels).map { abs($0 - $1) }.max() ?? 1
        #expect(worst <= 0.5 / 255 + 1e-6, "largest difference \(worst)")
    }

    @Test("relative folders with .. resolve against the current directory")
    func relativeFolders() throws {
        let directory = try TemporaryDirectory()
        let (images, landmarksPath) = try makeImages(directory)
        // "../../tmp/…" from the current directory: up to the root, then down to the images.
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        let up = String(repeating: "../", count: depth)
        let report = try alignFaces(landmarks: try LandmarkFile.read(path: landmarksPath),
                                    imageDirectory: up + images.dropFirst(), outputDirectory: up + directory.path.dropFirst() + "/out")
        #expect(report.writtenFiles.first == directory.path + "/out/alice/1.png")
        #expect(files(under: directory.path + "/out") == ["alice/1.png", "bob/2.jpg", "carol/3.png"])
    }

    @Test("--size 224 and a forced format: every crop 224 × 224, extensions replaced")
    func sizeAndFormat() throws {
        let directory = try TemporaryDirectory()
        let (images, landmarksPath) = try makeImages(directory)
        let output = directory.path + "/out"
        _ = try alignFaces(landmarks: try LandmarkFile.read(path: landmarksPath), imageDirectory: images, outputDirectory: output,
                           options: FaceAlignmentOptions(size: 224, format: .jpeg, jpegQuality: 90))
        #expect(files(under: output) == ["alice/1.jpg", "bob/2.jpg", "carol/3.jpg"])
        let crop = try loadImage(path: output + "/carol/3.jpg")
        #expect((crop.width, crop.height, crop.channels) == (224, 224, 1))
    }

    @Test("a missing image stops the run before any crop is written, naming it and the line")
    func missingImageFailsFast() throws {
        let directory = try TemporaryDirectory()
        let (images, landmarksPath) = try makeImages(directory)
        let text = try String(contentsOfFile: landmarksPath, encoding: .utf8) + Self.landmarkLine("dave/4.jpg") + "\n"
        let landmarks = try LandmarkFile.parse(text, path: landmarksPath)
        let output = directory.path + "/out"
        let error = thrownError { () throws(FaceAlignmentError) in
            try alignFaces(landmarks: landmarks, imageDirectory: images, outputDirectory: output)
        }
        #expect(error == .image(.unreadableFile(path: images + "/dave/4.jpg", reason: "no such file"), landmarkFile: landmarksPath, line: 4))
        #expect(error?.description.contains("dave/4.jpg") == true && error?.description.contains("marks.txt:4") == true)
        #expect(files(under: output).isEmpty)
    }

    @Test("a corrupt image: an error naming it (default), or skipped and listed in skipped-images.txt")
    func corruptImage() throws {
        let directory = try TemporaryDirectory()
        let (images, landmarksPath) = try makeImages(directory)
        try directory.write(Array("not a JPEG".utf8), to: "images/bob/2.jpg")
        let landmarks = try LandmarkFile.read(path: landmarksPath)
        let error = thrownError { () throws(FaceAlignmentError) in
            try alignFaces(landmarks: landmarks, imageDirectory: images, outputDirectory: directory.path + "/out")
        }
        guard case .image(let imageError, _, let line)? = error else {
            Issue.record("expected an image error, got \(String(describing: error))")
            return
        }
        #expect(imageError.path == images + "/bob/2.jpg" && line == 2)

        let output = directory.path + "/skipping"
        let report = try alignFaces(landmarks: landmarks, imageDirectory: images, outputDirectory: output,
                                    options: FaceAlignmentOptions(onBadImage: .skip))
        #expect(report.skippedImages.map(\.path) == [images + "/bob/2.jpg"])
        #expect(files(under: output) == ["alice/1.png", "carol/3.png", "skipped-images.txt"])
        let listed = try String(contentsOfFile: output + "/skipped-images.txt", encoding: .utf8)
        #expect(listed.hasPrefix(images + "/bob/2.jpg\t"), "\(listed)")
    }

    @Test("refused before any work: crops over the inputs, two crops on one file, absolute paths outside")
    func refusedPlans() throws {
        let directory = try TemporaryDirectory()
        let (images, landmarksPath) = try makeImages(directory)
        let landmarks = try LandmarkFile.read(path: landmarksPath)
        let intoInputs = thrownError { () throws(FaceAlignmentError) in
            try alignFaces(landmarks: landmarks, imageDirectory: images, outputDirectory: images + "/./")
        }
        #expect(intoInputs == .outputReplacesInput(output: images + "/alice/1.png", landmarkFile: landmarksPath, line: 1))
        let before = try loadImage(path: images + "/alice/1.png")
        #expect((before.width, before.height) == (64, 60), "the input is untouched")

        try directory.write(try encodePNG(FaceImage(width: 8, height: 8, repeating: 0.5)), to: "images/alice/1.jpg")
        let twice = try LandmarkFile.parse(Self.landmarkLine("alice/1.png") + "\n" + Self.landmarkLine("alice/1.jpg"), path: "m")
        let collision = thrownError { () throws(FaceAlignmentError) in
            try alignFaces(landmarks: twice, imageDirectory: images, outputDirectory: directory.path + "/out",
                           options: FaceAlignmentOptions(format: .png))
        }
        #expect(collision == .outputCollision(output: directory.path + "/out/alice/1.png", landmarkFile: "m", line: 2, firstLine: 1))

        let outside = try LandmarkFile.parse(Self.landmarkLine(directory.path + "/elsewhere.png"), path: "m")
        let outsideError = thrownError { () throws(FaceAlignmentError) in
            try alignFaces(landmarks: outside, imageDirectory: images, outputDirectory: directory.path + "/out")
        }
        #expect(outsideError == .outsideImageFolder(imagePath: directory.path + "/elsewhere.png", landmarkFile: "m", line: 1))
        #expect(files(under: directory.path + "/out").isEmpty)

        // An absolute path inside the image folder is mirrored like a relative one.
        let inside = try LandmarkFile.parse(Self.landmarkLine(images + "/alice/1.png"), path: "m")
        _ = try alignFaces(landmarks: inside, imageDirectory: images, outputDirectory: directory.path + "/out")
        #expect(files(under: directory.path + "/out") == ["alice/1.png"])
    }

    @Test("an output that cannot be written is writeFailed naming it")
    func writeFailure() throws {
        let directory = try TemporaryDirectory()
        let (images, landmarksPath) = try makeImages(directory)
        try directory.write([1, 2, 3], to: "out/alice")  // a file where the folder alice/ must go
        let landmarks = try LandmarkFile.read(path: landmarksPath)
        let error = thrownError { () throws(FaceAlignmentError) in
            try alignFaces(landmarks: landmarks, imageDirectory: images,
                           outputDirectory: directory.path + "/out")
        }
        guard case .writeFailed(let path, _)? = error else {
            Issue.record("expected writeFailed, got \(String(describing: error))")
            return
        }
        #expect(path == directory.path + "/out/alice")
    }

    func fixtureFreeBytes(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
