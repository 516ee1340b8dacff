// `arcface embed`: a checkpoint's embeddings of a folder or list of images, as NumPy `.npy`.
import ArgumentParser
import ArcFace
import Foundation

struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's embeddings of images to a NumPy .npy file ([N, D] float32) plus a .tsv of paths and labels.")

    @Option(help: "A model.safetensors file or the run folder holding it.")
    var checkpoint: String
    @Option(help: "A folder of images: one subfolder per identity (label = folder name), or images directly inside.")
    var images: String?
    @Option(help: "A text file with one image path per line (optionally path<TAB>label); relative paths are relative to the file.")
    var list: String?
    @Option(help: "The .npy file to write; the index goes beside it with the extension .tsv.")
    var output: String = "embeddings.npy"
    @Flag(help: "Add the embedding of the mirrored image (as evaluation does).")
    var flipSum = false
    @Flag(help: "L2-normalize each embedding.")
    var normalize = false

    func validate() throws {
        guard (images == nil) != (list == nil) else { throw ValidationError("give exactly one of --images and --list") }
    }

    func run() throws {
        do {
            let model = try Experiment.loadModel(path: checkpoint)
            let imageList = try images.map { path throws(EmbeddingError) in try ImageList.scan(directory: path) }
                ?? ImageList.read(listFile: list!)
            let progress = ProgressReporter(label: "embedding", total: imageList.paths.count, unit: "img")
            let embeddings = try Experiment.exportEmbeddings(imageList, model: model, output: output, flipSum: flipSum,
                                                             normalize: normalize) { done, _ in progress.update(done) }
            progress.finish()
            say("wrote \(output) [\(embeddings.shape.map(String.init).joined(separator: ", "))] float32 and \(Experiment.embeddingIndexPath(forOutput: output))")
        } catch let error as CheckpointError {
            fail(error)
        } catch let error as EmbeddingError {
            fail(error)
        }
    }
}
