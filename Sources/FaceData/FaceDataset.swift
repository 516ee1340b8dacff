#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TensorCore

/// A labelled set of face images, all of one size and channel count, decoded once and kept in memory.
///
/// Sample `i` is `images[i]`, of identity `identities[labels[i]]`, read from `paths[i]`.
/// Labels are `0..<K` with `K = identities.count`; samples are grouped by identity, in the
/// identities' order. The AT&T set is 400 images of 92×112 (≈ 16 MB as `Float`).
public struct FaceDataset: Sendable {
    /// The identity (class) names, `[K]`; a sample's label indexes this array.
    public var identities: [String]
    /// The images, `[count]`, all of size `imageSize` with `channelCount` channels, pixels in [0, 1].
    public var images: [FaceImage]
    /// The label of each image, `[count]`, each in `0..<K`.
    public var labels: [Int]
    /// The file each image was read from, `[count]` (a description for synthetic images).
    public var paths: [String]

    /// A data set over already decoded images (e.g. synthetic data for tests and benchmarks).
    ///
    /// - Precondition: `images` is not empty; `images`, `labels` and `paths` have one count; all
    ///   images have one size and channel count; every label is in `0..<identities.count`.
    public init(identities: [String], images: [FaceImage], labels: [Int], paths: [String]) {
        precondition(!images.isEmpty, "FaceDataset: no images")
        precondition(images.count == labels.count && images.count == paths.count,
                     "FaceDataset: \(images.count) images, \(labels.count) labels, \(paths.count) paths")
        let size = images[0].size
        for (index, image) in images.enumerated() {
            precondition(image.size == size, "FaceDataset: image \(index) is \(image.size), image 0 is \(size)")
            precondition(image.channels == images[0].channels,
                         "FaceDataset: image \(index) has \(image.channels) channels, image 0 has \(images[0].channels)")
        }
        for (index, label) in labels.enumerated() {
            precondition(label >= 0 && label < identities.count,
                         "FaceDataset: label \(label) of sample \(index) outside 0..<\(identities.count)")
        }
        self.identities = identities
        self.images = images
        self.labels = labels
        self.paths = paths
    }

    /// The number of samples.
    public var count: Int { images.count }

    /// The number of identities `K`.
    public var identityCount: Int { identities.count }

    /// The size shared by every image.
    public var imageSize: ImageSize { images[0].size }

    /// The channel count `C` shared by every image (1 grey, 3 RGB): the network input is
    /// `[N, C, H, W]`, so the backbone's `inputChannels` must equal it.
    public var channelCount: Int { images[0].channels }

    /// Loads a folder-per-identity data set: each subfolder of `directory` is one identity, holding
    /// that identity's images as `.pgm`, `.jpg`, `.jpeg` or `.png` files (extensions matched
    /// case-insensitively; each file is decoded by its content, see `loadImage(path:)`), e.g.
    /// LFW's `Name/Name_0001.jpg` or AT&T's `s1/1.pgm`.
    ///
    /// Identities and, within each, files are sorted in natural order (`s1, s2, …, s10`;
    /// `1.pgm, 2.pgm, …, 10.pgm`); an identity's label is its index in that order. Entries whose
    /// names start with `.` are ignored, as are files (not folders) in the root and entries
    /// inside identity folders without an image extension. An entry named like an image must be a
    /// regular file (after following links): a folder, FIFO, socket or device named `x.pgm` is a
    /// bad image (`ImageDecodingError.unreadableFile`, "not a regular file (…)"), never opened.
    /// Symbolic links are followed; a loop is an error
    /// (`.symbolicLinkLoop`). `load(directory:imageSize:colorMode:onBadImage:)` can skip bad
    /// files instead.
    ///
    /// - Parameters:
    ///   - directory: the root folder.
    ///   - imageSize: when given, every image is scaled (bilinear, aspect ratio kept) to cover this
    ///     size and centre-cropped to it (`FaceImage.resizedAndCropped(to:)`), so images of any
    ///     size load; when nil, all images must already have one size.
    ///   - colorMode: `.asStored` keeps each file's channels (all files must then agree),
    ///     `.grayscale` or `.rgb` converts (`FaceImage.converted(to:)`).
    /// - Throws: `DatasetError`: `.notADirectory` (missing or a file), `.unreadable` (cannot list),
    ///   `.noImages` (no identity folder), `.tooFewIdentities` (one identity folder),
    ///   `.emptyIdentity` (a folder without images), `.image` (a file fails to decode),
    ///   `.inconsistentImageSize` (without `imageSize`: a size differs from the first image's),
    ///   `.inconsistentChannelCount` (`.asStored`: grey and colour files mixed), `.symbolicLinkLoop`.
    public static func load(directory: String, imageSize: ImageSize? = nil,
                            colorMode: ColorMode = .asStored) throws(DatasetError) -> FaceDataset {
        try load(directory: directory, imageSize: imageSize, colorMode: colorMode, onBadImage: .error).dataset
    }

