// `arcface export`: a checkpoint's backbone as an ONNX model for deployment.
import ArgumentParser
import ArcFace
import ONNXExport
import Foundation

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's backbone as an ONNX model (input data [N, C, H, W] normalized to (v - 127.5)/127.5, output the embeddings [N, D], not normalized).")

    @OptionGroup var checkpoint: CheckpointOption
    @Option(help: ArgumentHelp("The ONNX file to write (written to a temporary file beside it, then renamed over it).", valueName: "file"))
    var onnx: String

    func validate() throws {
        let output = URL(fileURLWithPath: onnx).standardizedFileURL.resolvingSymlinksInPath().path
        let protected = [checkpoint.path, checkpoint.path + "/model.safetensors"].map {
            URL(fileURLWithPath: $0).standardizedFileURL.resolvingSymlinksInPath().path
        }
        if protected.contains(output) {
            throw ValidationError("--onnx \(onnx) would overwrite the checkpoint; choose another file")
        }
    }

    func run() throws {
        do {
            let model = try Experiment.loadEmbeddingModel(path: checkpoint.path)
            say("model: \(model.summary)")
            let data = try ONNXExporter.model(of: model.backbone)
            try ONNXExporter.write(data, to: onnx)
            let c = model.configuration.backbone
            say("wrote \(onnx) (\(data.count) bytes, opset \(ONNXExporter.opsetVersion)): input \(ONNXExporter.inputName) "
                + "[N, \(c.inputChannels), \(c.inputHeight), \(c.inputWidth)] in (v - 127.5)/127.5, output "
                + "\(ONNXExporter.outputName) [N, \(c.embeddingDimension)], not normalized")
        } catch let error as BackboneFileError {
            throw failure(error)
        } catch let error as ONNXExportError {
            throw failure(error)
        }
    }
}
