import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import _TestSupport
import ArcFace

/// Every element of an XML document with its attributes, in document order.
final class ElementCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                qualifiedName: String?, attributes: [String: String] = [:]) {
        elements.append((elementName, attributes))
    }

    /// Parses `text`; nil when it is not well-formed XML (the parser's error is recorded).
    static func parse(_ text: String) -> ElementCollector? {
        let parser = XMLParser(data: Data(text.utf8))
        let collector = ElementCollector()
        parser.delegate = collector
        guard parser.parse() else {
            Issue.record("not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?") at line \(parser.lineNumber)")
            return nil
        }
        return collector
    }

    func with(_ key: String, _ value: String) -> [[String: String]] {
        elements.filter { $0.attributes[key] == value }.map(\.attributes)
    }
}

@Suite struct TrainingReportTests {
    /// Embeddings of `identities` × `samples` (6 × 5: 375 impostor pairs) around random centres, seeded.
    func evaluation(noise: Float = 0.9, identities: Int = 6, samples: Int = 5) -> VerificationEvaluation {
        var generator = SeededGenerator(seed: 7)
        let dimension = 8
        let centres = (0..<identities * dimension).map { _ in Float(generator.nextNormal()) }
        var storage: [Float] = [], labels: [Int] = []
        for identity in 0..<identities {
            for _ in 0..<samples {
                storage += (0..<dimension).map { centres[identity * dimension + $0] + noise * Float(generator.nextNormal()) }
                labels.append(identity)
            }
        }
        return evaluateVerificationInDetail(embeddings: Tensor(shape: [identities * samples, dimension], storage: storage),
                                            labels: labels, folds: 5, seed: 3)
    }

    /// `count` epochs with loss 12/e, accuracy 1 − 1/(e+1), learning rate 0.1·e/count.
    func history(_ count: Int) throws -> [EpochSummary] {
        let rows = (1...count).map { (epoch: Int) -> [String: Double] in
            let e = Double(epoch)
            return ["epoch": e, "loss": 12 / e, "accuracy": 1 - 1 / (e + 1), "learningRate": 0.1 * e / Double(count),
                    "imagesPerSecond": 100, "seconds": 1]
        }
        return try JSONDecoder().decode([EpochSummary].self, from: JSONSerialization.data(withJSONObject: rows))
    }

    @Test("the detailed evaluation agrees with the plain one; the histogram holds every pair once")
    func detailedEvaluation() {
        let detailed = evaluation()
        let r = detailed.report
        #expect(detailed.histogram.genuineCounts.reduce(0, +) == r.genuinePairCount)
        #expect(detailed.histogram.impostorCounts.reduce(0, +) == r.impostorPairCount)
        #expect(detailed.roc.falseAcceptRates.last == 1 && detailed.roc.trueAcceptRates.last == 1)
        #expect(detailed.threshold > -1 && detailed.threshold < 1)
        #expect(trueAcceptRate(atFalseAcceptRate: 1e-2, in: detailed.roc) == r.tarAtFar1e2)
    }

    @Test("histogram bins: edges, the closed last bin, clamping and NaN")
    func histogramBins() {
        // 4 bins over [−1, 1]: [−1, −0.5), [−0.5, 0), [0, 0.5), [0.5, 1].
        let h = ScoreHistogram(scores: [-1, -0.95, -0.5, 0, 0.999, 1, .nan, 5, -.infinity],
                               isSame: [true, false, false, true, true, false, true, true, false], binCount: 4)
        #expect(h.genuineCounts == [1, 0, 1, 2])   // −1; 0; 0.999 and 5 (clamped)
        #expect(h.impostorCounts == [2, 1, 0, 1])  // −0.95 and −∞ (clamped); −0.5; 1
        #expect(h.lowerEdge(ofBin: 2) == 0)
    }

    @Test("report.html is well-formed XML and its plotted values are the metrics'")
    func plottedValues() throws {
        let detailed = evaluation()
        let r = detailed.report
        let epochs = try history(7)
        var configuration = TrainingConfiguration.base
        configuration.folds = 5
        let report = TrainingReport(title: "test <run> & \"quotes\"", configuration: configuration, history: epochs,
                                    evaluations: [EvaluationRecord(epoch: 3, report: r), EvaluationRecord(epoch: 7, report: r)],
                                    finalEvaluation: detailed)
        let html = report.html
        let document = try #require(ElementCollector.parse(html))
        #expect(!html.contains("src=") && !html.contains("href=") && !html.contains("@import"), "no external resources")
        #expect(!html.contains("<script"))
        let charts = document.elements.filter { $0.name == "svg" }.compactMap { $0.attributes["data-chart"] }
        #expect(charts == ["loss", "learning-rate", "accuracy", "roc", "histogram"])

        let loss = try #require(document.with("data-series", "loss").first)
        #expect(loss["data-points"] == "7")
        #expect(loss["data-values"]?.split(separator: " ").compactMap { Double($0) } == epochs.map(\.loss))
        let rate = try #require(document.with("data-series", "learning-rate").first)
        #expect(rate["data-values"]?.split(separator: " ").compactMap { Double($0) } == epochs.map(\.learningRate))

        let verification = document.with("data-series", "verification-accuracy")
        #expect(verification.map { $0["data-epoch"] } == ["3", "7"])
        #expect(verification.allSatisfy { $0["data-value"].flatMap(Double.init) == r.balancedAccuracy })

        let markers = document.with("data-series", "tar-at-far")
        #expect(markers.map { $0["data-far"].flatMap(Double.init) } == [1e-2, 1e-3])
        #expect(markers.map { $0["data-tar"].flatMap(Double.init) } == [r.tarAtFar1e2, r.tarAtFar1e3])

        let roc = try #require(document.with("data-series", "roc").first)
        let points = try #require(roc["points"]).split(separator: " ").map { $0.split(separator: ",").map { Double($0)! } }
        #expect(Int(roc["data-points"] ?? "") == points.count)
        #expect(points.count >= 2 && points.count <= detailed.roc.falseAcceptRates.count)
        // The curve runs left to right and upward (pixel y decreases as TAR grows).
        #expect(zip(points, points.dropFirst()).allSatisfy { $0[0] <= $1[0] && $0[1] >= $1[1] })

        for (series, total) in [("genuine", r.genuinePairCount), ("impostor", r.impostorPairCount)] {
            let bars = document.with("data-series", series)
            #expect(bars.compactMap { $0["data-count"].flatMap(Int.init) }.reduce(0, +) == total)
        }
        let threshold = try #require(document.elements.first { $0.attributes["data-threshold"] != nil })
        #expect(threshold.name == "line")
        #expect(threshold.attributes["data-threshold"].flatMap(Float.init) == detailed.threshold)
        #expect(html.contains(String(format: "%.4f", r.auc)))
    }

