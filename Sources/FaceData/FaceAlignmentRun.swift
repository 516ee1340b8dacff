// `arcface align` as a library call: every image of a landmark file cropped to the ArcFace
// template and written, atomically, under an output folder that mirrors the image folder.
import Foundation

/// The file format of aligned crops.
public enum AlignedImageFormat: String, Sendable, Equatable, CaseIterable {
    /// Baseline JPEG (`encodeJPEG`), extension `.jpg` when the format is forced.
    case jpeg
    /// 8-bit PNG (`encodePNG`), extension `.png`.
    case png
}

/// How `alignFaces` crops and writes.
public struct FaceAlignmentOptions: Sendable, Equatable {
    /// The crop's side, pixels: `112·k` or `128·k` (`ArcFaceTemplate.isSupported(size:)`).
    public var size: Int
    /// The output format; nil: by the input's extension (`.jpg`/`.jpeg` → JPEG, `.png` → PNG,
    /// keeping the name), and PNG with the extension replaced by `.png` for other inputs (PGM).
    /// A forced format replaces every extension (`.jpg` for JPEG, `.png` for PNG).
    public var format: AlignedImageFormat?
    /// The libjpeg quality of JPEG outputs, 1...100.
    public var jpegQuality: Int
    /// A listed image that is missing, unreadable or corrupt: stop (`.error`, the training
    /// loader's default) or leave it out and list it (`.skip`).
    public var onBadImage: BadImagePolicy

    /// - Precondition: `ArcFaceTemplate.isSupported(size: size)` and `jpegQuality` in 1...100.
    public init(size: Int = 112, format: AlignedImageFormat? = nil, jpegQuality: Int = 95,
                onBadImage: BadImagePolicy = .error) {
        precondition(ArcFaceTemplate.isSupported(size: size), "FaceAlignmentOptions: no template position for size \(size) (use 112·k or 128·k)")
        precondition((1...100).contains(jpegQuality), "FaceAlignmentOptions: jpegQuality must be in 1...100, got \(jpegQuality)")
        self.size = size
        self.format = format
        self.jpegQuality = jpegQuality
        self.onBadImage = onBadImage
    }
}

/// What `alignFaces` wrote and left out.
public struct FaceAlignmentReport: Sendable, Equatable {
    /// The crops written, in landmark-file order, `[N]` (paths under the output folder).
    public var writtenFiles: [String] = []
    /// Images left out under `BadImagePolicy.skip`, and why (empty under `.error`).
    public var skippedImages: [DatasetLoadReport.SkippedImage] = []

    public init() {}

    /// `skipped-images.txt`: one `path<TAB>reason` line per skipped image.
    public var skippedImagesText: String {
        skippedImages.map { "\($0.path)\t\($0.reason)\n" }.joined()
    }
}

/// Why `alignFaces` stopped. Every case names the file and, where there is one, the line of the
/// landmark file.
public enum FaceAlignmentError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A listed image is missing, unreadable or corrupt (under `BadImagePolicy.error`).
    case image(ImageDecodingError, landmarkFile: String, line: Int)
    /// An absolute image path outside the image folder (the output could not mirror it).
    case outsideImageFolder(imagePath: String, landmarkFile: String, line: Int)
    /// Two entries would write the same output file (e.g. `a.jpg` and `a.png` with a forced
    /// format).
    case outputCollision(output: String, landmarkFile: String, line: Int, firstLine: Int)
    /// An output file would replace a listed input image (the output folder is the image folder).
    case outputReplacesInput(output: String, landmarkFile: String, line: Int)
    /// The landmarks give no usable transform (scale 0).
    case noTransform(imagePath: String, landmarkFile: String, line: Int)
    /// A folder or file could not be created or written; any earlier file at `path` is unchanged.
    case writeFailed(path: String, reason: String)
    /// The encoder failed (out of memory).
    case encoding(ImageEncodingError, path: String)

    public var description: String {
        switch self {
        case .image(let error, let file, let line):
            return "\(error) (listed at \(file):\(line))"
        case .outsideImageFolder(let imagePath, let file, let line):
            return "\(file):\(line): \(imagePath) is an absolute path outside the image folder; the output folder mirrors paths relative to it"
        case .outputCollision(let output, let file, let line, let firstLine):
            return "\(file):\(line): the crop would be written to \(output), as the crop of line \(firstLine)"
        case .outputReplacesInput(let output, let file, let line):
            return "\(file):\(line): the crop would replace the input image \(output); choose an output folder other than the image folder"
        case .noTransform(let imagePath, let file, let line):
            return "\(file):\(line): the landmarks of \(imagePath) give no similarity transform onto the template"
        case .writeFailed(let path, let reason):
            return "cannot write \(path): \(reason)"
        case .encoding(let error, let path):
            return "\(path): \(error)"
        }
    }
}

