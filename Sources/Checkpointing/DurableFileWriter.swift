// Whole-file writes that never leave a half-written file behind: temporary file in the same
// folder, data flushed to disk (fsync), rename over the target, folder entry flushed (fsync).
// The one file of `Checkpointing` that calls the C library (`rename`), with Swift strings only.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes whole files atomically: a reader sees either the previous file or the complete new
/// one, never a prefix. Injectable so that tests can simulate a full disk or a read-only folder
/// (tests run as root, where `chmod` does not block writes).
public protocol CheckpointFileWriter: Sendable {
    /// Replaces the file at `path` with `data`, or throws `CheckpointError.writeFailed` naming
    /// `path` and leaves any previous file at `path` unchanged.
    func write(_ data: Data, to path: String) throws(CheckpointError)
}

/// A file (or folder) that could not be created, written, replaced or removed; any previous
/// file at `path` is unchanged.
public struct FileWriteError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file or folder.
    public var path: String
    /// Why, in the system's words where there are some ("No space left on device").
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "cannot write \(path): \(reason)" }
}

/// The real `CheckpointFileWriter`: `path.tmp-<pid>` in the same folder, written and `fsync`ed
/// (`FileHandle.synchronize()`), renamed over `path` (`rename(2)` is atomic within a file
/// system), then the folder itself `fsync`ed so that the new entry survives a power loss.
public struct DurableFileWriter: CheckpointFileWriter {
    public init() {}

    /// Writes a checkpoint file: `writeFile`, its failure as `CheckpointError.writeFailed`.
    public func write(_ data: Data, to path: String) throws(CheckpointError) {
        do { try writeFile(data, to: path) }
        catch { throw .writeFailed(path: error.path, reason: error.reason) }
    }

    /// Replaces the file at `path` with `data` durably, or throws `FileWriteError` naming `path`
    /// and leaves any previous file there unchanged.
    public func writeFile(_ data: Data, to path: String) throws(FileWriteError) {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let temporary = folder + "/." + url.lastPathComponent + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
            let handle = try FileHandle(forUpdating: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw FileWriteError(path: path, reason: Self.reason(error))
        }
        try Self.replace(path, with: temporary)
    }

    /// Renames `temporary` over `path` atomically (`rename(2)`), then flushes the folder entry.
    /// On failure `temporary` is removed and `path` is unchanged.
    package static func replace(_ path: String, with temporary: String) throws(FileWriteError) {
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw FileWriteError(path: path, reason: reason)
        }
        // Flush the folder entry; a folder that cannot be opened for this is not an error.
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if let handle = FileHandle(forReadingAtPath: folder) {
            try? handle.synchronize()
            try? handle.close()
        }
    }

    /// The POSIX reason of a Foundation error when there is one ("No space left on device").
    package static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = (nsError.userInfo[NSUnderlyingErrorKey] as? any Error).map({ $0 as NSError }),
           underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(nsError.code))) }
        return error.localizedDescription
    }
}
