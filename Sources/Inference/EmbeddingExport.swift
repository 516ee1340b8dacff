import Foundation
import TensorCore
import Layers
import FaceData
import FaceEvaluation
import Checkpointing

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
func decodeImageForEmbedding(path: String) throws(ImageDecodingError) -> FaceImage {
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
///   - input: what to do with an image whose channels or size differ from the model's input:
///     convert it (`.convert`, the default; `sources` tallies them for a warning) or stop
///     (`.refuse`).
///   - sources: counts every image as decoded, before conversion
///     (`InputSourceTally.mismatchWarnings(against:)`).
///   - progress: called after each batch with (images done, total).
/// - Returns: `[N, D]`.
/// - Throws: `EmbeddingError.image` (a file fails to decode, by name) or, with `.refuse`,
///   `.inputMismatch` naming the first image that differs.
public func embedImages(_ list: ImageList, backbone: any EmbeddingBackbone, flipSum: Bool, normalize: Bool = false,
                        batchSize: Int = 50, input: InputMismatchPolicy = .convert,
                        sources: inout InputSourceTally, progress: (Int, Int) -> Void = { _, _ in })
    throws(EmbeddingError) -> Tensor {
    precondition(batchSize >= 1, "embedImages: batchSize must be ≥ 1: \(batchSize)")
    let configuration = backbone.configuration
    let preprocessing = InputPreprocessing(channels: configuration.inputChannels, height: configuration.inputHeight,
                                           width: configuration.inputWidth)
    var tally = sources
    defer { sources = tally }
    let embedded = try embeddings(count: list.paths.count, backbone: backbone, flipSum: flipSum, batchSize: batchSize,
                                  progress: progress) { range throws(EmbeddingError) in
        var images: [FaceImage] = []
        for path in list.paths[range] {
            let image: FaceImage
            do throws(ImageDecodingError) { image = try decodeImageForEmbedding(path: path) } catch { throw .image(error) }
            tally.record(image)
            if input == .refuse, let reason = InputSourceTally.mismatch(of: image, against: preprocessing) {
                throw .inputMismatch(path: path, reason: reason)
            }
            // As in training: converted to the input's channels, resized and centre-cropped.
            images.append(image.prepared(for: preprocessing))
        }
        return images
    }
    return normalize ? l2NormalizedRows(embedded).normalized : embedded
}

/// `embedImages(_:backbone:flipSum:normalize:batchSize:input:sources:progress:)` converting any
/// image that differs from the model's input, without a tally.
public func embedImages(_ list: ImageList, backbone: any EmbeddingBackbone, flipSum: Bool, normalize: Bool = false,
                        batchSize: Int = 50, progress: (Int, Int) -> Void = { _, _ in }) throws(EmbeddingError) -> Tensor {
    var sources = InputSourceTally()
    return try embedImages(list, backbone: backbone, flipSum: flipSum, normalize: normalize, batchSize: batchSize,
                           sources: &sources, progress: progress)
}

/// Embeds `list` with `backbone` and writes the `[N, D]` float32 matrix to
/// `EmbeddingOutputPaths(output:).array` (NumPy `.npy` 1.0) and the rows' paths and labels to
/// its `.index` (`<stem>.tsv`).
///
/// Both paths are checked before any image is embedded (`EmbeddingOutputPaths.check`); both
/// files are written to temporaries in their folder, flushed, and only then renamed into
/// place, so a failure while writing leaves no half-written output and any previous files
/// unchanged.
///
/// - Parameters:
///   - protectedPaths: files the outputs must not replace besides the images (the checkpoint).
///   - availableSpace: the free bytes of the output folder's file system (injectable for tests);
///     checked before any image is embedded against `N × D × 4` bytes of `.npy` data, its
///     128-byte header and the index, since the temporaries are written beside any previous outputs.
/// - Returns: the embeddings, `[N, D]`.
/// - Throws: `EmbeddingError` (`.badOutputPath` or `.insufficientSpace` before any work, a bad
///   image, or `.writeFailed` for the files).
@discardableResult
public func exportEmbeddings(_ list: ImageList, backbone: any EmbeddingBackbone, output: String, flipSum: Bool, normalize: Bool = false,
                             protectedPaths: [String] = [], input: InputMismatchPolicy = .convert,
                             sources: inout InputSourceTally, progress: (Int, Int) -> Void = { _, _ in },
                             availableSpace: AvailableSpaceProvider = DiskSpace.available) throws(EmbeddingError) -> Tensor {
    let paths = try EmbeddingOutputPaths(output: output)
    try paths.check(inputs: list.paths, protectedPaths: protectedPaths)
    let folder = URL(fileURLWithPath: paths.array).deletingLastPathComponent().path
    let arrayBytes = Int64(list.paths.count) * Int64(backbone.configuration.embeddingDimension) * 4 + 128
    do {
        try InsufficientSpaceError.check(folder: folder, what: "the \(list.paths.count) × \(backbone.configuration.embeddingDimension) embeddings and their index",
                                         needed: arrayBytes + Int64(list.tabSeparatedValues.utf8.count), available: availableSpace)
    } catch { throw .insufficientSpace(error) }
    let embeddings = try embedImages(list, backbone: backbone, flipSum: flipSum, normalize: normalize, input: input,
                                     sources: &sources, progress: progress)
    try writeDurably([(NumPyFile.encode(embeddings), paths.array), (Data(list.tabSeparatedValues.utf8), paths.index)])
    return embeddings
}

/// `exportEmbeddings(_:backbone:output:flipSum:normalize:protectedPaths:input:sources:progress:availableSpace:)`
/// converting any image that differs from the model's input, without a tally.
@discardableResult
public func exportEmbeddings(_ list: ImageList, backbone: any EmbeddingBackbone, output: String, flipSum: Bool, normalize: Bool = false,
                             protectedPaths: [String] = [], progress: (Int, Int) -> Void = { _, _ in },
                             availableSpace: AvailableSpaceProvider = DiskSpace.available) throws(EmbeddingError) -> Tensor {
    var sources = InputSourceTally()
    return try exportEmbeddings(list, backbone: backbone, output: output, flipSum: flipSum, normalize: normalize,
                                protectedPaths: protectedPaths, sources: &sources, progress: progress,
                                availableSpace: availableSpace)
}

/// Writes each `(data, path)` to a flushed temporary beside `path`, then renames all of them
/// into place: a failure before the renames leaves every previous file unchanged and no
/// temporary behind.
func writeDurably(_ files: [(Data, String)]) throws(EmbeddingError) {
    var temporaries: [String] = []
    func discard() { for path in temporaries { try? FileManager.default.removeItem(atPath: path) } }
    for (data, path) in files {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().path + "/." + url.lastPathComponent
            + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
            temporaries.append(temporary)
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            discard()
            throw .writeFailed(path: path, reason: DurableFileWriter.reason(error))
        }
    }
    for ((_, path), temporary) in zip(files, temporaries) {
        do { try DurableFileWriter.replace(path, with: temporary) } catch {
            discard()
            throw .writeFailed(path: path, reason: error.reason)
        }
    }
}

