import Foundation

/// What `FaceDataset.load(directory:onBadImage:)` left out or found questionable.
public struct DatasetLoadReport: Sendable, Equatable {
    /// An image file left out under `BadImagePolicy.skip`, and why.
    public struct SkippedImage: Sendable, Equatable {
        public var path: String
        public var reason: String
    }

    /// An identity with fewer than two usable images: it gives no genuine pair for verification
    /// and nothing to pull together in training. With no image left it is dropped from the data set.
    public struct SparseIdentity: Sendable, Equatable {
        public var name: String
        public var imageCount: Int
    }

    /// Files left out (empty under `BadImagePolicy.error`, which stops at the first bad file).
    public var skippedImages: [SkippedImage] = []
    /// Identities left with fewer than two images, in data set order.
    public var sparseIdentities: [SparseIdentity] = []
    /// The channels and size of the kept images as decoded, before conversion to the requested
    /// channels and size (`InputSourceTally.mismatchWarnings(against:)` compares them with a model).
    public var sources = InputSourceTally()

    public init() {}

    /// The warnings to show a user, one line each.
    public var warnings: [String] {
        skippedImages.map { "skipped \($0.path): \($0.reason)" }
            + sparseIdentities.map {
                $0.imageCount == 0 ? "identity \($0.name) has no usable image and was left out"
                    : "identity \($0.name) has only \($0.imageCount) usable image (no genuine pair for verification)"
            }
    }

    /// `skipped-images.txt`: one `path<TAB>reason` line per skipped file (the reason does not
    /// repeat the path).
    public var skippedImagesText: String {
        skippedImages.map { "\($0.path)\t\($0.reason)\n" }.joined()
    }
}

extension FaceDataset {
    /// Loads a folder-per-identity data set like `load(directory:)`, with a policy for bad image
    /// files, and reports what was left out.
    ///
    /// - `onBadImage: .skip` leaves out files that cannot be read or decoded, or whose size
    ///   differs from the first image's, and lists them in `report.skippedImages`; an identity
    ///   left without images is dropped. `.error` throws at the first such file, naming it.
    /// - Either way, identities with fewer than two images are listed in `report.sparseIdentities`.
    /// - A symbolic link that loops (`a → b → a`, or a chain of more than 40 links) is always an
    ///   error naming it (`DatasetError.symbolicLinkLoop`); a folder that cannot be listed
    ///   (permission denied) is `DatasetError.unreadable` naming the folder.
    ///
    /// `imageSize` and `colorMode` are as in `load(directory:imageSize:colorMode:)`.
    public static func load(directory: String, imageSize: ImageSize? = nil, colorMode: ColorMode = .asStored,
                            onBadImage: BadImagePolicy)
        throws(DatasetError) -> (dataset: FaceDataset, report: DatasetLoadReport)
    {
        if let imageSize {
            precondition(imageSize.width >= 1 && imageSize.height >= 1, "FaceDataset.load: imageSize must be positive, got \(imageSize)")
        }
        let folders = try listIdentityFolders(directory: directory)

        var report = DatasetLoadReport()
        var kept: [String] = []
        var images: [FaceImage] = []
        var labels: [Int] = []
        var paths: [String] = []
        for folder in folders {
            let name = folder.name
            var count = 0
            for path in folder.files {
                var image: FaceImage
                do {
                    image = try loadImage(path: path)
                } catch {
                    guard onBadImage == .skip else { throw .image(error) }
                    report.skippedImages.append(.init(path: path, reason: error.reason))
                    continue
                }
                let decoded = SourceFormat(of: image)
                image = image.converted(to: colorMode)
                if let imageSize { image = image.resizedAndCropped(to: imageSize) }
                if let first = images.first, first.size != image.size {
                    guard onBadImage == .skip else {
                        throw .inconsistentImageSize(path: path, expected: first.size, found: image.size)
                    }
                    report.skippedImages.append(.init(path: path, reason: "image is \(image.size) pixels, earlier images are \(first.size)"))
                    continue
                }
                if let first = images.first, first.channels != image.channels {
                    guard onBadImage == .skip else {
                        throw .inconsistentChannelCount(path: path, expected: first.channels, found: image.channels)
                    }
                    report.skippedImages.append(.init(path: path, reason: "image has \(image.channels) channels, earlier images have \(first.channels)"))
                    continue
                }
                report.sources.record(decoded)
                images.append(image)
                labels.append(kept.count)
                paths.append(path)
                count += 1
            }
            if count < 2 { report.sparseIdentities.append(.init(name: name, imageCount: count)) }
            if count > 0 { kept.append(name) }
        }
        guard kept.count >= 2 else { throw .tooFewIdentities(found: kept.count, path: directory) }
        return (FaceDataset(identities: kept, images: images, labels: labels, paths: paths), report)
    }
}

/// What a directory entry is once symbolic links are followed.
enum EntryKind {
    case directory, file, missing
}

/// The kind of `path` after following symbolic links (relative targets resolve against the
/// link's folder).
///
/// - Throws: `DatasetError.symbolicLinkLoop` when the chain revisits a link or is longer than 40
///   links (the kernel's `ELOOP` limit), naming `path`.
func entryKind(_ path: String) throws(DatasetError) -> EntryKind {
    let fileManager = FileManager.default
    var current = path
    var visited: Set<String> = []
    for _ in 0...40 {
        guard let attributes = try? fileManager.attributesOfItem(atPath: current),
              let type = attributes[.type] as? FileAttributeType else { return .missing }
        guard type == .typeSymbolicLink else { return type == .typeDirectory ? .directory : .file }
        guard visited.insert(current).inserted,
              let destination = try? fileManager.destinationOfSymbolicLink(atPath: current) else {
            throw visited.contains(current) ? .symbolicLinkLoop(path: path) : .unreadable(path: current, reason: "cannot read the symbolic link")
        }
        current = destination.hasPrefix("/") ? destination
            : joined((current as NSString).deletingLastPathComponent, destination)
    }
    throw .symbolicLinkLoop(path: path)
}

/// The POSIX reason inside a Foundation error ("Permission denied"), else its description.
func posixReason(_ error: any Error) -> String {
    let nsError = error as NSError
    if let underlying = (nsError.userInfo[NSUnderlyingErrorKey] as? any Error).map({ $0 as NSError }),
           underlying.domain == NSPOSIXErrorDomain {
        let text = underlying.localizedDescription
        let prefix = "The operation could not be completed. "
        return text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }
    return "\(error)"
}
