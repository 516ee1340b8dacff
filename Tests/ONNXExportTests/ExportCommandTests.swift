import Foundation
import Testing
import _TestSupport
import TensorCore
import RunConfiguration
import Layers
import Training
import ONNXExport

/// The built `arcface` executable beside this test bundle, when there is one.
private let arcfaceBinary: String? = {
    var folder = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = folder.appendingPathComponent("arcface").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        folder = folder.deletingLastPathComponent()
    }
    return nil
}()

/// Runs `arcface arguments…` and returns its exit status and its standard output and error.
private func runArcface(_ binary: String, _ arguments: [String]) throws -> (status: Int32, text: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// `arcface export --onnx FILE --checkpoint RUN`.
@Suite struct ExportCommandTests {
    /// A saved untrained model of a small backbone, in `directory/run`.
    private func savedRun(in directory: TemporaryDirectory) throws -> (path: String, model: FaceRecognitionModel) {
        var configuration = TrainingConfiguration.base
        configuration.backbone.stageChannels = [4, 8]
        configuration.backbone.embeddingDimension = 16
        let model = FaceRecognitionModel(configuration: configuration, classCount: 3)
        let run = directory.path + "/run"
        try Experiment.save(model, metrics: nil, identities: ["a", "b", "c"], to: run)
        return (run, model)
    }

    @Test("exports the checkpoint's backbone; the file is ONNXExporter's model of the loaded backbone",
          .enabled(if: arcfaceBinary != nil))
    func exports() throws {
        let binary = try #require(arcfaceBinary)
        let directory = TemporaryDirectory()
        let (run, _) = try savedRun(in: directory)
        let output = directory.path + "/model.onnx"
        for checkpoint in [run, run + "/model.safetensors"] {   // the run folder or the file, as embed and evaluate
            try? FileManager.default.removeItem(atPath: output)
            let result = try runArcface(binary, ["export", "--onnx", output, "--checkpoint", checkpoint])
            #expect(result.status == 0, "\(result.text)")
            #expect(result.text.contains("wrote \(output)"), "\(result.text)")
            #expect(result.text.contains("input data [N, 1, 112, 92]"), "\(result.text)")
            let loaded = try Experiment.loadModel(path: run)
            #expect(try Data(contentsOf: URL(fileURLWithPath: output)) == (try ONNXExporter.model(of: loaded.backbone)))
        }
    }

    @Test("exports a MobileFaceNet checkpoint: data [N, 3, 112, 112], the loaded backbone's model, grouped Conv",
          .enabled(if: arcfaceBinary != nil))
    func exportsFamily() throws {
        let binary = try #require(arcfaceBinary)
        let directory = TemporaryDirectory()
        var configuration = TrainingConfiguration.base
        configuration.backbone = BackboneConfiguration(kind: .mobilefacenet)
        let run = directory.path + "/run"
        try Experiment.save(FaceRecognitionModel(configuration: configuration, classCount: 2), metrics: nil, identities: ["a", "b"], to: run)
        let output = directory.path + "/mbf.onnx"
        let result = try runArcface(binary, ["export", "--onnx", output, "--checkpoint", run])
        #expect(result.status == 0, "\(result.text)")
        #expect(result.text.contains("input data [N, 3, 112, 112]") && result.text.contains("embedding [N, 512]"), "\(result.text)")
        let data = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(data == (try ONNXExporter.model(of: try Experiment.loadModel(path: run).backbone)))
        let graph = try parse(data).graph
        #expect(graph.node.contains { $0.opType == "Conv" && attribute($0, "group")?.i == 512 })
        #expect(graph.input.map(\.name) == ["data"] && graph.output.count == 1)
    }

    @Test("a missing checkpoint exits 1 naming it; --onnx onto the checkpoint exits 64; an unwritable --onnx exits 1",
          .enabled(if: arcfaceBinary != nil))
    func errors() throws {
        let binary = try #require(arcfaceBinary)
        let directory = TemporaryDirectory()
        let missing = try runArcface(binary, ["export", "--onnx", directory.path + "/m.onnx", "--checkpoint", directory.path + "/nothing"])
        #expect(missing.status == 1, "\(missing.text)")
        #expect(missing.text.contains("error: cannot read checkpoint \(directory.path)/nothing"), "\(missing.text)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/m.onnx"))

        let (run, _) = try savedRun(in: directory)
        let before = try Data(contentsOf: URL(fileURLWithPath: run + "/model.safetensors"))
        let onto = try runArcface(binary, ["export", "--onnx", run + "/model.safetensors", "--checkpoint", run])
        #expect(onto.status == 64, "\(onto.text)")
        #expect(onto.text.contains("would overwrite the checkpoint"), "\(onto.text)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: run + "/model.safetensors")) == before)

        let unwritable = directory.path + "/no-such-folder/m.onnx"
        let failed = try runArcface(binary, ["export", "--onnx", unwritable, "--checkpoint", run])
        #expect(failed.status == 1, "\(failed.text)")
        #expect(failed.text.contains("error: cannot write \(unwritable)"), "\(failed.text)")

        let usage = try runArcface(binary, ["export", "--checkpoint", run])
        #expect(usage.status == 64, "\(usage.text)")
        #expect(usage.text.contains("--onnx"), "\(usage.text)")
    }
}
