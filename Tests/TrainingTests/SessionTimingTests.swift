import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// Timing of resumed runs: totals over every session, and the last session's own numbers, apart.
@Suite(.serialized) struct SessionTimingTests {
    @Test("a resumed run reports all sessions' totals and this session's share separately")
    func resumedRun() throws {
        BLAS.threadCount = 1
        let configuration = ResumeFallbackTests.configuration()  // 2 epochs × 5 steps × 10 images
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"

        let whole = try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: nil)
        #expect(whole.metrics.session == nil, "a run never resumed has one session: its totals")
        #expect(whole.metrics.timing.images == 100)

        // Session 1: stopped after its first step.
        let stop = StopRequest()
        stop.request()
        #expect(throws: TrainingError.interrupted(step: 1, signal: nil, checkpoint: TrainingCheckpoint.path(in: output + "/checkpoints", step: 1))) {
            try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: output, stopRequest: stop)
        }
        let stored = try TrainingCheckpoint.read(path: TrainingCheckpoint.path(in: output + "/checkpoints", step: 1)).progress
        #expect(stored.sessions == 1 && stored.timing.images == 10 && (stored.seconds ?? 0) > 0)

        // Session 2 finishes the run.
        let resumed = try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: output, resume: true)
        let m = resumed.metrics
        let session = try #require(m.session)
        #expect(session.number == 2)
        #expect(m.timing.images == 100 && session.timing.images == 90, "images of all sessions vs. this one")
        #expect(m.trainingSeconds > session.trainingSeconds && session.trainingSeconds > 0)
        #expect(abs(m.trainingSeconds - session.trainingSeconds - (stored.seconds ?? 0)) < 1e-9, "total = earlier + this session")
        #expect(m.trainImagesPerSecond == m.timing.imagesPerSecond && session.imagesPerSecond == session.timing.imagesPerSecond)
        #expect(session.timing.forward < m.timing.forward)
        // metrics.json keeps both.
        let decoded = try JSONDecoder().decode(RunMetrics.self, from: Data(contentsOf: URL(fileURLWithPath: output + "/metrics.json")))
        #expect(decoded.session == session && decoded.trainingSeconds == m.trainingSeconds)
        let html = try String(contentsOfFile: output + "/report.html", encoding: .utf8)
        #expect(html.contains("(all 2 sessions; this session"))
    }
}
