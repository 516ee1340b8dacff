import Foundation
import FaceEvaluation

/// One verification evaluation of a run: after which epoch, and its metrics.
public struct EvaluationRecord: Sendable, Equatable {
    /// The 1-based epoch after which the model was evaluated.
    public var epoch: Int
    public var report: VerificationReport

    public init(epoch: Int, report: VerificationReport) {
        self.epoch = epoch
        self.report = report
    }
}

/// The `report.html` of a training run: one self-contained page (inline SVG and CSS, no script,
/// no network) that reads in any browser and parses as XML (XHTML well-formedness).
///
/// It shows a table of the final metrics and five charts:
/// 1. training loss per epoch;
/// 2. learning rate per epoch (the last step's);
/// 3. training accuracy per epoch and held-out balanced verification accuracy per evaluation;
/// 4. the ROC over all held-out pairs, TAR against FAR on a log axis, with the TAR@FAR = 10⁻²
///    and 10⁻³ points marked;
/// 5. genuine and impostor cosine-similarity histograms (each as a fraction of its pairs) with
///    the chosen threshold.
///
/// Every plotted series carries its values in `data-…` attributes (`data-values` on the loss,
/// learning-rate and accuracy lines, `data-far`/`data-tar` on the ROC markers, `data-count` on
/// histogram bars, `data-threshold` on the threshold line), so a test or a script can check the
/// picture against `metrics.json`.
public struct TrainingReport: Sendable {
    /// The page title (e.g. the run name).
    public var title: String
    public var configuration: TrainingConfiguration
    /// One summary per epoch, `[E]`.
    public var history: [EpochSummary]
    /// The evaluations in epoch order; the last one is the final evaluation.
    public var evaluations: [EvaluationRecord]
    /// The final evaluation with its ROC, histograms and threshold.
    public var finalEvaluation: VerificationEvaluation
    /// Throughput and timing, when known.
    public var metrics: RunMetrics?

    public init(title: String, configuration: TrainingConfiguration, history: [EpochSummary],
                evaluations: [EvaluationRecord], finalEvaluation: VerificationEvaluation, metrics: RunMetrics? = nil) {
        self.title = title
        self.configuration = configuration
        self.history = history
        self.evaluations = evaluations
        self.finalEvaluation = finalEvaluation
        self.metrics = metrics
    }

    /// Writes the page atomically to `path`.
    public func write(to path: String) throws(CheckpointError) {
        try Experiment.writeAtomically(Data(html.utf8), to: path)
    }

