import Foundation
import Testing
import _TestSupport
import ArcFace

@Suite struct EmbeddingExportTests {
    /// Writes `names` (relative paths) as small PGM files under `root`.
    func writeImages(_ names: [String], under root: String, size: Int = 4) throws {
        for (index, name) in names.enumerated() {
            let path = root + "/" + name
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            let image = FaceImage(width: size, height: size, repeating: Float(index) / 10)
            try Data(encodePGM(image)).write(to: URL(fileURLWithPath: path))
        }
    }

    @Test("a folder per identity is labelled by folder, in natural order; other files are skipped")
    func scanIdentityFolders() throws {
        let directory = TemporaryDirectory()
        try writeImages(["s10/1.pgm", "s2/10.pgm", "s2/9.PGM", "s2/notes.txt", "s2/.hidden.pgm"], under: directory.path)
        let list = try ImageList.scan(directory: directory.path)
        #expect(list.paths == ["s2/9.PGM", "s2/10.pgm", "s10/1.pgm"].map { directory.path + "/" + $0 })
        #expect(list.labels == ["s2", "s2", "s10"])
    }

    @Test("a flat folder gives empty labels; root images come before identity folders")
    func scanFlatAndMixed() throws {
        let directory = TemporaryDirectory()
        try writeImages(["b.pgm", "a.pgm"], under: directory.path)
        #expect(try ImageList.scan(directory: directory.path).labels == ["", ""])
        #expect(try ImageList.scan(directory: directory.path).paths == [directory.path + "/a.pgm", directory.path + "/b.pgm"])
        try writeImages(["p/1.pgm"], under: directory.path)
        let mixed = try ImageList.scan(directory: directory.path)
        #expect(mixed.labels == ["", "", "p"])
    }

    @Test("a list file: relative paths, optional labels, comments and blank lines, CRLF")
    func listFile() throws {
        let directory = TemporaryDirectory()
        let listPath = directory.path + "/list.txt"
        try "# comment\r\nfaces/x/1.pgm\r\n\r\n/abs/y/2.pgm\tbob\r\n".write(toFile: listPath, atomically: true, encoding: .utf8)
        let list = try ImageList.read(listFile: listPath)
        #expect(list.paths == [directory.path + "/faces/x/1.pgm", "/abs/y/2.pgm"])
        #expect(list.labels == ["x", "bob"])
        #expect(list.tabSeparatedValues == "index\tpath\tlabel\n0\t\(directory.path)/faces/x/1.pgm\tx\n1\t/abs/y/2.pgm\tbob\n")
    }

    @Test("an empty folder, an empty list and a missing folder are typed errors")
    func emptyInputs() throws {
        let directory = TemporaryDirectory()
        #expect(throws: EmbeddingError.noImages(path: directory.path)) { try ImageList.scan(directory: directory.path) }
        #expect(throws: EmbeddingError.notADirectory(path: directory.path + "/none")) {
            try ImageList.scan(directory: directory.path + "/none")
        }
        try "# nothing\n\n".write(toFile: directory.path + "/l.txt", atomically: true, encoding: .utf8)
        #expect(throws: EmbeddingError.noImages(path: directory.path + "/l.txt")) {
            try ImageList.read(listFile: directory.path + "/l.txt")
        }
    }

    @Test("exported embeddings equal the evaluation path's, read back exactly, with a matching index")
    func exportMatchesEvaluation() throws {
        let faces = try attSlice(identityCount: 2)
        let indices = [0, 1, 10, 11, 12]
        let list = ImageList(paths: indices.map { faces.paths[$0] }, labels: indices.map { faces.identities[faces.labels[$0]] })
        var configuration = TrainingConfiguration.base
        configuration.backbone.stageChannels = [4, 8]
        configuration.backbone.embeddingDimension = 16
        let model = FaceRecognitionModel(configuration: configuration, classCount: 2)
        let directory = TemporaryDirectory()
        let output = directory.path + "/embeddings.npy"
        var reported: [Int] = []
        let exported = try Experiment.exportEmbeddings(list, model: model, output: output, flipSum: true) { done, total in
            #expect(total == 5)
            reported.append(done)
        }
        #expect(reported.last == 5)
        let subset = FaceDataset(identities: faces.identities, images: indices.map { faces.images[$0] },
                                 labels: indices.map { faces.labels[$0] }, paths: list.paths)
        let reference = embeddings(of: subset, backbone: model.backbone, flipSum: true)
        #expect(exported.shape == [5, 16])
        #expect(exported == reference)
        #expect(try NumPyFile.read(path: output) == exported)
        let index = try String(contentsOfFile: directory.path + "/embeddings.tsv", encoding: .utf8)
        #expect(index.split(separator: "\n").count == 6)
        #expect(index.contains("\t\(faces.paths[10])\ts2\n"))

        let normalized = try embedImages(list, backbone: model.backbone, flipSum: true, normalize: true, batchSize: 2)
        for row in 0..<5 {
            let norm = (0..<16).reduce(Float(0)) { $0 + normalized[row, $1] * normalized[row, $1] }.squareRoot()
            #expect(abs(norm - 1) < 1e-5)
        }
    }

    @Test("an image of another size is resized as in training; a broken file is a typed error naming it")
    func badImages() throws {
        let directory = TemporaryDirectory()
        try writeImages(["a/small.pgm"], under: directory.path)
        try Data("P5 broken".utf8).write(to: URL(fileURLWithPath: directory.path + "/a/broken.pgm"))
        var configuration = TrainingConfiguration.base
        configuration.backbone.stageChannels = [4]
        configuration.backbone.embeddingDimension = 8
        let model = FaceRecognitionModel(configuration: configuration, classCount: 2)
        let small = ImageList(paths: [directory.path + "/a/small.pgm"], labels: ["a"])
        let resized = try embedImages(small, backbone: model.backbone, flipSum: false)
        let image = try loadImage(path: small.paths[0]).prepared(channels: 1, size: ImageSize(width: 92, height: 112))
        let dataset = FaceDataset(identities: ["a"], images: [image], labels: [0], paths: small.paths)
        let (direct, _) = model.backbone.forward(dataset.makeTensor(indices: [0]), mode: .inference)
        #expect(resized == direct)
        let broken = ImageList(paths: [directory.path + "/a/broken.pgm"], labels: ["a"])
        do { _ = try embedImages(broken, backbone: model.backbone, flipSum: false); Issue.record("decoded a broken file") }
        catch { guard case .image(let cause) = error else { Issue.record("\(error)"); return }; #expect(cause.path == broken.paths[0]) }
    }
}
