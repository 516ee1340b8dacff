import Foundation
import TensorCore
import Layers
import FaceData

/// The images to embed, in output order, each with an identity label (`""` when unknown).
///
/// Row `i` of an exported embedding matrix belongs to `paths[i]`, labelled `labels[i]`.
public struct ImageList: Sendable, Equatable {
    /// Image files, `[N]`.
    public var paths: [String]
    /// The identity label of each image, `[N]`: the identity folder's name, the list file's
    /// second column, or `""` for images with no identity (a flat folder).
    public var labels: [String]

    public init(paths: [String], labels: [String]) {
        precondition(paths.count == labels.count, "ImageList: \(paths.count) paths, \(labels.count) labels")
        self.paths = paths
        self.labels = labels
    }

    /// The file name extensions (lowercase, no dot) of the images that can be embedded.
    public static let imageExtensions: Set<String> = ["pgm", "jpg", "jpeg", "png"]

    /// The images of `directory`, in either layout:
    ///
    /// - folder per identity (`root/<identity>/<image>`): each image is labelled with its
    ///   folder's name;
    /// - flat (`root/<image>`): each image is labelled `""`.
    ///
    /// Both may be mixed. Identities and, within a folder, files are in natural order
    /// (`s2` before `s10`), root files first; names starting with `.` and files whose extension
    /// is not in `imageExtensions` are skipped; only one level of subfolders is read.
    ///
    /// - Throws: `EmbeddingError.notADirectory`, `.unreadable` or `.noImages`.
    public static func scan(directory: String) throws(EmbeddingError) -> ImageList {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder), isFolder.boolValue else {
            throw .notADirectory(path: directory)
        }
        var paths: [String] = [], labels: [String] = []
        let entries = try visibleEntries(directory)
        var folders: [String] = []
        for name in entries {
            let path = joinedPath(directory, name)
            if isDirectoryPath(path) { folders.append(name) }
            else if isImageFile(name) { paths.append(path); labels.append("") }
        }
        for folder in folders {
            let folderPath = joinedPath(directory, folder)
            for name in try visibleEntries(folderPath) where isImageFile(name) {
                let path = joinedPath(folderPath, name)
                guard !isDirectoryPath(path) else { continue }
                paths.append(path)
                labels.append(folder)
            }
        }
        guard !paths.isEmpty else { throw .noImages(path: directory) }
        return ImageList(paths: paths, labels: labels)
    }

    /// The images named by a list file: one image per line, `path` or `path<TAB>label`.
    ///
    /// Relative paths are relative to the list file's folder. Without a label column an image
    /// is labelled with the name of its parent folder. Blank lines and lines starting with `#`
    /// are skipped. Files are not opened here (a missing one fails at embedding time, by name).
    ///
    /// - Throws: `EmbeddingError.unreadable` or `.noImages` (no path in the file).
    public static func read(listFile: String) throws(EmbeddingError) -> ImageList {
        let text: String
        do { text = try String(contentsOfFile: listFile, encoding: .utf8) }
        catch { throw .unreadable(path: listFile, reason: error.localizedDescription) }
        let base = URL(fileURLWithPath: listFile).deletingLastPathComponent()
        var paths: [String] = [], labels: [String] = []
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine[...]
            guard !line.allSatisfy(\.isWhitespace), !line.hasPrefix("#") else { continue }
            let columns = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            let given = String(columns[0])
            let path = given.hasPrefix("/") ? given : base.appendingPathComponent(given).path
            paths.append(path)
            labels.append(columns.count > 1 ? String(columns[1])
                          : URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent)
        }
        guard !paths.isEmpty else { throw .noImages(path: listFile) }
        return ImageList(paths: paths, labels: labels)
    }

    /// The list as tab-separated values: a header `index\tpath\tlabel`, then one row per image
    /// in embedding-row order. Tabs, carriage returns and newlines inside a path or label are
    /// written as spaces, so every row has exactly three columns.
    public var tabSeparatedValues: String {
        func clean(_ s: String) -> String {
            String(s.map { $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
        }
        var lines = ["index\tpath\tlabel"]
        for (index, (path, label)) in zip(paths, labels).enumerated() {
            lines.append("\(index)\t\(clean(path))\t\(clean(label))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func isImageFile(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return imageExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    private static func visibleEntries(_ directory: String) throws(EmbeddingError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { !$0.hasPrefix(".") }.sorted(by: naturalOrderPrecedes)
        } catch { throw .unreadable(path: directory, reason: error.localizedDescription) }
    }
}

/// Decodes one image file for embedding. The one place that picks a decoder by file type.
func decodeImageForEmbedding(path: String) throws(ImageDecodingError) -> GrayImage {
    try loadImage(path: path)
}

/// The backbone's embeddings of the images of `list`, in inference mode, read in batches so that
/// only one batch of images is in memory at a time.
///
/// - Parameters:
///   - list: the images, `[N]`; each must have the backbone's input size.
///   - backbone: the embedding network (its configuration gives the input size).
///   - flipSum: add the embedding of the horizontally mirrored image (arcface_torch's test-time
///     augmentation), as `Experiment.evaluate` does with `flipEmbeddings`.
///   - normalize: L2-normalize each row (after the flip sum).
///   - batchSize: images per forward pass, ≥ 1.
///   - progress: called after each batch with (images done, total).
/// - Returns: `[N, D]`.
/// - Throws: `EmbeddingError.image` (a file fails to decode, by name) or `.imageSize`.
public func embedImages(_ list: ImageList, backbone: Backbone, flipSum: Bool, normalize: Bool = false,
                        batchSize: Int = 50, progress: (Int, Int) -> Void = { _, _ in })
    throws(EmbeddingError) -> Tensor {
    precondition(batchSize >= 1, "embedImages: batchSize must be ≥ 1: \(batchSize)")
    let configuration = backbone.configuration
    let expected = ImageSize(width: configuration.inputWidth, height: configuration.inputHeight)
    let total = list.paths.count
    var result: [Float] = []
    var dimension = configuration.embeddingDimension
    var start = 0
    while start < total {
        let range = start..<min(total, start + batchSize)
        var images: [GrayImage] = []
        for path in list.paths[range] {
            let image: GrayImage
            do { image = try decodeImageForEmbedding(path: path) } catch { throw .image(error) }
            // As in training: converted to the input's channels, resized and centre-cropped.
            images.append(image.prepared(channels: configuration.inputChannels, size: expected))
        }
        let batch = FaceDataset(identities: ["?"], images: images, labels: Array(repeating: 0, count: images.count),
                                paths: Array(list.paths[range]))
        let indices = Array(0..<images.count)
        var (output, _) = backbone.forward(batch.makeTensor(indices: indices), mode: .inference)
        if flipSum {
            let (mirrored, _) = backbone.forward(batch.makeTensor(indices: indices, flipped: true), mode: .inference)
            output += mirrored
        }
        dimension = output.shape[1]
        result.append(contentsOf: output.storage)
        start = range.upperBound
        progress(start, total)
    }
    let embeddings = Tensor(shape: [total, dimension], storage: result)
    return normalize ? l2NormalizedRows(embeddings).normalized : embeddings
}

extension Experiment {
    /// The path of the index file written beside an embeddings file: `embeddings.npy` →
    /// `embeddings.tsv` (any other name gets `.tsv` appended).
    public static func embeddingIndexPath(forOutput output: String) -> String {
        output.lowercased().hasSuffix(".npy") ? String(output.dropLast(4)) + ".tsv" : output + ".tsv"
    }

    /// Embeds `list` with `model`'s backbone and writes the `[N, D]` float32 matrix to `output`
    /// (NumPy `.npy` 1.0) and the rows' paths and labels to `embeddingIndexPath(forOutput:)`,
    /// each atomically.
    ///
    /// - Returns: the embeddings, `[N, D]`.
    /// - Throws: `EmbeddingError` (a bad image, or `.output`/`.writeFailed` for the files).
    @discardableResult
    public static func exportEmbeddings(_ list: ImageList, model: FaceRecognitionModel, output: String,
                                        flipSum: Bool, normalize: Bool = false,
                                        progress: (Int, Int) -> Void = { _, _ in }) throws(EmbeddingError) -> Tensor {
        try checkOutputPath(output)
        let embeddings = try embedImages(list, backbone: model.backbone, flipSum: flipSum, normalize: normalize,
                                         progress: progress)
        do { try NumPyFile.write(embeddings, to: output) } catch { throw .output(error) }
        let index = embeddingIndexPath(forOutput: output)
        do { try Data(list.tabSeparatedValues.utf8).write(to: URL(fileURLWithPath: index), options: .atomic) }
        catch { throw .writeFailed(path: index, reason: error.localizedDescription) }
        return embeddings
    }
}

/// Why images could not be embedded or the embeddings not written. Each case names the file.
public enum EmbeddingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The `--images` path does not exist or is not a folder.
    case notADirectory(path: String)
    /// A folder could not be listed or a list file read.
    case unreadable(path: String, reason: String)
    /// A folder holds no image (at its root or one level down), or a list file names none.
    case noImages(path: String)
    /// An image file could not be read or decoded.
    case image(ImageDecodingError)
    /// An image's size differs from the model's input size.
    case imageSize(path: String, expected: ImageSize, found: ImageSize)
    /// The `.npy` file could not be written.
    case output(NumPyFileError)
    /// Another output file could not be written.
    case writeFailed(path: String, reason: String)
    /// The output path cannot take a file (an existing folder, or a folder that does not exist);
    /// checked before any image is embedded.
    case badOutputPath(path: String, reason: String)

    public var description: String {
        switch self {
        case let .notADirectory(path): "\(path): not a directory (expected a folder of images, or of one subfolder per identity)"
        case let .unreadable(path, reason): "cannot read \(path): \(reason)"
        case let .noImages(path):
            "\(path): no images found (extensions: \(ImageList.imageExtensions.sorted().joined(separator: ", ")); in the folder or one level of subfolders, or one path per line of a list file)"
        case let .image(error): error.description
        case let .imageSize(path, expected, found):
            "\(path): image is \(found) pixels, the model takes \(expected)"
        case let .output(error): error.description
        case let .writeFailed(path, reason): "cannot write \(path): \(reason) (any previous file there is unchanged)"
        case let .badOutputPath(path, reason): "cannot write the embeddings to \(path): \(reason)"
        }
    }
}

extension Experiment {
    /// Checks that `output` can take the `.npy` file: not an existing folder, in a folder that exists.
    ///
    /// - Throws: `EmbeddingError.badOutputPath` saying which and what to give instead.
    static func checkOutputPath(_ output: String) throws(EmbeddingError) {
        if isDirectoryPath(output) {
            throw .badOutputPath(path: output, reason: "it is a folder; give a file path such as \(joinedPath(output, "embeddings.npy"))")
        }
        let parent = (output as NSString).deletingLastPathComponent
        if !parent.isEmpty, !isDirectoryPath(parent) {
            throw .badOutputPath(path: output, reason: "the folder \(parent) does not exist")
        }
    }
}

private func joinedPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

private func isDirectoryPath(_ path: String) -> Bool {
    var isFolder: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
}
