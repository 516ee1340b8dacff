import FaceData
import Foundation
import Testing

/// A tiny valid PGM of `width × height` pixels, every sample `value`.
private func tinyPGM(width: Int = 4, height: Int = 3, value: UInt8 = 7) -> [UInt8] {
    pgm("P5\n\(width) \(height)\n255\n", [UInt8](repeating: value, count: width * height))
}

@Suite struct FaceDatasetLoadingTests {
    @Test func attFacesLoad() throws {
        let faces = try requireATTFaces()
        #expect(faces.identityCount == 40)
        #expect(faces.count == 400)
        #expect(faces.identities == (1...40).map { "s\($0)" })  // natural order: s1, s2, …, s10, …
        #expect(faces.images.allSatisfy { $0.width == 92 && $0.height == 112 })
        #expect(faces.imageSize == ImageSize(width: 92, height: 112))
        #expect(faces.labels == (0..<400).map { $0 / 10 })
        // Files in natural order too: 1.pgm, 2.pgm, …, 10.pgm.
        #expect(faces.paths[0].hasSuffix("/s1/1.pgm"))
        #expect(faces.paths[1].hasSuffix("/s1/2.pgm"))
        #expect(faces.paths[9].hasSuffix("/s1/10.pgm"))
        #expect(faces.paths[399].hasSuffix("/s40/10.pgm"))
        #expect(faces.images.allSatisfy { image in image.pixels.allSatisfy { $0 >= 0 && $0 <= 1 } })
    }

    @Test func attFacesPixelMatchesFileBytes() throws {
        // s2/5.pgm is sample 1·10 + 4 = 14; its raster is the last 10304 bytes of the file.
        let faces = try requireATTFaces()
        #expect(faces.paths[14].hasSuffix("/s2/5.pgm"))
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: attFacesDirectory + "/s2/5.pgm")))
        let raster = Array(bytes.suffix(10304))
        #expect(faces.images[14][60, 30] == Float(raster[60 * 92 + 30]) / 255)
        #expect(faces.images[14].pixels == raster.map { Float($0) / 255 })
    }

    @Test func layoutRules() throws {
        // Folders s10, s2, s1 (natural order s1, s2, s10); a hidden folder and a root file are
        // ignored; in s1 an upper-case .PGM counts, a hidden .pgm and a .txt do not.
        let root = try TemporaryDirectory()
        try root.write(tinyPGM(value: 1), to: "s10/1.pgm")
        try root.write(tinyPGM(value: 2), to: "s2/1.pgm")
        try root.write(tinyPGM(value: 3), to: "s1/10.pgm")
        try root.write(tinyPGM(value: 4), to: "s1/9.PGM")
        try root.write(tinyPGM(value: 5), to: "s1/.hidden.pgm")
        try root.write(Array("notes".utf8), to: "s1/notes.txt")
        try root.write(tinyPGM(), to: ".cache/1.pgm")
        try root.write(Array("readme".utf8), to: "README")
        let dataset = try FaceDataset.load(directory: root.path)
        #expect(dataset.identities == ["s1", "s2", "s10"])
        #expect(dataset.labels == [0, 0, 1, 2])
        #expect(dataset.paths.map { ($0 as NSString).lastPathComponent } == ["9.PGM", "10.pgm", "1.pgm", "1.pgm"])
        #expect(dataset.images.map { $0.pixels[0] } == [4, 3, 2, 1].map { Float($0) / 255 })
    }

    @Test func nonexistentDirectory() throws {
        let root = try TemporaryDirectory()
        let missing = root.path + "/nothing-here"
        #expect(loadingError(missing) == .notADirectory(path: missing))
        let file = try root.write(tinyPGM(), to: "file.pgm")
        #expect(loadingError(file) == .notADirectory(path: file))
        #expect(loadingError(missing)?.description.contains(missing) == true)
    }

    @Test func emptyIdentityFolder() throws {
        let root = try TemporaryDirectory()
        try root.write(tinyPGM(), to: "a/1.pgm")
        let empty = try root.makeFolder("b")
        try root.write(Array("x".utf8), to: "b/not-an-image.txt")
        let error = loadingError(root.path)
        #expect(error == .emptyIdentity(path: empty))
        #expect(error?.description.contains(empty) == true)
    }

    @Test func fewerThanTwoIdentities() throws {
        let root = try TemporaryDirectory()
        #expect(loadingError(root.path) == .noImages(path: root.path))
        try root.write(tinyPGM(), to: "only/1.pgm")
        let error = loadingError(root.path)
        #expect(error == .tooFewIdentities(found: 1, path: root.path))
        #expect(error?.description.contains(root.path) == true)
    }

    @Test func mixedImageSizes() throws {
        let root = try TemporaryDirectory()
        try root.write(tinyPGM(width: 4, height: 3), to: "a/1.pgm")
        let odd = try root.write(tinyPGM(width: 5, height: 3), to: "b/1.pgm")
        let error = loadingError(root.path)
        #expect(error == .inconsistentImageSize(path: odd, expected: ImageSize(width: 4, height: 3),
                                                found: ImageSize(width: 5, height: 3)))
        #expect(error?.description.contains("5×3") == true)
    }

    @Test func badImageInDataset() throws {
        let root = try TemporaryDirectory()
        try root.write(tinyPGM(), to: "a/1.pgm")
        let bad = try root.write(Array("GIF89a".utf8), to: "b/1.pgm")
        let error = loadingError(root.path)
        #expect(error == .image(.wrongMagic(path: bad, found: Array("GI".utf8))))
        #expect(error?.description.contains(bad) == true)
    }
}

