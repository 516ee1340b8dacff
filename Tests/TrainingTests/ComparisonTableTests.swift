import Foundation
import Testing
import ArcFace

/// `comparisonTable` and `comparisonHeading`: what `arcface compare` prints at its end.
@Suite struct ComparisonTableTests {
    static func report(balancedAccuracy: Double) -> VerificationReport {
        VerificationReport(balancedAccuracy: balancedAccuracy, balancedAccuracyStdErr: 0.01, accuracyAllPairs: nil,
                           auc: 0.9, eer: 0.1, tarAtFar1e2: 0.5, tarAtFar1e3: 0.25, rank1: 1,
                           genuinePairCount: 450, impostorPairCount: 4500, balancedPairCount: 900)
    }

    /// The cells of a Markdown table line, trimmed.
    static func cells(_ line: Substring) -> [String] {
        line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
            .map { $0.trimmingCharacters(in: .whitespaces) }
    }

    @Test("the table shows train acc. and took off per trained method, and — for raw pixels")
    func columns() throws {
        let arcface = ComparisonRow(method: "arcface", reports: [Self.report(balancedAccuracy: 0.9), Self.report(balancedAccuracy: 0.8)],
                                    imagesPerSecond: [300, 500], trainingAccuracies: [0.8, 0.9], tookOff: [true, false])
        let pixels = ComparisonRow(method: "raw pixels", reports: [Self.report(balancedAccuracy: 0.7), Self.report(balancedAccuracy: 0.7)])
        let lines = comparisonTable([arcface, pixels]).split(separator: "\n")
        #expect(lines.count == 4)
        let header = Self.cells(lines[0])
        #expect(header == ["method", "balanced acc.", "AUC", "EER", "TAR@FAR=1e-2", "TAR@FAR=1e-3", "rank-1",
                           "train acc.", "took off", "train img/s"])
        #expect(Self.cells(lines[1]).count == header.count)
        let trained = Self.cells(lines[2]), raw = Self.cells(lines[3])
        #expect(trained.count == header.count && raw.count == header.count)
        func column(_ name: String, _ row: [String]) -> String? { header.firstIndex(of: name).map { row[$0] } }
        #expect(column("method", trained) == "arcface")
        #expect(column("balanced acc.", trained) == "0.850 ± 0.071")
        #expect(column("train acc.", trained) == "0.850 ± 0.071")
        #expect(column("took off", trained) == "1/2")
        #expect(column("train img/s", trained) == "400")
        #expect(column("method", raw) == "raw pixels")
        #expect(column("balanced acc.", raw) == "0.700 ± 0.000")
        #expect(column("train acc.", raw) == "—" && column("took off", raw) == "—" && column("train img/s", raw) == "—")
    }

    @Test("the heading names the budget, or raw pixels only when no loss is compared")
    func heading() {
        var configuration = TrainingConfiguration.base
        configuration.epochs = 12
        configuration.batchSize = 16
        #expect(comparisonHeading(splits: 3, losses: [.arcface, .softmax], configuration: configuration)
                == "mean ± std over 3 identity splits (12 epochs, batch 16):")
        #expect(comparisonHeading(splits: 2, losses: [], configuration: configuration)
                == "mean ± std over 2 identity splits (raw pixels only, nothing trained):")
        #expect(comparisonHeading(splits: 1, losses: [.cosface], configuration: configuration)
                == "mean ± std over 1 identity split (12 epochs, batch 16):")
    }
}