    /// Splits the identities into two disjoint sets: `heldOutIdentityCount` identities, drawn
    /// uniformly by a seeded shuffle, go to `heldOut`, the rest to `train`.
    ///
    /// Each part keeps its identities in this data set's order, with labels re-indexed to
    /// `0..<k` in that part (`identities` keeps the names, so `heldOut.identities[l]` names label
    /// `l`). The same `seed` gives the same split.
    ///
    /// - Throws: `DatasetError.invalidSplit` unless `2 ≤ heldOutIdentityCount ≤ K − 2`.
    public func splitByIdentity(heldOutIdentityCount: Int, seed: UInt64)
        throws(DatasetError) -> (train: FaceDataset, heldOut: FaceDataset)
    {
        let (train, heldOut) = try identitySplit(identityCount: identityCount, heldOutIdentityCount: heldOutIdentityCount, seed: seed)
        return (subset(identityIndices: train), subset(identityIndices: heldOut))
    }

    /// The samples of the given identities, in this data set's order, with labels re-indexed
    /// to `0..<identityIndices.count` (the `n`-th smallest index becomes label `n`).
    ///
    /// - Precondition: the indices are distinct, in `0..<K`, and select at least one image.
    public func subset(identityIndices: some Sequence<Int>) -> FaceDataset {
        let selected = identityIndices.sorted()
        for (position, index) in selected.enumerated() {
            precondition(index >= 0 && index < identityCount,
                         "subset: identity index \(index) outside 0..<\(identityCount)")
            precondition(position == 0 || selected[position - 1] != index,
                         "subset: identity index \(index) given twice")
        }
        var newLabel = [Int](repeating: -1, count: identityCount)
        for (position, index) in selected.enumerated() { newLabel[index] = position }
        var images: [FaceImage] = []
        var labels: [Int] = []
        var paths: [String] = []
        for sample in 0..<count where newLabel[self.labels[sample]] >= 0 {
            images.append(self.images[sample])
            labels.append(newLabel[self.labels[sample]])
            paths.append(self.paths[sample])
        }
        precondition(!images.isEmpty, "subset: identities \(selected) have no images")
        return FaceDataset(identities: selected.map { identities[$0] }, images: images, labels: labels,
                           paths: paths)
    }

    /// The first `identityCount` identities (labels unchanged), for small test slices.
    ///
    /// - Precondition: `1 ≤ identityCount ≤ K`.
    public func prefix(identityCount: Int) -> FaceDataset {
        precondition(identityCount >= 1 && identityCount <= self.identityCount,
                     "prefix: identityCount \(identityCount) outside 1...\(self.identityCount)")
        return subset(identityIndices: 0..<identityCount)
    }

    /// The sample indices of each identity, `[K]` arrays in sample order.
    public var sampleIndicesByIdentity: [[Int]] {
        var groups = [[Int]](repeating: [], count: identityCount)
        for (sample, label) in labels.enumerated() { groups[label].append(sample) }
        return groups
    }
}

/// The identity indices of each side of `splitByIdentity` (shared by every set type, so that a
/// folder and its RecordIO pack split alike): a seeded shuffle of `0..<identityCount`, its first
/// `heldOutIdentityCount` held out; each side sorted.
///
/// - Throws: `DatasetError.invalidSplit` unless `2 ≤ heldOutIdentityCount ≤ identityCount − 2`.
func identitySplit(identityCount: Int, heldOutIdentityCount: Int, seed: UInt64) throws(DatasetError)
    -> (train: [Int], heldOut: [Int]) {
    guard heldOutIdentityCount >= 2, identityCount - heldOutIdentityCount >= 2 else {
        throw .invalidSplit(heldOutIdentityCount: heldOutIdentityCount, identityCount: identityCount)
    }
    var order = Array(0..<identityCount)
    var generator = SeededGenerator(seed: seed)
    generator.shuffle(&order)
    return (order.dropFirst(heldOutIdentityCount).sorted(), order.prefix(heldOutIdentityCount).sorted())
}

// MARK: - File system helpers

/// `directory/name`, without doubling a trailing slash.
func joined(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// Whether `path` exists and is a directory (following symbolic links).
func isDirectory(_ path: String) -> Bool {
    var isDirectory = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory
}

/// The names in `directory` that do not start with `.`.
func visibleEntries(of directory: String) throws(DatasetError) -> [String] {
    do {
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasPrefix(".") }
    } catch {
        throw .unreadable(path: directory, reason: posixReason(error))
    }
}
