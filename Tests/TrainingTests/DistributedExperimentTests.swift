import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// `Experiment.run` on 2 ranks: rank 0 alone writes the run folder; its model file holds the whole head.
@Suite(.serialized) struct DistributedExperimentTests {
    @Test("a 2-rank Experiment.run writes one folder whose model loads on one process")
    func modelFileHoldsTheWholeHead() throws {
        BLAS.threadCount = 1
        let configuration = {
            var c = tinyConfiguration()
            c.epochs = 2
            return c
        }()
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        let results = runRanks(2) { (communicator: InProcessCommunicator) throws -> Double in
            try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: output,
                               communicator: communicator).metrics.verification.auc
        }
        let aucs = try results.map { try $0.get() }
        #expect(aucs[0] == aucs[1])
        let model = try Experiment.loadModel(path: output)
        #expect(model.head.parameters[0].value.shape == [model.classCount, 16])
        let metrics = try JSONDecoder().decode(RunMetrics.self, from: Data(contentsOf: URL(fileURLWithPath: output + "/metrics.json")))
        #expect(metrics.distributed?.ranks == 2)
        #expect((metrics.distributed?.communicationSeconds ?? 0) > 0)
    }
}