/// Crops every image of `landmarks` to the ArcFace template (`FaceImage.aligned(landmarks:size:)`)
/// and writes the crops under `outputDirectory`, mirroring each image's path relative to
/// `imageDirectory`, with the input's channels (grey stays grey, RGB stays RGB).
///
/// All output paths are worked out and checked before any image is read (collisions, inputs that
/// would be replaced, absolute paths outside `imageDirectory`); under `BadImagePolicy.error` every
/// listed image must also exist before the first crop is written. Each crop is written whole
/// through a temporary file renamed over the target (`Data.write(options: .atomic)`), so a reader
/// or an interrupted run never sees a half-written crop; an existing crop of the same name is
/// replaced. Under `.skip` the images left out are also listed in
/// `<outputDirectory>/skipped-images.txt` (written even when empty, so it is never stale).
///
/// - Parameters:
///   - landmarks: the images (relative to `imageDirectory`, or absolute inside it) and landmarks.
///   - imageDirectory: the folder the image paths are relative to.
///   - outputDirectory: the folder for the crops (created as needed).
///   - options: crop size, output format, JPEG quality, bad-image policy.
///   - progress: called after each image with (images done, total).
/// - Returns: the files written and the images skipped.
/// - Throws: `FaceAlignmentError` naming the file and the landmark file's line.
public func alignFaces(landmarks: LandmarkFile, imageDirectory: String, outputDirectory: String,
                       options: FaceAlignmentOptions = FaceAlignmentOptions(),
                       progress: (Int, Int) -> Void = { _, _ in })
    throws(FaceAlignmentError) -> FaceAlignmentReport
{
    let file = landmarks.path
    let imageRoot = absolutePath(imageDirectory)
    // Plan: input and output path of every entry, checked before any work.
    var plan: [(entry: LandmarkEntry, input: String, output: String, format: AlignedImageFormat)] = []
    var outputs: [String: Int] = [:]
    for entry in landmarks.entries {
        let relative: String
        if entry.path.hasPrefix("/") {
            let absolute = absolutePath(entry.path)
            guard absolute.hasPrefix(imageRoot + "/") else {
                throw .outsideImageFolder(imagePath: entry.path, landmarkFile: file, line: entry.line)
            }
            relative = String(absolute.dropFirst(imageRoot.count + 1))
        } else {
            relative = entry.path
        }
        let input = absolutePath(imageRoot + "/" + relative)
        let (name, format) = outputName(relative, format: options.format)
        let output = absolutePath(outputDirectory + "/" + name)
        if let first = outputs[output] {
            throw .outputCollision(output: output, landmarkFile: file, line: entry.line, firstLine: first)
        }
        outputs[output] = entry.line
        plan.append((entry, input, output, format))
    }
    let inputs = Set(plan.map(\.input))
    for step in plan where inputs.contains(step.output) {
        throw .outputReplacesInput(output: step.output, landmarkFile: file, line: step.entry.line)
    }
    if options.onBadImage == .error {
        for step in plan where !FileManager.default.fileExists(atPath: step.input) {
            throw .image(.unreadableFile(path: step.input, reason: "no such file"), landmarkFile: file, line: step.entry.line)
        }
    }

    var report = FaceAlignmentReport()
    for (done, step) in plan.enumerated() {
        let image: FaceImage
        do { image = try loadImage(path: step.input) } catch {
            guard options.onBadImage == .skip else { throw .image(error, landmarkFile: file, line: step.entry.line) }
            report.skippedImages.append(DatasetLoadReport.SkippedImage(path: step.input, reason: error.reason))
            progress(done + 1, plan.count)
            continue
        }
        guard let (crop, _) = image.aligned(landmarks: step.entry.landmarks, size: options.size) else {
            throw .noTransform(imagePath: step.entry.path, landmarkFile: file, line: step.entry.line)
        }
        let bytes: [UInt8]
        do {
            switch step.format {
            case .jpeg: bytes = try encodeJPEG(crop, quality: options.jpegQuality)
            case .png: bytes = try encodePNG(crop)
            }
        } catch { throw .encoding(error, path: step.output) }
        try writeAtomically(bytes, to: step.output)
        report.writtenFiles.append(step.output)
        progress(done + 1, plan.count)
    }
    if options.onBadImage == .skip {
        try writeAtomically(Array(report.skippedImagesText.utf8), to: outputDirectory + "/skipped-images.txt")
    }
    return report
}

/// `path` made absolute (against the current directory) with `.`, `..` and repeated `/` resolved
/// (symbolic links are not). `URL.standardized` alone drops a leading `..` of a relative path.
private func absolutePath(_ path: String) -> String {
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    var components: [Substring] = []
    for component in absolute.split(separator: "/") {
        switch component {
        case ".": continue
        case "..": _ = components.popLast()
        default: components.append(component)
        }
    }
    return "/" + components.joined(separator: "/")
}

/// The output name of `relative` and its format: see `FaceAlignmentOptions.format`.
private func outputName(_ relative: String, format: AlignedImageFormat?) -> (String, AlignedImageFormat) {
    let pathExtension = fileExtension(relative)
    let stem = pathExtension.isEmpty ? relative : String(relative.dropLast(pathExtension.count + 1))
    switch (format, pathExtension) {
    case (nil, "jpg"), (nil, "jpeg"): return (relative, .jpeg)
    case (nil, "png"): return (relative, .png)
    case (nil, _), (.png, _): return (stem + ".png", .png)
    case (.jpeg, _): return (stem + ".jpg", .jpeg)
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it, creating the parent folder.
private func writeAtomically(_ bytes: [UInt8], to path: String) throws(FaceAlignmentError) {
    let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
    do { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
    catch { throw .writeFailed(path: parent, reason: posixReason(error)) }
    do { try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) }
    catch { throw .writeFailed(path: path, reason: posixReason(error)) }
}