    /// The whole page, UTF-8 XHTML.
    public var html: String {
        let r = finalEvaluation.report
        var rows: [(String, String)] = [
            ("balanced verification accuracy (\(configuration.folds)-fold)",
             String(format: "%.4f ± %.4f", r.balancedAccuracy, r.balancedAccuracyStdErr)),
            ("AUC", String(format: "%.4f", r.auc)),
            ("EER", String(format: "%.4f", r.eer)),
            ("TAR@FAR=1e-2", String(format: "%.4f", r.tarAtFar1e2)),
            ("TAR@FAR=1e-3", String(format: "%.4f", r.tarAtFar1e3)),
            ("rank-1 identification", String(format: "%.4f", r.rank1)),
            ("chosen threshold (cosine similarity)", String(format: "%.4f", finalEvaluation.threshold)),
            ("held-out pairs", "\(r.genuinePairCount) genuine, \(r.impostorPairCount) impostor"),
            ("epochs", "\(history.count)"),
        ]
        if let last = history.last { rows.append(("final training loss", String(format: "%.4f", last.loss))) }
        if let best = history.filter({ $0.validationAUC != nil }).max(by: { ($0.validationAUC ?? 0) < ($1.validationAUC ?? 0) }) {
            rows.append(("best validation AUC (best.safetensors)", String(format: "%.4f at epoch %d", best.validationAUC ?? 0, best.epoch)))
        }
        if let metrics {
            rows.append(("training throughput", String(format: "%.0f images/s", metrics.trainImagesPerSecond)
                         + (metrics.session.map { String(format: " (all %d sessions; this session %.0f images/s)", $0.number, $0.imagesPerSecond) } ?? "")))
            rows.append(("training time", String(format: "%.1f s", metrics.trainingSeconds)
                         + (metrics.session.map { String(format: " (all %d sessions; this session %.1f s)", $0.number, $0.trainingSeconds) } ?? "")))
        }
        let table = rows.map { "<tr><th>\(escaped($0.0))</th><td>\(escaped($0.1))</td></tr>" }.joined(separator: "\n")
        let configurationText = String(decoding: configuration.jsonData(), as: UTF8.self)
        return """
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8"/>
        <title>\(escaped(title)) — swift-arcface report</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1280px; }
        h1 { font-size: 22px; margin-bottom: 4px; }
        p.note { color: #555; margin-top: 0; }
        table { border-collapse: collapse; margin: 12px 0 20px; }
        th, td { text-align: left; padding: 3px 14px 3px 0; border-bottom: 1px solid #e4e4e4; font-weight: normal; }
        td { font-variant-numeric: tabular-nums; font-weight: 600; }
        .charts { display: flex; flex-wrap: wrap; gap: 16px; }
        figure { margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: 6px; background: #fff; }
        figcaption { font-size: 13px; color: #444; width: 578px; padding: 4px 6px; }
        svg text { font-family: system-ui, sans-serif; }
        pre { background: #f6f6f6; padding: 10px; font-size: 12px; overflow-x: auto; }
        </style>
        </head>
        <body>
        <h1>\(escaped(title))</h1>
        <p class="note">Held-out identities never seen in training; all pairs of their images are scored by cosine similarity.</p>
        <table>
        \(table)
        </table>
        <div class="charts">
        \(lossFigure())
        \(learningRateFigure())
        \(accuracyFigure())
        \(rocFigure())
        \(histogramFigure())
        </div>
        <h2>Configuration</h2>
        <pre>\(escaped(configurationText))</pre>
        </body>
        </html>

        """
    }

    // MARK: - Charts

    private func lossFigure() -> String {
        let losses = history.map(\.loss)
        var chart = Chart(name: "loss", xRange: epochRange, yRange: 0...niceCeiling(losses.filter(\.isFinite).max() ?? 1),
                          xLabel: "epoch", yLabel: "training loss")
        chart.line(series: "loss", xs: history.map { Double($0.epoch) }, ys: losses, color: "#1f77b4")
        return figure(chart.svg, caption: "Training loss: the mean margin-softmax cross-entropy of each epoch's steps.")
    }

    private func learningRateFigure() -> String {
        let rates = history.map(\.learningRate)
        var chart = Chart(name: "learning-rate", xRange: epochRange, yRange: 0...niceCeiling(rates.max() ?? 1),
                          xLabel: "epoch", yLabel: "learning rate")
        chart.line(series: "learning-rate", xs: history.map { Double($0.epoch) }, ys: rates, color: "#ff7f0e")
        return figure(chart.svg, caption: "Learning rate at the last step of each epoch (linear warm-up, then cosine decay).")
    }

    private func accuracyFigure() -> String {
        var chart = Chart(name: "accuracy", xRange: epochRange, yRange: 0...1, xLabel: "epoch", yLabel: "accuracy")
        chart.line(series: "training-accuracy", xs: history.map { Double($0.epoch) }, ys: history.map(\.accuracy),
                   color: "#9467bd", dashed: true)
        chart.markers(series: "verification-accuracy", points: evaluations.map { record in
            (x: Double(record.epoch), y: record.report.balancedAccuracy,
             attributes: "data-epoch=\"\(record.epoch)\" data-value=\"\(record.report.balancedAccuracy)\"",
             label: String(format: "%.3f", record.report.balancedAccuracy))
        }, color: "#d62728")
        var legend = [("training accuracy (own classes)", "#9467bd", true), ("held-out balanced verification accuracy", "#d62728", false)]
        let validated = history.filter { $0.validationAUC != nil }
        if !validated.isEmpty {
            chart.line(series: "validation-auc", xs: validated.map { Double($0.epoch) }, ys: validated.map { $0.validationAUC ?? 0 },
                       color: "#2ca02c")
            legend.append(("validation AUC (training identities held out of the fit; picks best.safetensors)", "#2ca02c", false))
        }
        chart.legend(legend)
        return figure(chart.svg, caption: "Dashed: fraction of training images whose largest logit is their own identity. "
                      + "Dots: k-fold balanced verification accuracy on the held-out identities."
                      + (validated.isEmpty ? "" : " Green: ROC AUC on all pairs of the validation identities' images at each epoch end."))
    }

