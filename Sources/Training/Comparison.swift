import Foundation
import FaceEvaluation
import RunConfiguration

/// Mean and sample standard deviation of a list of values.
public struct MeanAndDeviation: Sendable, Codable, Equatable {
    public var mean: Double
    public var standardDeviation: Double

    public init(_ values: [Double]) {
        let n = Double(values.count)
        mean = values.reduce(0, +) / max(n, 1)
        let m = mean
        standardDeviation = values.count > 1
            ? (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot() : 0
    }
}

/// One row of a comparison table: a method evaluated over several identity splits.
public struct ComparisonRow: Sendable, Codable {
    public var method: String
    public var reports: [VerificationReport]
    public var imagesPerSecond: [Double]
    /// Training accuracy of the last epoch, per split (empty for a method that does not train).
    public var trainingAccuracies: [Double]
    /// Whether the take-off watchdog judged the run converged, per split.
    public var tookOff: [Bool]

    public init(method: String, reports: [VerificationReport] = [], imagesPerSecond: [Double] = [],
                trainingAccuracies: [Double] = [], tookOff: [Bool] = []) {
        self.method = method
        self.reports = reports
        self.imagesPerSecond = imagesPerSecond
        self.trainingAccuracies = trainingAccuracies
        self.tookOff = tookOff
    }

    public func summary(_ metric: KeyPath<VerificationReport, Double>) -> MeanAndDeviation {
        MeanAndDeviation(reports.map { $0[keyPath: metric] })
    }
}

/// Formats comparison rows as a Markdown table of mean ± std per metric, with the final
/// training accuracy and how many splits took off (`TakeOffWatchdog`); "—" for a method that
/// does not train (raw pixels).
public func comparisonTable(_ rows: [ComparisonRow]) -> String {
    let columns: [(String, KeyPath<VerificationReport, Double>)] = [
        ("balanced acc.", \.balancedAccuracy), ("AUC", \.auc), ("EER", \.eer),
        ("TAR@FAR=1e-2", \.tarAtFar1e2), ("TAR@FAR=1e-3", \.tarAtFar1e3), ("rank-1", \.rank1),
    ]
    var lines = ["| method | " + columns.map(\.0).joined(separator: " | ") + " | train acc. | took off | train img/s |",
                 "|---|" + String(repeating: "---|", count: columns.count + 3)]
    for row in rows {
        let cells = columns.map { (_, path) -> String in
            let s = row.summary(path)
            return String(format: "%.3f ± %.3f", s.mean, s.standardDeviation)
        }
        let accuracy = row.trainingAccuracies.isEmpty ? "—" : {
            let s = MeanAndDeviation(row.trainingAccuracies)
            return String(format: "%.3f ± %.3f", s.mean, s.standardDeviation)
        }()
        let tookOff = row.tookOff.isEmpty ? "—" : "\(row.tookOff.filter { $0 }.count)/\(row.tookOff.count)"
        let speed = row.imagesPerSecond.isEmpty ? "—" : String(format: "%.0f", MeanAndDeviation(row.imagesPerSecond).mean)
        lines.append("| \(row.method) | " + cells.joined(separator: " | ") + " | \(accuracy) | \(tookOff) | \(speed) |")
    }
    return lines.joined(separator: "\n")
}

/// The line above `comparisonTable` in `arcface compare`: over how many identity splits, and the
/// training budget of the losses compared (`configuration`'s epochs and batch size), or
/// "raw pixels only, nothing trained" when `losses` is empty.
public func comparisonHeading(splits: Int, losses: [LossKind], configuration: TrainingConfiguration) -> String {
    let budget = losses.isEmpty ? "raw pixels only, nothing trained" : "\(configuration.epochs) epochs, batch \(configuration.batchSize)"
    return "mean ± std over \(splits) identity split\(splits == 1 ? "" : "s") (\(budget)):"
}