/// The two files `arcface embed` writes, and the rule that picks them from `--output`:
///
/// - `--output` must end in `.npy` (any case), or have no extension (`.npy` is appended):
///   `e` and `e.npy` both give `e.npy`; `e.tsv`, `model.safetensors`, `1.pgm` are refused;
/// - the index goes beside it as `<stem>.tsv` (`e.npy` → `e.tsv`).
public struct EmbeddingOutputPaths: Sendable, Equatable {
    /// The `.npy` file of the `[N, D]` float32 embeddings.
    public var array: String
    /// The `.tsv` index (`index`, `path`, `label`), beside `array`.
    public var index: String

    /// The paths for `--output`.
    ///
    /// - Throws: `EmbeddingError.badOutputPath` when `output` is an existing folder or has an
    ///   extension other than `.npy`.
    public init(output: String) throws(EmbeddingError) {
        if isDirectoryPath(output) {
            throw .badOutputPath(path: output, reason: "it is a folder; give a file path such as \(joinedPath(output, "embeddings.npy"))")
        }
        let name = (output as NSString).lastPathComponent
        let stem: String
        if output.lowercased().hasSuffix(".npy"), name.count > 4 {
            stem = String(output.dropLast(4))
            array = output
        } else if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            throw .badOutputPath(path: output, reason: "the embeddings file must end in .npy (or have no extension: .npy is added), not .\(name[name.index(after: dot)...])")
        } else {
            stem = output
            array = output + ".npy"
        }
        index = stem + ".tsv"
    }

    /// Checks, before any work, that writing `array` and `index` destroys nothing but a previous
    /// output of ours: each must be in an existing folder and must not be a folder, one of
    /// `inputs` or `protectedPaths` (compared after resolving symbolic links, and by file
    /// identity), or an existing file that is not a previous output (`array`: a file starting with
    /// the `.npy` magic; `index`: a regular file starting with the header `index\tpath\tlabel`).
    ///
    /// - Throws: `EmbeddingError.badOutputPath` naming the path and the reason.
    public func check(inputs: [String], protectedPaths: [String] = []) throws(EmbeddingError) {
        for (path, kind) in [(array, OutputKind.array), (index, .index)] {
            if isDirectoryPath(path) {
                throw .badOutputPath(path: path, reason: kind == .array
                    ? "it is a folder; give a file path such as \(joinedPath(path, "embeddings.npy"))"
                    : "it is a folder, and the index of \(array) goes there; choose another --output")
            }
            let parent = (path as NSString).deletingLastPathComponent
            if !parent.isEmpty, !isDirectoryPath(parent) {
                throw .badOutputPath(path: path, reason: "the folder \(parent) does not exist")
            }
            guard let identity = fileIdentity(path) else { continue }  // nothing there yet
            if let protected = protectedPaths.first(where: { fileIdentity($0) == identity }) {
                throw .badOutputPath(path: path, reason: "it is \(protected), which must not be overwritten")
            }
            if let input = inputs.first(where: { fileIdentity($0) == identity }) {
                throw .badOutputPath(path: path, reason: "it is the input image \(input)")
            }
            let attributes = try? FileManager.default.attributesOfItem(atPath: URL(fileURLWithPath: path).resolvingSymlinksInPath().path)
            guard attributes?[.type] as? FileAttributeType == .typeRegular else {
                throw .badOutputPath(path: path, reason: "it exists and is not a regular file")
            }
            let expected: [UInt8] = kind == .array ? NumPyFile.magic : Array("index\tpath\tlabel\n".utf8)
            let head = FileHandle(forReadingAtPath: path).flatMap { handle in
                defer { try? handle.close() }
                return try? handle.read(upToCount: expected.count)
            }
            guard let head, Array(head) == expected else {
                throw .badOutputPath(path: path, reason: "an existing file that is not a previous \(kind == .array ? ".npy output" : ".tsv index") of arcface embed; remove it or choose another --output")
            }
        }
    }

    private enum OutputKind { case array, index }
}