    private func rocFigure() -> String {
        let roc = finalEvaluation.roc, r = finalEvaluation.report
        let smallest = roc.falseAcceptRates.filter { $0 > 0 }.min() ?? 1e-3
        let lowestDecade = min(-3, (log10(smallest)).rounded(.down))
        var chart = Chart(name: "roc", xRange: lowestDecade...0, yRange: 0...1, xLabel: "false accept rate (FAR, log scale)",
                          yLabel: "true accept rate (TAR)", logX: true)
        chart.line(series: "roc", xs: roc.falseAcceptRates.map { log10(max($0, pow(10, lowestDecade))) },
                   ys: roc.trueAcceptRates, color: "#1f77b4", deduplicate: true, markPoints: false)
        chart.markers(series: "tar-at-far", points: [(1e-2, r.tarAtFar1e2), (1e-3, r.tarAtFar1e3)].map { far, tar in
            (x: log10(far), y: tar, attributes: "data-far=\"\(far)\" data-tar=\"\(tar)\"",
             label: String(format: "TAR@FAR=%@: %.3f", far == 1e-2 ? "1e-2" : "1e-3", tar))
        }, color: "#d62728")
        chart.legend([(String(format: "ROC, AUC %.4f, EER %.4f", r.auc, r.eer), "#1f77b4", false)])
        return figure(chart.svg, caption: "Each point is one threshold: the fraction of impostor pairs accepted (FAR) "
                      + "against the fraction of genuine pairs accepted (TAR). FAR = 0 is drawn at the left edge.")
    }

    private func histogramFigure() -> String {
        let h = finalEvaluation.histogram
        let genuineTotal = max(1, h.genuineCounts.reduce(0, +)), impostorTotal = max(1, h.impostorCounts.reduce(0, +))
        let fractions = h.genuineCounts.map { Double($0) / Double(genuineTotal) }
            + h.impostorCounts.map { Double($0) / Double(impostorTotal) }
        var chart = Chart(name: "histogram", xRange: Double(h.lowerBound)...Double(h.upperBound),
                          yRange: 0...niceCeiling(fractions.max() ?? 1), xLabel: "cosine similarity", yLabel: "fraction of pairs")
        for (name, counts, total, color) in [("impostor", h.impostorCounts, impostorTotal, "#d62728"),
                                              ("genuine", h.genuineCounts, genuineTotal, "#2ca02c")] {
            chart.bars(series: name, counts: counts, total: total, lowerEdge: h.lowerEdge(ofBin:),
                       width: Double(h.upperBound - h.lowerBound) / Double(h.binCount), color: color)
        }
        chart.verticalLine(at: Double(finalEvaluation.threshold),
                           attributes: "data-threshold=\"\(finalEvaluation.threshold)\"",
                           label: String(format: "threshold %.3f", finalEvaluation.threshold))
        chart.legend([("genuine pairs (same identity)", "#2ca02c", false), ("impostor pairs", "#d62728", false)])
        return figure(chart.svg, caption: "Cosine similarity of every held-out pair, each class normalized to sum to 1; "
                      + "the dashed line is the threshold chosen by the k-fold accuracy (accept above it).")
    }

    private var epochRange: ClosedRange<Double> {
        let last = Double(max(history.last?.epoch ?? 1, evaluations.last?.epoch ?? 1))
        return last > 1 ? 1...last : 0.5...1.5
    }

