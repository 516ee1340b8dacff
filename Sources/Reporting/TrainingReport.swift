// report.html: one self-contained page of a run's metrics and charts (drawn in ReportChart.swift).
import Foundation
import FaceEvaluation
import RunConfiguration
import Checkpointing

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

    /// Writes the page atomically to `path` (`DurableFileWriter`).
    ///
    /// - Throws: `FileWriteError` naming `path`; any previous file there is unchanged.
    public func write(to path: String) throws(FileWriteError) {
        try DurableFileWriter().writeFile(Data(html.utf8), to: path)
    }

    /// The whole page, UTF-8 XHTML.
    public var html: String {
        let r = finalEvaluation.report
        var rows: [(String, String)] = [
            ("balanced verification accuracy (\(configuration.folds)-fold)",
             String(format: "%.4f ± %.4f", r.balancedAccuracy, r.balancedAccuracyStdErr)),
            ("AUC", String(format: "%.4f", r.auc)),
            ("EER", String(format: "%.4f", r.eer)),
            ("TAR@FAR=1e-2", String(format: "%.4f", r.tarAtFar1e2) + (r.falseAcceptRateNote(target: 1e-2).map { " (\($0))" } ?? "")),
            ("TAR@FAR=1e-3", String(format: "%.4f", r.tarAtFar1e3) + (r.falseAcceptRateNote(target: 1e-3).map { " (\($0))" } ?? "")),
            ("rank-1 identification", String(format: "%.4f", r.rank1)),
            ("chosen threshold (cosine similarity)", String(format: "%.4f", finalEvaluation.threshold)),
            ("held-out pairs", "\(r.genuinePairCount) genuine, \(r.impostorPairCount) impostor"),
            ("epochs", "\(history.count)"),
        ]
        if let last = history.last { rows.append(("final training loss", String(format: "%.4f", last.loss))) }
        if configuration.bestBy.isEmpty, let best = history.filter({ $0.validationAUC != nil }).max(by: { ($0.validationAUC ?? 0) < ($1.validationAUC ?? 0) }) {
            rows.append(("best validation AUC (best.safetensors)", String(format: "%.4f at epoch %d", best.validationAUC ?? 0, best.epoch)))
        }
        if let metrics {
            rows.append(("training throughput", String(format: "%.0f images/s", metrics.trainImagesPerSecond)
                         + (metrics.session.map { String(format: " (all %d sessions; this session %.0f images/s)", $0.number, $0.imagesPerSecond) } ?? "")))
            rows.append(("training time", String(format: "%.1f s", metrics.trainingSeconds)
                         + (metrics.session.map { String(format: " (all %d sessions; this session %.1f s)", $0.number, $0.trainingSeconds) } ?? "")))
        }
        rows += verificationRows()
        if let takeOff = metrics?.takeOff {
            rows.insert(("converged (take-off watchdog)", takeOff.converged ? "yes" : "NO"), at: 0)
        }
        let table = rows.map { "<tr><th>\(escaped($0.0))</th><td>\(escaped($0.1))</td></tr>" }.joined(separator: "\n")
        let noProgress = takeOffWarning()
        let flipTable = metrics?.flipComparison.map { flipComparisonTable($0) } ?? ""
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
        \(noProgress)
        <table>
        \(table)
        </table>
        \(flipTable)
        <div class="charts">
        \(lossFigure())
        \(learningRateFigure())
        \(accuracyFigure())
        \(verificationFigure())
        \(rocFigure())
        \(histogramFigure())
        </div>
        <h2>Configuration</h2>
        <pre>\(escaped(configurationText))</pre>
        </body>
        </html>

        """
    }

    /// The held-out metrics with and without flip-summing, side by side (which one the table
    /// above shows is `flipEmbeddings`).
    private func flipComparisonTable(_ comparison: FlipComparison) -> String {
        let body = comparison.rows.map {
            "<tr><th>\(escaped($0.metric))</th><td>\(escaped($0.withFlip))</td><td>\(escaped($0.withoutFlip))</td></tr>"
        }.joined(separator: "\n")
        return """
        <h2>With and without flip-summing</h2>
        <p class="note">The same model; with flip: each embedding is the sum of the image's and its mirror image's \
        (arcface_torch's test-time augmentation); without: the image alone. The table above uses \
        \(configuration.flipEmbeddings ? "flip-summing" : "no flip-summing") (flipEmbeddings).</p>
        <table>
        <tr><th></th><th>with flip</th><th>without flip</th></tr>
        \(body)
        </table>
        """
    }

    // MARK: - Charts

    /// The take-off watchdog's warning (`RunMetrics.takeOff`), or "" when the run converged.
    private func takeOffWarning() -> String {
        guard let evidence = metrics?.takeOff?.evidence else { return "" }
        let flagged = history.filter { $0.noProgress != nil }.map { String($0.epoch) }
        let numbers = String(format: "epoch %d: training accuracy %.3f (chance %.3f, threshold %.3f), loss %.4f (no-learning level %.4f)",
                             evidence.epoch, evidence.trainingAccuracy, evidence.chanceLevel, evidence.accuracyThreshold,
                             evidence.loss, evidence.noLearningLoss)
        return """
        <div class="warning" style="border: 2px solid #c0392b; background: #fdecea; padding: 8px 12px; margin: 12px 0;">
        <strong>This run did not take off.</strong> \(escaped(evidence.signs.joined(separator: "; "))).<br/>
        \(escaped(numbers))\(flagged.isEmpty ? "" : escaped("; flagged epochs: " + flagged.joined(separator: ", ")))<br/>
        Try \(escaped(evidence.hint)).
        </div>
        """
    }

    private func lossFigure() -> String {
        let losses = history.map(\.loss)
        var chart = Chart(name: "loss", xRange: epochRange, yRange: 0...niceCeiling(losses.filter(\.isFinite).max() ?? 1),
                          xLabel: "epoch", yLabel: "training loss")
        chart.line(series: "loss", xs: history.map { Double($0.epoch) }, ys: losses, color: "#1f77b4")
        let loss = switch configuration.loss {
        case .softmax: "softmax cross-entropy of a linear layer with bias"
        case .normface: "cross-entropy of the scaled cosine logits (no margin)"
        case .arcface, .cosface, .combined: "margin-softmax cross-entropy"
        }
        return figure(chart.svg, caption: "Training loss: the mean \(loss) of each epoch's steps.")
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
        let unmeasurable = [(1e-2, "1e-2"), (1e-3, "1e-3")].filter { r.falseAcceptRateNote(target: $0.0) != nil }.map(\.1)
        let note = unmeasurable.isEmpty ? "" : " With \(r.impostorPairCount) impostor pairs the smallest non-zero FAR is "
            + "1/\(r.impostorPairCount): the TAR@FAR=\(unmeasurable.joined(separator: " and ")) "
            + "\(unmeasurable.count == 1 ? "marker is" : "markers are") the TAR at zero false accepts, not a measurement at that FAR."
        return figure(chart.svg, caption: "Each point is one threshold: the fraction of impostor pairs accepted (FAR) "
                      + "against the fraction of genuine pairs accepted (TAR). FAR = 0 is drawn at the left edge." + note)
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

    func figure(_ svg: String, caption: String) -> String {
        "<figure>\n\(svg)\n<figcaption>\(escaped(caption))</figcaption>\n</figure>"
    }
}
