// `arcface embed`: a checkpoint's embeddings of a folder or list of images, as NumPy `.npy`.
import ArgumentParser
import ArcFace
import Foundation

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's embeddings of images to a NumPy .npy file ([N, D] float32) plus a .tsv of paths and labels.")

    @OptionGroup var checkpoint: CheckpointOption
    @Option(help: "A folder of images: one subfolder per identity (label = folder name), or images directly inside.")
    var images: String?
    @Option(help: "A text file with one image path per line (optionally path<TAB>label); relative paths are relative to the file.")
    var list: String?
    @Option(help: "The .npy file to write (must end in .npy, or have no extension: .npy is added); the index goes beside it as <stem>.tsv. Refused before any work if either is a folder, the checkpoint, an input image, or an existing file that is not a previous output.")
    var output: String = "embeddings.npy"
    @Flag(help: "Add the embedding of the mirrored image (as evaluation does).")
    var flipSum = false
    @Flag(help: "L2-normalize each embedding.")
    var normalize = false
    @Flag(help: "Refuse an image whose channels or size differ from the model's input (default: convert it and warn).")
    var strictInput = false

    func validate() throws {
        guard (images == nil) != (list == nil) else { throw ValidationError("give exactly one of --images and --list") }
    }

    func run() throws {
        do {
            let paths = try EmbeddingOutputPaths(output: output)
            let imageList = try images.map { path throws(EmbeddingError) in try ImageList.scan(directory: path) }
                ?? ImageList.read(listFile: list!)
            let checkpoint = self.checkpoint.path
            let protectedPaths = [checkpoint, checkpoint + "/model.safetensors"] + [list].compactMap { $0 }
            try paths.check(inputs: imageList.paths, protectedPaths: protectedPaths)
            let model = try Experiment.loadEmbeddingModel(path: checkpoint)
            say("model: \(model.summary)")
            say("model input: \(model.configuration.preprocessing)")
            let progress = ProgressReporter(label: "embedding", total: imageList.paths.count, unit: "img")
            var sources = InputSourceTally()
            let embeddings = try exportEmbeddings(imageList, backbone: model.backbone, output: output, flipSum: flipSum,
                                                             normalize: normalize, protectedPaths: protectedPaths,
                                                             input: strictInput ? .refuse : .convert, sources: &sources) { done, _ in progress.update(done) }
            progress.finish()
            sources.mismatchWarnings(against: model.configuration.preprocessing).forEach { say("warning: " + $0) }
            say("wrote \(paths.array) [\(embeddings.shape.map(String.init).joined(separator: ", "))] float32 and \(paths.index)")
        } catch let error as BackboneFileError {
            fail(error)
        } catch let error as EmbeddingError {
            fail(error)
        }
    }
}
