#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `text` to standard error (file descriptor 2) unbuffered, before a job ends.
package func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let result = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + written, $0.count - written) }
        guard result > 0 else { return }
        written += result
    }
}

/// Writes `rank <r>: <message>` to standard error and exits with `exitCode`.
package func endProcess(_ message: String, rank: Int, exitCode: Int32) -> Never {
    writeToStandardError("rank \(rank): \(message)\n")
    exit(exitCode)
}
