import ArgumentParser
import ArcFace
import Foundation

/// `arcface pack`: a folder-per-identity data set → an InsightFace RecordIO pack.
struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pack a folder-per-identity dataset into InsightFace RecordIO (train.rec + train.idx) for `train --data train.rec`.")

    @Option(help: "Dataset folder: one subfolder of PGM, JPEG or PNG images per identity.")
    var data: String
    @Option(help: "The .rec file to write; its .idx is written beside it.")
    var output: String
    @Option(parsing: .unconditional, help: "JPEG quality 1…100 of the stored images (ignored with --lossless).")
    var quality: Int = 95
    @Flag(help: "Store PNG instead of JPEG: lossless, so training from the pack gives the folder's pixels bit for bit.")
    var lossless = false
    @Option(help: "An image that cannot be read: error (default) or skip (left out and listed).")
    var onBadImage: BadImagePolicy = .error

    func validate() throws {
        guard (1...100).contains(quality) else { throw ValidationError("--quality must be in 1…100: \(quality)") }
        guard output.hasSuffix(".rec"), !(output as NSString).lastPathComponent.hasPrefix(".rec") else {
            throw ValidationError("--output must name a .rec file (its .idx goes beside it): \(output)")
        }
    }

    func run() throws {
        let start = ContinuousClock.now
        let summary: PackSummary
        do {
            summary = try packFaceFolder(directory: data, recordPath: output,
                                         encoding: lossless ? .png : .jpeg(quality: quality), onBadImage: onBadImage)
        } catch { throw failure(error) }
        summary.report.warnings.forEach { say("warning: " + $0) }
        let (s, atto) = (ContinuousClock.now - start).components
        say(String(format: "packed %d images of %d identities (%@) into %@ (%.1f MB) and %@ in %.1f s",
                   summary.imageCount, summary.identities.count, lossless ? "PNG" : "JPEG quality \(quality)",
                   summary.recordPath, Double(summary.byteCount) / 1e6, summary.indexPath, Double(s) + Double(atto) * 1e-18))
    }
}