@Suite struct FaceDatasetSplitTests {
    @Test func attSplitThirtyTen() throws {
        let faces = try requireATTFaces()
        let (train, heldOut) = try faces.splitByIdentity(heldOutIdentityCount: 10, seed: 7)
        #expect(train.identityCount == 30 && heldOut.identityCount == 10)
        #expect(train.count == 300 && heldOut.count == 100)
        #expect(Set(train.identities).isDisjoint(with: heldOut.identities))
        #expect(Set(train.identities).union(heldOut.identities) == Set(faces.identities))
        // Each part keeps the natural order, and labels are re-indexed 0..<k.
        #expect(train.identities == faces.identities.filter { train.identities.contains($0) })
        #expect(train.labels == (0..<300).map { $0 / 10 })
        #expect(heldOut.labels == (0..<100).map { $0 / 10 })
        // Every sample keeps its image, and its label names the folder it came from.
        let indexOfPath = Dictionary(uniqueKeysWithValues: faces.paths.enumerated().map { ($1, $0) })
        for part in [train, heldOut] {
            for sample in 0..<part.count {
                let folder = ((part.paths[sample] as NSString).deletingLastPathComponent as NSString).lastPathComponent
                #expect(part.identities[part.labels[sample]] == folder)
                #expect(part.images[sample] == faces.images[indexOfPath[part.paths[sample]] ?? -1])
            }
        }
    }

    @Test func splitIsSeeded() throws {
        let faces = try requireATTFaces()
        let first = try faces.splitByIdentity(heldOutIdentityCount: 10, seed: 1).heldOut.identities
        let again = try faces.splitByIdentity(heldOutIdentityCount: 10, seed: 1).heldOut.identities
        let other = try faces.splitByIdentity(heldOutIdentityCount: 10, seed: 2).heldOut.identities
        #expect(first == again)
        #expect(first != other)  // equal with probability 1/C(40,10) ≈ 1.2e−9 for a fair shuffle
        #expect(first != Array(faces.identities.prefix(10)))
    }

    @Test(arguments: [0, 1, 39, 40, 41, -1])
    func invalidSplits(heldOut: Int) throws {
        let faces = try requireATTFaces()
        #expect(throws: DatasetError.invalidSplit(heldOutIdentityCount: heldOut, identityCount: 40)) {
            try faces.splitByIdentity(heldOutIdentityCount: heldOut, seed: 0)
        }
    }

    @Test func boundarySplitsAreValid() throws {
        let faces = syntheticDataset(identityCount: 4, imagesPerIdentity: 2)
        let (train, heldOut) = try faces.splitByIdentity(heldOutIdentityCount: 2, seed: 3)
        #expect(train.identityCount == 2 && heldOut.identityCount == 2)
        #expect(train.labels == [0, 0, 1, 1] && heldOut.labels == [0, 0, 1, 1])
        #expect(throws: DatasetError.invalidSplit(heldOutIdentityCount: 2, identityCount: 3)) {
            try syntheticDataset(identityCount: 3).splitByIdentity(heldOutIdentityCount: 2, seed: 3)
        }
    }

    @Test func subsetAndPrefix() {
        let faces = syntheticDataset(identityCount: 3, imagesPerIdentity: 4)
        let small = faces.prefix(identityCount: 2)
        #expect(small.identities == ["id0", "id1"])
        #expect(small.count == 8 && small.labels == [0, 0, 0, 0, 1, 1, 1, 1])
        let picked = faces.subset(identityIndices: [2, 0])
        #expect(picked.identities == ["id0", "id2"])
        #expect(picked.labels == [0, 0, 0, 0, 1, 1, 1, 1])
        #expect(picked.images[4] == faces.images[8])
        #expect(faces.sampleIndicesByIdentity == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])
    }
}
