// Commands the tool prints for the user to paste into a POSIX shell (the one that continues a
// stopped run): the running executable's absolute path and every word quoted where it must be.
import Foundation

/// A command line as a POSIX shell (sh, bash, zsh) reads it back: `words` quoted one by one
/// (`ShellCommand.quoted`) and joined by spaces.
package struct ShellCommand: Equatable, CustomStringConvertible {
    /// The executable and its arguments, unquoted.
    package var words: [String]

    package init(_ words: [String]) { self.words = words }

    package var description: String { words.map(Self.quoted).joined(separator: " ") }

    /// `word` as one shell word: unchanged when it is non-empty and made only of characters no
    /// shell treats specially (letters, digits, `_ - . / , : = + @ %`), else in single quotes
    /// with each `'` written as `'\''`. The empty string is `''`.
    package static func quoted(_ word: String) -> String {
        let plain = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./,:=+@%")
        if !word.isEmpty, word.allSatisfy(plain.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }

    /// The absolute path of the running executable, for a command that works from any folder
    /// and without the executable on `PATH` (`swift run`, `make train`): `argument0`
    /// (`CommandLine.arguments[0]`) made absolute against `currentDirectory` when it names a
    /// path (holds a `/`); else (found through `PATH`) `processExecutable` (the kernel's
    /// `/proc/self/exe`, or Foundation's `Bundle.main.executablePath`), falling back to `argument0`.
    package static func executablePath(argument0: String, currentDirectory: String,
                                       processExecutable: String?) -> String {
        if argument0.contains("/") {
            return URL(fileURLWithPath: argument0, relativeTo: URL(fileURLWithPath: currentDirectory, isDirectory: true))
                .standardizedFileURL.path
        }
        return processExecutable ?? argument0
    }

    /// The running process's `executablePath`.
    package static var currentExecutable: String {
        let kernel = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        return executablePath(argument0: CommandLine.arguments.first ?? "arcface",
                              currentDirectory: FileManager.default.currentDirectoryPath,
                              processExecutable: kernel ?? Bundle.main.executablePath)
    }

    /// `path` made absolute against `currentDirectory` (standardized: no `.` or `..`).
    package static func absolutePath(_ path: String, currentDirectory: String = FileManager.default.currentDirectoryPath) -> String {
        URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: currentDirectory, isDirectory: true)).standardizedFileURL.path
    }
}
