// `arcface align`: five-point alignment of raw photos to ArcFace crops (112 × 112 or 112·k).
import ArgumentParser
import ArcFace
import Foundation

struct Align: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Crop raw photos to the ArcFace five-point template (similarity transform, bilinear warp).",
        discussion: """
            The landmark file has one line per image: path x1 y1 … x5 y5 (left eye, right eye, nose tip, \
            left and right mouth corner; left = smaller x; tab- or space-separated), or insightface .lst lines \
            (aligned, path, label, bounding box, x1…x5, y1…y5; tab-separated). Paths are relative to --images; \
            the output folder mirrors them.
            """)

    @Option(help: ArgumentHelp("The landmark file (plain or insightface .lst).", valueName: "file"))
    var landmarks: String
    @Option(help: ArgumentHelp("The folder the image paths of the landmark file are relative to.", valueName: "dir"))
    var images: String
    @Option(help: ArgumentHelp("The folder for the crops; it mirrors the images' relative paths (existing crops are replaced).", valueName: "dir"))
    var output: String
    @Option(parsing: .unconditional, help: "Crop side in pixels: 112·k (the template scaled by k) or 128·k (insightface's rule: scaled by k, shifted right by 8·k), at most 4096.")
    var size = 112
    @Option(help: "Output format: jpeg or png (default: by the input's extension; PGM and other inputs become .png).")
    var format: AlignedImageFormat?
    @Option(parsing: .unconditional, help: "JPEG quality, 1…100.")
    var quality = 95
    @Option(help: "Layout of the landmark file: plain or lst (default: from its first line; 3, 7 or 17 tab-separated fields are lst).")
    var landmarkFormat: LandmarkFileFormat?
    @Option(help: "A listed image that is missing or corrupt: error (stop, naming it) or skip (listed in <output>/skipped-images.txt).")
    var onBadImage: BadImagePolicy = .error

    func validate() throws {
        var problems: [String] = []
        if !ArcFaceTemplate.isSupported(size: size) {
            problems.append("--size must be a positive multiple of 112 or 128 (the template has no agreed position in other crops), at most \(ArcFaceTemplate.largestSize): \(size)")
        }
        if !(1...100).contains(quality) { problems.append("--quality must be in 1…100: \(quality)") }
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
    }

    func run() throws {
        do {
            let file = try LandmarkFile.read(path: landmarks, format: landmarkFormat)
            let options = FaceAlignmentOptions(size: size, format: format, jpegQuality: quality, onBadImage: onBadImage)
            let progress = ProgressReporter(label: "aligning", total: file.entries.count, unit: "img")
            let report = try alignFaces(landmarks: file, imageDirectory: images, outputDirectory: output,
                                        options: options) { done, _ in progress.update(done) }
            progress.finish()
            for skipped in report.skippedImages { say("skipped \(skipped.path): \(skipped.reason)") }
            let skippedNote = onBadImage == .skip ? ", skipped \(report.skippedImages.count) (listed in \(output)/skipped-images.txt)" : ""
            say("wrote \(report.writtenFiles.count) \(size)×\(size) crops to \(output)\(skippedNote)")
        } catch let error as LandmarkFileError {
            fail(error)
        } catch let error as FaceAlignmentError {
            fail(error)
        }
    }
}

extension AlignedImageFormat: ExpressibleByArgument {}
extension LandmarkFileFormat: ExpressibleByArgument {}
