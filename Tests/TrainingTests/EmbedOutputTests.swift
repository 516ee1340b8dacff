import Foundation
import Testing
import _TestSupport
import ArcFace

/// `arcface embed --output`: which files it writes, and what it refuses to overwrite (before any work).
@Suite struct EmbedOutputTests {
    func reason(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch let error as EmbeddingError {
            guard case let .badOutputPath(_, reason) = error else { return "\(error)" }
            return reason
        } catch { return "\(error)" }
    }

    @Test("--output: .npy or no extension; the index is <stem>.tsv; other extensions are refused")
    func naming() throws {
        #expect(try EmbeddingOutputPaths(output: "e") == EmbeddingOutputPaths(output: "e.npy"))
        let paths = try EmbeddingOutputPaths(output: "d/e.NPY")
        #expect(paths.array == "d/e.NPY" && paths.index == "d/e.tsv")
        #expect(try EmbeddingOutputPaths(output: "e").index == "e.tsv")
        #expect(reason { _ = try EmbeddingOutputPaths(output: "e.tsv") }?.contains("must end in .npy") == true)
        #expect(reason { _ = try EmbeddingOutputPaths(output: "model.safetensors") }?.contains("not .safetensors") == true)
        #expect(reason { _ = try EmbeddingOutputPaths(output: "data/s1/1.pgm") } != nil)
    }

    @Test("the checkpoint, an input image, a folder at the index path and a foreign file are refused; previous outputs are replaced")
    func refusals() throws {
        let directory = TemporaryDirectory()
        let root = directory.path
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        let image = FaceImage(width: 4, height: 4, repeating: 0.5)
        try FileManager.default.createDirectory(atPath: root + "/s1", withIntermediateDirectories: true)
        try Data(encodePGM(image)).write(to: URL(fileURLWithPath: root + "/s1/1.pgm"))
        let list = ImageList(paths: [root + "/s1/1.pgm"], labels: ["s1"])
        let checkpoint = root + "/model.npy"  // a checkpoint saved under a .npy name
        try Data("not numpy".utf8).write(to: URL(fileURLWithPath: checkpoint))
        #expect(reason { try EmbeddingOutputPaths(output: checkpoint).check(inputs: list.paths, protectedPaths: [checkpoint]) }
                == "it is \(checkpoint), which must not be overwritten")
        // An input image reached through a symbolic link named .npy.
        try FileManager.default.createSymbolicLink(atPath: root + "/link.npy", withDestinationPath: root + "/s1/1.pgm")
        #expect(reason { try EmbeddingOutputPaths(output: root + "/link.npy").check(inputs: list.paths) }
                == "it is the input image \(root)/s1/1.pgm")
        // A folder at the index path is refused before anything is written.
        try FileManager.default.createDirectory(atPath: root + "/x.tsv", withIntermediateDirectories: true)
        #expect(reason { try Experiment.exportEmbeddings(list, model: model, output: root + "/x.npy", flipSum: false) }
            == "it is a folder, and the index of \(root)/x.npy goes there; choose another --output")
        #expect(!FileManager.default.fileExists(atPath: root + "/x.npy"))
        // A foreign file at either path.
        try Data("notes".utf8).write(to: URL(fileURLWithPath: root + "/y.tsv"))
        #expect(reason { try Experiment.exportEmbeddings(list, model: model, output: root + "/y", flipSum: false) }?
            .contains("not a previous .tsv index") == true)
        try Data("notes".utf8).write(to: URL(fileURLWithPath: root + "/z.npy"))
        #expect(reason { try Experiment.exportEmbeddings(list, model: model, output: root + "/z.npy", flipSum: false) }?
            .contains("not a previous .npy output") == true)
        #expect(try String(contentsOfFile: root + "/z.npy", encoding: .utf8) == "notes")
        // A previous output is replaced; no temporary is left.
        let first = try Experiment.exportEmbeddings(list, model: model, output: root + "/e", flipSum: false)
        let second = try Experiment.exportEmbeddings(list, model: model, output: root + "/e.npy", flipSum: true)
        #expect(try NumPyFile.read(path: root + "/e.npy") == second && first != second)
        #expect(try String(contentsOfFile: root + "/e.tsv", encoding: .utf8) == list.tabSeparatedValues)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).filter { $0.contains(".tmp-") }.isEmpty)
    }

    @Test("embed: an existing folder or a missing parent folder as --output is our own error, before any work")
    func embedOutputPath() throws {
        let directory = TemporaryDirectory()
        let model = FaceRecognitionModel(configuration: tinyConfiguration(), classCount: 3)
        let list = ImageList(paths: ["/nonexistent/a.pgm"], labels: [""])  // never read: the output is checked first
        #expect(throws: EmbeddingError.badOutputPath(path: directory.path, reason: "it is a folder; give a file path such as \(directory.path)/embeddings.npy")) {
            try Experiment.exportEmbeddings(list, model: model, output: directory.path, flipSum: false)
        }
        let missing = directory.path + "/no/such/e.npy"
        #expect(throws: EmbeddingError.badOutputPath(path: missing, reason: "the folder \(directory.path)/no/such does not exist")) {
            try Experiment.exportEmbeddings(list, model: model, output: missing, flipSum: false)
        }
        #expect(EmbeddingError.badOutputPath(path: "/x", reason: "it is a folder").description == "cannot write the embeddings to /x: it is a folder")
    }
}
