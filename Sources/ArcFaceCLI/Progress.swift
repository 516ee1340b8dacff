// Progress for long work (epochs, embedding extraction): a redrawn bar with rate and ETA on a
// terminal, plain periodic lines otherwise (CI logs, files). Written to standard error, so
// standard output keeps only results.
import Foundation

/// Reports the progress of `total` units of work, fed by `update(_:)` from a callback.
///
/// On a terminal (standard error is a TTY) it redraws one line at most 10 times a second:
/// `training [██████░░░░░░] 60/100  60% | 1.9 epoch/s | elapsed 0:31 | ETA 0:21`.
/// Otherwise it prints the same text without the bar as a new line at most every
/// `lineInterval` seconds, and once at the end.
final class ProgressReporter {
    let label: String
    let total: Int
    let unit: String
    let isInteractive: Bool
    let lineInterval: Double
    private let start = ContinuousClock.now
    private var completed = 0
    private var lastDraw: ContinuousClock.Instant?
    private var barVisible = false
    private var drawnCompleted = -1
    private var finished = false

    /// - Parameters:
    ///   - total: units of work, ≥ 1.
    ///   - unit: the unit's name in the rate (`img`, `epoch`).
    ///   - isInteractive: draw a bar (default: whether standard error is a terminal).
    ///   - lineInterval: seconds between plain lines when not interactive.
    init(label: String, total: Int, unit: String, isInteractive: Bool = isatty(STDERR_FILENO) != 0,
         lineInterval: Double = 10) {
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.isInteractive = isInteractive
        self.lineInterval = lineInterval
    }

    /// Records that `completed` units are done (0 ≤ completed ≤ total) and redraws or prints if due.
    func update(_ completed: Int) {
        self.completed = min(max(completed, 0), total)
        let now = ContinuousClock.now
        let due: Bool
        if let lastDraw {
            let since = seconds(now - lastDraw)
            due = isInteractive ? since >= 0.1 : since >= lineInterval
        } else {
            due = isInteractive || seconds(now - start) >= lineInterval
        }
        if due || (isInteractive && self.completed == total) { draw(at: now) }
    }

    /// Prints `line` on standard output without breaking the bar (cleared, then redrawn below).
    func log(_ line: String) {
        if isInteractive && barVisible { clearBar() }
        say(line)
        if isInteractive && !finished { draw(at: .now) }
    }

    /// Ends the report: the bar's final state stays on its own line; a plain final line is printed.
    func finish() {
        guard !finished else { return }
        if isInteractive || drawnCompleted != completed { draw(at: .now) }
        finished = true
        if isInteractive { writeError("\n") }
        barVisible = false
    }

    /// The status text without the bar: `60/100  60% | 1.9 epoch/s | elapsed 0:31 | ETA 0:21`.
    func status(elapsed: Double) -> String {
        let fraction = Double(completed) / Double(total)
        let rate = elapsed > 0 ? Double(completed) / elapsed : 0
        let eta = rate > 0 ? Double(total - completed) / rate : .nan
        return "\(completed)/\(total) \(String(format: "%3.0f%%", 100 * fraction)) | "
            + (rate >= 10 ? String(format: "%.0f", rate) : String(format: "%.2f", rate)) + " \(unit)/s | "
            + "elapsed \(formatDuration(elapsed)) | ETA \(completed == total ? "done" : formatDuration(eta))"
    }

    private func draw(at now: ContinuousClock.Instant) {
        lastDraw = now
        drawnCompleted = completed
        let text = status(elapsed: seconds(now - start))
        if isInteractive {
            let width = 24
            let filled = Int((Double(completed) / Double(total) * Double(width)).rounded(.down))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            writeError("\r\u{1B}[2K\(label) [\(bar)] \(text)")
            barVisible = true
        } else {
            writeError("\(label): \(text)\n")
        }
    }

    private func clearBar() {
        writeError("\r\u{1B}[2K")
        barVisible = false
    }
}

/// `m:ss` or `h:mm:ss`; `--:--` when unknown.
func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "--:--" }
    let total = Int(seconds.rounded())
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60)
    return h > 0 ? String(format: "%d:%02d:%02d", h, m, s) : String(format: "%d:%02d", m, s)
}

private func seconds(_ duration: Duration) -> Double {
    let (s, attoseconds) = duration.components
    return Double(s) + Double(attoseconds) * 1e-18
}

/// Writes `text` to standard error unbuffered.
func writeError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// Prints `error` on standard error and exits with status 1.
func fail(_ error: any Error) -> Never {
    writeError("error: \(error)\n")
    Foundation.exit(1)
}
