// The verification sets of `report.html` (`RunMetrics.verificationSets`): a row per set in the
// table and one chart of every set's k-fold accuracy over the training steps.
import Foundation
import Checkpointing

extension TrainingReport {
    /// The colour of set `index` (cycled).
    static func verificationColor(_ index: Int) -> String {
        ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"][index % 8]
    }

    /// One table row per set (its final accuracy ± standard deviation with and without flip,
    /// and its best), plus the `bestBy` choice.
    func verificationRows() -> [(String, String)] {
        guard let sets = metrics?.verificationSets else { return [] }
        var rows: [(String, String)] = []
        let flip = configuration.flipEmbeddings
        for set in sets {
            let f = set.final, best = set.best
            rows.append(("\(set.name) accuracy (\(set.folds)-fold, \(set.genuinePairCount)+\(set.impostorPairCount) pairs), step \(f.step)",
                         String(format: "%.4f ± %.4f with flip, %.4f ± %.4f without",
                                f.withFlip.accuracy, f.withFlip.standardDeviation,
                                f.withoutFlip.accuracy, f.withoutFlip.standardDeviation)))
            rows.append(("\(set.name) highest accuracy (\(flip ? "with" : "without") flip)",
                         String(format: "%.4f at step %d", (flip ? best.withFlip : best.withoutFlip).accuracy, best.step)))
        }
        if let bestBy = metrics?.bestBy {
            rows.append(("best.safetensors chosen by", String(format: "%@: %.4f at step %d", bestBy.set, bestBy.accuracy, bestBy.step)))
        }
        return rows
    }

    /// Every set's k-fold accuracy over steps: a solid line with flip-summing, a dashed one
    /// without, one colour per set (`data-series` `verification-<name>` and
    /// `verification-no-flip-<name>`, `data-steps` the x values); "" without sets.
    func verificationFigure() -> String {
        guard let sets = metrics?.verificationSets, !sets.isEmpty else { return "" }
        let lastStep = Double(sets.flatMap { $0.history.map(\.step) }.max() ?? 1)
        let accuracies = sets.flatMap { $0.history.flatMap { [$0.withFlip.accuracy, $0.withoutFlip.accuracy] } }.filter(\.isFinite)
        let lowest = ((accuracies.min() ?? 0.5) * 10).rounded(.down) / 10
        var chart = Chart(name: "verification", xRange: 0...max(lastStep, 1), yRange: min(lowest, 0.9)...1,
                          xLabel: "step", yLabel: "k-fold verification accuracy")
        var legend: [(String, String, Bool)] = []
        for (index, set) in sets.enumerated() {
            let color = Self.verificationColor(index), steps = set.history.map { Double($0.step) }
            chart.line(series: "verification-" + escaped(set.name), xs: steps, ys: set.history.map(\.withFlip.accuracy), color: color)
            chart.line(series: "verification-no-flip-" + escaped(set.name), xs: steps, ys: set.history.map(\.withoutFlip.accuracy),
                       color: color, dashed: true)
            legend.append((set.name, color, false))
        }
        if let bestBy = metrics?.bestBy, let index = sets.firstIndex(where: { $0.name == bestBy.set }) {
            chart.markers(series: "best-by", points: [(x: Double(bestBy.step), y: bestBy.accuracy,
                                                       attributes: "data-step=\"\(bestBy.step)\" data-value=\"\(bestBy.accuracy)\"",
                                                       label: String(format: "best.safetensors %.4f", bestBy.accuracy))],
                          color: Self.verificationColor(index))
        }
        chart.legend(legend)
        let flip = configuration.flipEmbeddings ? "with" : "without"
        let when = configuration.verifyEverySteps > 0 ? "every \(configuration.verifyEverySteps) steps and after the last step" : "after the last step"
        return figure(chart.svg, caption: "Verification sets during training (--verify), evaluated \(when): mean k-fold accuracy over the set's folds, solid with flip-summing, "
                      + "dashed without (the run's setting is \(flip) flip). Inference mode; training is unchanged by it.")
    }
}