    private func figure(_ svg: String, caption: String) -> String {
        "<figure>\n\(svg)\n<figcaption>\(escaped(caption))</figcaption>\n</figure>"
    }
}

// MARK: - SVG drawing

/// One chart: a plot area with axes, ticks and grid, in a fixed-size SVG.
private struct Chart {
    static let width = 590.0, height = 330.0
    static let left = 64.0, right = 18.0, top = 28.0, bottom = 50.0
    let name: String
    let xRange: ClosedRange<Double>
    let yRange: ClosedRange<Double>
    let xLabel: String
    let yLabel: String
    var logX = false
    private var body: [String] = []
    private var legendEntries: [(String, String, Bool)] = []

    init(name: String, xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, xLabel: String, yLabel: String,
         logX: Bool = false) {
        self.name = name
        self.xRange = xRange.lowerBound < xRange.upperBound ? xRange : (xRange.lowerBound - 0.5)...(xRange.upperBound + 0.5)
        self.yRange = yRange.lowerBound < yRange.upperBound ? yRange : yRange.lowerBound...(yRange.lowerBound + 1)
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logX = logX
    }

    var plotWidth: Double { Chart.width - Chart.left - Chart.right }
    var plotHeight: Double { Chart.height - Chart.top - Chart.bottom }

    func px(_ x: Double) -> Double {
        Chart.left + (x - xRange.lowerBound) / (xRange.upperBound - xRange.lowerBound) * plotWidth
    }

    func py(_ y: Double) -> Double {
        let clamped = min(max(y, yRange.lowerBound), yRange.upperBound)
        return Chart.top + (1 - (clamped - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound)) * plotHeight
    }

