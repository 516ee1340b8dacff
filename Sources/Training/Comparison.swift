import Foundation
import FaceEvaluation

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

    public init(method: String, reports: [VerificationReport] = [], imagesPerSecond: [Double] = []) {
        self.method = method
        self.reports = reports
        self.imagesPerSecond = imagesPerSecond
    }

    public func summary(_ metric: KeyPath<VerificationReport, Double>) -> MeanAndDeviation {
        MeanAndDeviation(reports.map { $0[keyPath: metric] })
    }
}

/// Formats comparison rows as a Markdown table of mean ± std per metric.
public func comparisonTable(_ rows: [ComparisonRow]) -> String {
    let columns: [(String, KeyPath<VerificationReport, Double>)] = [
        ("balanced acc.", \.balancedAccuracy), ("AUC", \.auc), ("EER", \.eer),
        ("TAR@FAR=1e-2", \.tarAtFar1e2), ("TAR@FAR=1e-3", \.tarAtFar1e3), ("rank-1", \.rank1),
    ]
    var lines = ["| method | " + columns.map(\.0).joined(separator: " | ") + " | train img/s |",
                 "|---|" + String(repeating: "---|", count: columns.count + 1)]
    for row in rows {
        let cells = columns.map { (_, path) -> String in
            let s = row.summary(path)
            return String(format: "%.3f ± %.3f", s.mean, s.standardDeviation)
        }
        let speed = row.imagesPerSecond.isEmpty ? "—" : String(format: "%.0f", MeanAndDeviation(row.imagesPerSecond).mean)
        lines.append("| \(row.method) | " + cells.joined(separator: " | ") + " | \(speed) |")
    }
    return lines.joined(separator: "\n")
}