    @Test("a training run writes report.html beside the checkpoint, showing the run's metrics")
    func runWritesReport() throws {
        let directory = TemporaryDirectory()
        var configuration = tinyConfiguration()
        configuration.epochs = 2
        configuration.warmupEpochs = 0
        configuration.heldOutIdentities = 35
        let result = try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory,
                                        outputDirectory: directory.path)
        let html = try String(contentsOfFile: directory.path + "/report.html", encoding: .utf8)
        let document = try #require(ElementCollector.parse(html))
        #expect(document.with("data-series", "loss").first?["data-points"] == "2")
        let final = try #require(document.with("data-series", "verification-accuracy").last)
        #expect(final["data-value"].flatMap(Double.init) == result.metrics.verification.balancedAccuracy)
        #expect(result.evaluation?.report == result.metrics.verification)
    }

    /// The value cell of the table row headed `metric`.
    static func tableCell(_ metric: String, in html: String) -> String? {
        guard let start = html.range(of: "<tr><th>\(metric)</th><td>") else { return nil }
        return html[start.upperBound...].range(of: "</td>").map { String(html[start.upperBound..<$0.lowerBound]) }
    }

    /// A report of `evaluation` with `configuration` and a 3-epoch history.
    func report(_ evaluation: VerificationEvaluation, configuration: TrainingConfiguration = .base) throws -> String {
        TrainingReport(title: "run", configuration: configuration, history: try history(3),
                       evaluations: [EvaluationRecord(epoch: 3, report: evaluation.report)], finalEvaluation: evaluation).html
    }

    @Test("a TAR@FAR whose FAR is below 1/impostor pairs says so in the table and the ROC caption")
    func unmeasurableFalseAcceptRate() throws {
        let small = evaluation()  // 375 impostor pairs: 1e-3 < 1/375 ≤ 1e-2
        #expect(small.report.impostorPairCount == 375)
        let html = try report(small)
        #expect(ElementCollector.parse(html) != nil)
        #expect(Self.tableCell("TAR@FAR=1e-3", in: html)
                == String(format: "%.4f", small.report.tarAtFar1e3) + " (below 1/375 impostor pairs: not measurable)")
        #expect(Self.tableCell("TAR@FAR=1e-2", in: html) == String(format: "%.4f", small.report.tarAtFar1e2))
        #expect(html.contains("the TAR@FAR=1e-3 marker is the TAR at zero false accepts"))

        let large = evaluation(identities: 10, samples: 12)  // 7,140 − 660 = 6,480 impostor pairs
        #expect(large.report.impostorPairCount == 6480)
        let measured = try report(large)
        #expect(Self.tableCell("TAR@FAR=1e-3", in: measured) == String(format: "%.4f", large.report.tarAtFar1e3))
        #expect(!measured.contains("not measurable") && !measured.contains("zero false accepts"))
    }

    @Test("the loss chart's caption names the loss the run trained with")
    func lossCaption() throws {
        let detailed = evaluation()
        func caption(_ loss: LossKind) throws -> String? {
            var configuration = TrainingConfiguration.base
            configuration.loss = loss
            let html = try report(detailed, configuration: configuration)
            guard let start = html.range(of: "<figcaption>Training loss: ") else { return nil }
            return html[start.upperBound...].range(of: "</figcaption>").map { String(html[start.upperBound..<$0.lowerBound]) }
        }
        #expect(try caption(.softmax) == "the mean softmax cross-entropy of a linear layer with bias of each epoch&#39;s steps.")
        let normface = try #require(try caption(.normface))
        #expect(normface.contains("cross-entropy of the scaled cosine logits (no margin)") && !normface.contains("margin-softmax"),
                "\(normface)")
        for margin in [LossKind.arcface, .cosface, .combined] {
            #expect(try caption(margin)?.contains("margin-softmax cross-entropy") == true, "\(margin)")
        }
        #expect(try caption(.softmax)?.contains("margin") == false)
    }
}