    /// A polyline through the finite points; `deduplicate` drops points that land on the same
    /// 0.5-pixel position as the previous kept one (keeps a long ROC small without changing it).
    mutating func line(series: String, xs: [Double], ys: [Double], color: String, dashed: Bool = false,
                       deduplicate: Bool = false, markPoints: Bool = true) {
        var points: [String] = []
        var last: (Double, Double)?
        for (x, y) in zip(xs, ys) where x.isFinite && y.isFinite {
            let p = ((px(x) * 2).rounded() / 2, (py(y) * 2).rounded() / 2)
            if deduplicate, let last, last == p { continue }
            last = p
            points.append("\(coordinate(p.0)),\(coordinate(p.1))")
        }
        let values = ys.map { "\($0)" }.joined(separator: " ")
        body.append("<polyline data-series=\"\(series)\" data-points=\"\(points.count)\" data-values=\"\(deduplicate ? "" : values)\" "
                    + "points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\""
                    + (dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>")
        if markPoints && points.count <= 40 {
            for point in points {
                let xy = point.split(separator: ",")
                body.append("<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"2.5\" fill=\"\(color)\"/>")
            }
        }
    }

    /// Labelled marker dots; each carries `attributes` (data values).
    mutating func markers(series: String, points: [(x: Double, y: Double, attributes: String, label: String)], color: String) {
        for (index, point) in points.enumerated() {
            let x = px(point.x), y = py(point.y)
            body.append("<circle data-series=\"\(series)\" \(point.attributes) cx=\"\(coordinate(x))\" cy=\"\(coordinate(y))\" "
                        + "r=\"5\" fill=\"\(color)\" stroke=\"#fff\" stroke-width=\"1.5\"/>")
            // Below-right of the point (ROC curves and accuracies lie above-left of it), one row
            // further down per marker so neighbouring labels never overlap.
            let anchor = x > Chart.left + plotWidth * 0.7 ? "end" : "start"
            let dx = anchor == "end" ? -8.0 : 8.0
            let dy = y < Chart.top + plotHeight - 40 ? 18.0 + 16 * Double(index) : -10.0 - 16 * Double(index)
            body.append("<text x=\"\(coordinate(x + dx))\" y=\"\(coordinate(y + dy))\" font-size=\"12\" fill=\"\(color)\" "
                        + "text-anchor=\"\(anchor)\">\(escaped(point.label))</text>")
        }
    }

    /// Histogram bars of `counts / total` over bins starting at `lowerEdge(b)`; empty bins are skipped.
    mutating func bars(series: String, counts: [Int], total: Int, lowerEdge: (Int) -> Double, width: Double, color: String) {
        for (bin, count) in counts.enumerated() where count > 0 {
            let x0 = px(lowerEdge(bin)), x1 = px(lowerEdge(bin) + width)
            let y = py(Double(count) / Double(total)), base = py(yRange.lowerBound)
            body.append("<rect data-series=\"\(series)\" data-bin=\"\(bin)\" data-count=\"\(count)\" x=\"\(coordinate(x0))\" "
                        + "y=\"\(coordinate(y))\" width=\"\(coordinate(max(x1 - x0 - 0.5, 0.5)))\" "
                        + "height=\"\(coordinate(max(base - y, 0)))\" fill=\"\(color)\" fill-opacity=\"0.45\" stroke=\"\(color)\" stroke-width=\"0.6\"/>")
        }
    }

    /// A dashed vertical line at `x` (skipped when `x` is not finite or outside the range).
    mutating func verticalLine(at x: Double, attributes: String, label: String) {
        guard x.isFinite, xRange.contains(x) else {
            body.append("<g \(attributes) data-drawn=\"false\"/>")
            return
        }
        body.append("<line \(attributes) x1=\"\(coordinate(px(x)))\" y1=\"\(coordinate(Chart.top))\" x2=\"\(coordinate(px(x)))\" "
                    + "y2=\"\(coordinate(Chart.top + plotHeight))\" stroke=\"#333\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>")
        body.append("<text x=\"\(coordinate(px(x) + 5))\" y=\"\(coordinate(Chart.top + 14))\" font-size=\"12\" fill=\"#333\">\(escaped(label))</text>")
    }

    mutating func legend(_ entries: [(String, String, Bool)]) {
        legendEntries = entries
    }

    var svg: String {
        var parts = ["<svg xmlns=\"http://www.w3.org/2000/svg\" data-chart=\"\(name)\" width=\"\(Int(Chart.width))\" "
                     + "height=\"\(Int(Chart.height))\" viewBox=\"0 0 \(Int(Chart.width)) \(Int(Chart.height))\" role=\"img\">",
                     "<rect x=\"0\" y=\"0\" width=\"\(Int(Chart.width))\" height=\"\(Int(Chart.height))\" fill=\"#fff\"/>"]
        let x0 = Chart.left, x1 = Chart.left + plotWidth, y0 = Chart.top, y1 = Chart.top + plotHeight
        for tick in yTicks() {
            let y = py(tick)
            parts.append("<line x1=\"\(coordinate(x0))\" y1=\"\(coordinate(y))\" x2=\"\(coordinate(x1))\" y2=\"\(coordinate(y))\" stroke=\"#e6e6e6\"/>")
            parts.append("<text x=\"\(coordinate(x0 - 6))\" y=\"\(coordinate(y + 4))\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">\(tickLabel(tick, step: yStep))</text>")
        }
        for tick in xTicks() {
            let x = px(tick)
            parts.append("<line x1=\"\(coordinate(x))\" y1=\"\(coordinate(y0))\" x2=\"\(coordinate(x))\" y2=\"\(coordinate(y1))\" stroke=\"#e6e6e6\"/>")
            let label = logX ? decadeLabel(tick) : tickLabel(tick, step: xStep)
            parts.append("<text x=\"\(coordinate(x))\" y=\"\(coordinate(y1 + 16))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">\(label)</text>")
        }
        parts.append("<rect x=\"\(coordinate(x0))\" y=\"\(coordinate(y0))\" width=\"\(coordinate(plotWidth))\" height=\"\(coordinate(plotHeight))\" fill=\"none\" stroke=\"#999\"/>")
        parts.append(contentsOf: body)
        parts.append("<text x=\"\(coordinate(x0 + plotWidth / 2))\" y=\"\(coordinate(Chart.height - 10))\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222\">\(escaped(xLabel))</text>")
        parts.append("<text transform=\"translate(16 \(coordinate(y0 + plotHeight / 2))) rotate(-90)\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222\">\(escaped(yLabel))</text>")
        for (index, (text, color, dashed)) in legendEntries.enumerated() {
            let y = Chart.top - 10
            let x = x0 + 4 + Double(index) * plotWidth / Double(max(legendEntries.count, 1))
            parts.append("<line x1=\"\(coordinate(x))\" y1=\"\(coordinate(y - 4))\" x2=\"\(coordinate(x + 18))\" y2=\"\(coordinate(y - 4))\" stroke=\"\(color)\" stroke-width=\"3\""
                         + (dashed ? " stroke-dasharray=\"5 3\"" : "") + "/>")
            parts.append("<text x=\"\(coordinate(x + 22))\" y=\"\(coordinate(y))\" font-size=\"11\" fill=\"#333\">\(escaped(text))</text>")
        }
        parts.append("</svg>")
        return parts.joined(separator: "\n")
    }

    /// Epoch axes tick whole epochs only.
    private var xStep: Double {
        let step = niceStep(xRange.upperBound - xRange.lowerBound)
        return xLabel == "epoch" ? max(1, step) : step
    }
    private var yStep: Double { niceStep(yRange.upperBound - yRange.lowerBound) }

    private func xTicks() -> [Double] {
        if logX { return stride(from: xRange.lowerBound.rounded(.up), through: xRange.upperBound, by: 1).map { $0 } }
        return ticks(in: xRange, step: xStep)
    }

    private func yTicks() -> [Double] { ticks(in: yRange, step: yStep) }
}

/// A "nice" tick spacing (1, 2 or 5 × 10ᵏ) giving about five ticks over `span`.
private func niceStep(_ span: Double) -> Double {
    guard span > 0, span.isFinite else { return 1 }
    let raw = span / 5
    let magnitude = pow(10, log10(raw).rounded(.down))
    let fraction = raw / magnitude
    return (fraction < 1.5 ? 1 : fraction < 3.5 ? 2 : fraction < 7.5 ? 5 : 10) * magnitude
}

private func ticks(in range: ClosedRange<Double>, step: Double) -> [Double] {
    var result: [Double] = []
    var k = (range.lowerBound / step).rounded(.up)
    while k * step <= range.upperBound + step * 1e-9 {
        result.append(k * step)
        k += 1
    }
    return result
}

/// The smallest "nice" number ≥ `value` (1, 2, 2.5, 5 × 10ᵏ), 1 for non-positive input.
private func niceCeiling(_ value: Double) -> Double {
    guard value > 0, value.isFinite else { return 1 }
    let magnitude = pow(10, log10(value).rounded(.down))
    for factor in [1.0, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10] where factor * magnitude >= value * 1.02 {
        return factor * magnitude
    }
    return 10 * magnitude
}

private func tickLabel(_ value: Double, step: Double) -> String {
    let digits = max(0, Int((-log10(step)).rounded(.up)))
    return String(format: "%.\(min(digits, 6))f", abs(value) < step * 1e-9 ? 0 : value)
}

/// `10⁻³`-style label of a decade exponent.
private func decadeLabel(_ exponent: Double) -> String {
    let e = Int(exponent.rounded())
    if e == 0 { return "1" }
    let superscripts: [Character: Character] = ["-": "⁻", "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴",
                                                "5": "⁵", "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹"]
    return "10" + String(String(e).map { superscripts[$0] ?? $0 })
}

/// A pixel coordinate with one decimal.
private func coordinate(_ value: Double) -> String { String(format: "%.1f", value) }

/// `text` with the five XML special characters escaped.
private func escaped(_ text: String) -> String {
    var result = ""
    result.reserveCapacity(text.count)
    for character in text {
        switch character {
        case "&": result += "&amp;"
        case "<": result += "&lt;"
        case ">": result += "&gt;"
        case "\"": result += "&quot;"
        case "'": result += "&#39;"
        default: result.append(character)
        }
    }
    return result
}