/// The (device, inode) of the file at `path` after resolving symbolic links, or nil when nothing
/// is there.
private func fileIdentity(_ path: String) -> [Int]? {
    let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
          let device = (attributes[.systemNumber] as? NSNumber)?.intValue,
          let inode = (attributes[.systemFileNumber] as? NSNumber)?.intValue else { return nil }
    return [device, inode]
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
    /// With `InputMismatchPolicy.refuse`: an image whose channels or size differ from the
    /// model's input (`reason` says how).
    case inputMismatch(path: String, reason: String)
    /// The `.npy` file could not be written.
    case output(NumPyFileError)
    /// Another output file could not be written.
    case writeFailed(path: String, reason: String)
    /// An output path that must not be written (see `EmbeddingOutputPaths`): a folder, a folder
    /// that does not exist, an extension other than `.npy`, the checkpoint, an input image, or an
    /// existing file that is not a previous output; checked before any image is embedded.
    case badOutputPath(path: String, reason: String)
    /// The output folder's file system has less free space than the outputs need (checked
    /// before any image is embedded).
    case insufficientSpace(InsufficientSpaceError)

    public var description: String {
        switch self {
        case let .insufficientSpace(error): error.description
        case let .notADirectory(path): "\(path): not a directory (expected a folder of images, or of one subfolder per identity)"
        case let .unreadable(path, reason): "cannot read \(path): \(reason)"
        case let .noImages(path):
            "\(path): no images found (extensions: \(ImageList.imageExtensions.sorted().joined(separator: ", ")); in the folder or one level of subfolders, or one path per line of a list file)"
        case let .image(error): error.description
        case let .inputMismatch(path, reason):
            "\(path): \(reason) (refused by --strict-input; without it the image is converted, with a warning)"
        case let .imageSize(path, expected, found):
            "\(path): image is \(found) pixels, the model takes \(expected)"
        case let .output(error): error.description
        case let .writeFailed(path, reason): "cannot write \(path): \(reason) (any previous file there is unchanged)"
        case let .badOutputPath(path, reason): "cannot write the embeddings to \(path): \(reason)"
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
