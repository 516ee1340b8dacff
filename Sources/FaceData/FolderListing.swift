import Foundation

/// One identity folder of a folder-per-identity data set: its name and its image files.
struct IdentityFolder: Sendable, Equatable {
    /// The folder's name (the identity's name).
    var name: String
    /// The image files' paths (`directory/name/file`), in natural order.
    var files: [String]
}

/// The identity folders of `directory` and their image files, as `FaceDataset.load` reads them:
/// subfolders in natural order (names starting with `.` and plain files in the root ignored), in
/// each the entries named like an image (`ImageFormat.fileExtensions`, case-insensitively), in
/// natural order. Nothing is opened or decoded.
///
/// - Throws: `DatasetError.notADirectory`, `.unreadable`, `.noImages` (no identity folder),
///   `.tooFewIdentities` (one), `.emptyIdentity` (a folder without images), `.symbolicLinkLoop`.
func listIdentityFolders(directory: String) throws(DatasetError) -> [IdentityFolder] {
    guard try entryKind(directory) == .directory else { throw .notADirectory(path: directory) }
    var identityNames: [String] = []
    for name in try visibleEntries(of: directory) where try entryKind(joined(directory, name)) == .directory {
        identityNames.append(name)
    }
    identityNames.sort(by: naturalOrderPrecedes)
    guard !identityNames.isEmpty else { throw .noImages(path: directory) }
    guard identityNames.count >= 2 else { throw .tooFewIdentities(found: identityNames.count, path: directory) }
    var folders: [IdentityFolder] = []
    for name in identityNames {
        let folder = joined(directory, name)
        var files: [String] = []
        for file in try visibleEntries(of: folder) where ImageFormat.fileExtensions.contains(fileExtension(file)) {
            // Anything named like an image is read as one: a folder, FIFO, socket or device
            // is then a bad image ("not a regular file") under `onBadImage`, never opened.
            // `entryKind` still reports a symbolic link loop as such.
            _ = try entryKind(joined(folder, file))
            files.append(file)
        }
        files.sort(by: naturalOrderPrecedes)
        guard !files.isEmpty else { throw .emptyIdentity(path: folder) }
        folders.append(IdentityFolder(name: name, files: files.map { joined(folder, $0) }))
    }
    return folders
}
