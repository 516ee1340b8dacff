// A scratch folder for tests that write files.
import Foundation

/// A temporary folder removed when the value is released.
public final class TemporaryDirectory {
    public let path: String
    public init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("arcface-test-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
