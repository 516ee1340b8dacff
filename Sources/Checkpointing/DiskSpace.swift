// Free space on the file system of a folder, for checks before long work ("the checkpoints will
// not fit") instead of a failed write an epoch later.
import Foundation

/// Bytes available to this process on the file system holding a path, or nil when unknown.
/// Injectable, so that tests can simulate a nearly full disk.
public typealias AvailableSpaceProvider = @Sendable (_ path: String) -> Int64?

public enum DiskSpace {
    /// The bytes available to an unprivileged writer on the file system holding `path` (the
    /// nearest existing ancestor when `path` does not exist yet): `statvfs`'s `f_bavail × f_frsize`
    /// through `FileManager.attributesOfFileSystem` (`.systemFreeSize`). Nil when unknown.
    public static let available: AvailableSpaceProvider = { path in
        var url = URL(fileURLWithPath: path).standardized
        while !FileManager.default.fileExists(atPath: url.path), url.path != "/" { url.deleteLastPathComponent() }
        let attributes = try? FileManager.default.attributesOfFileSystem(forPath: url.path)
        return (attributes?[.systemFreeSize] as? NSNumber)?.int64Value
    }

    /// `bytes` for messages: `1 234 567 bytes (1.2 MiB)`.
    public static func describe(_ bytes: Int64) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes), unit = "bytes"
        for next in units where value >= 1024 { value /= 1024; unit = next }
        return unit == "bytes" ? "\(bytes) bytes" : "\(bytes) bytes (" + String(format: "%.1f ", value) + unit + ")"
    }
}

/// Not enough free space for what a command is about to write; nothing was written.
public struct InsufficientSpaceError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The folder that would receive the files.
    public var folder: String
    /// What needs the space, e.g. "4 step checkpoints, best.safetensors and the final model".
    public var what: String
    /// Bytes needed, and bytes available on its file system.
    public var needed: Int64
    public var available: Int64

    public init(folder: String, what: String, needed: Int64, available: Int64) {
        self.folder = folder
        self.what = what
        self.needed = needed
        self.available = available
    }

    /// Throws when `available(folder)` is known and below `needed`.
    public static func check(folder: String, what: String, needed: Int64,
                             available provider: AvailableSpaceProvider) throws(InsufficientSpaceError) {
        guard let available = provider(folder), available < needed else { return }
        throw InsufficientSpaceError(folder: folder, what: what, needed: needed, available: available)
    }

    public var description: String {
        "not enough free space in \(folder): \(what) need about \(DiskSpace.describe(needed)), "
            + "the file system has \(DiskSpace.describe(available)) available; free some space or choose another folder"
    }
}
