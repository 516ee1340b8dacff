/// Why a data set could not be loaded, split or batched. Each case names the path (or the
/// counts) involved, and the `description` adds a hint.
public enum DatasetError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The path does not exist or is not a directory.
    case notADirectory(path: String)
    /// A directory could not be listed.
    case unreadable(path: String, reason: String)
    /// An identity folder holds no image file (`.pgm`, `.jpg`, `.jpeg`, `.png`).
    case emptyIdentity(path: String)
    /// Fewer than two identity folders (a classifier needs at least two classes).
    case tooFewIdentities(found: Int, path: String)
    /// The root holds no identity folder at all (e.g. images directly in the root).
    case noImages(path: String)
    /// An image file could not be read or decoded.
    case image(ImageDecodingError)
    /// An image's size differs from the first image's.
    case inconsistentImageSize(path: String, expected: ImageSize, found: ImageSize)
    /// An image's channel count differs from the first image's (grey and colour files mixed).
    case inconsistentChannelCount(path: String, expected: Int, found: Int)
    /// A `DataLoader` batch size exceeds the number of samples.
    case batchLargerThanDataset(batchSize: Int, sampleCount: Int)
    /// An identity split would leave fewer than two identities on one side.
    case invalidSplit(heldOutIdentityCount: Int, identityCount: Int)
    /// A symbolic link whose chain loops (or exceeds 40 links).
    case symbolicLinkLoop(path: String)

    public var description: String {
        switch self {
        case .notADirectory(let path):
            return "\(path): not a directory (expected a folder with one subfolder of images per identity)"
        case .unreadable(let path, let reason):
            return "\(path): cannot list directory: \(reason)"
        case .emptyIdentity(let path):
            return "\(path): identity folder holds no image (.pgm, .jpg, .jpeg, .png); remove it or add images"
        case .tooFewIdentities(let found, let path):
            return "\(path): found \(found) identity folder\(found == 1 ? "" : "s"); at least 2 are needed"
        case .noImages(let path):
            return "\(path): no identity folders found; expected the layout <root>/<identity>/<image>.{pgm,jpg,png}"
        case .image(let error):
            return error.description
        case .inconsistentImageSize(let path, let expected, let found):
            return "\(path): image is \(found) pixels but earlier images are \(expected); all images must have one size (or load with an imageSize to resize them)"
        case .inconsistentChannelCount(let path, let expected, let found):
            return "\(path): image has \(found) channel\(found == 1 ? "" : "s") but earlier images have \(expected); load with colorMode .grayscale or .rgb to convert"
        case .batchLargerThanDataset(let batchSize, let sampleCount):
            return "batch size \(batchSize) exceeds the \(sampleCount) samples of the data set; use a batch size ≤ \(sampleCount)"
        case .symbolicLinkLoop(let path):
            return "\(path): symbolic link loop (the chain of links never reaches a file or folder); remove or fix the link"
        case .invalidSplit(let heldOut, let identityCount):
            return "cannot hold out \(heldOut) of \(identityCount) identities: each side needs at least 2"
                + (identityCount >= 4 ? " (use 2...\(identityCount - 2))" : " (need at least 4 identities)")
        }
    }
}
