import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// Evaluation on P = 2 ranks (threads with `InProcessCommunicator`): rank 0 alone evaluates the
/// held-out set and the verification sets; the other ranks wait for it, get its numbers, and end
/// when it fails.
@Suite(.serialized) struct DistributedEvaluationTests {
    static func configuration() -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 1
        c.warmupEpochs = 0
        return c
    }

    @Test("after training only rank 0 evaluates; rank 1 returns rank 0's metrics and no evaluation of its own")
    func onlyRootEvaluates() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        let configuration = Self.configuration()
        let results = runRanks(2) { (communicator: InProcessCommunicator) throws -> Unchecked<RunResult> in
            Unchecked(try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: output,
                                         communicator: communicator))
        }
        let root = try results[0].get().value, other = try results[1].get().value
        #expect(root.evaluation != nil)
        #expect(other.evaluation == nil)
        #expect(other.metrics == root.metrics)
        #expect(other.history.map(\.loss) == root.history.map(\.loss))
    }

    @Test("when rank 0 fails to save after training, rank 1 ends with rankFailed (no hang)")
    func rootFailureEndsTheOthers() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        let configuration = Self.configuration()
        let results = runRanks(2, timeout: .seconds(30)) { (communicator: InProcessCommunicator) throws -> Unchecked<RunResult> in
            Unchecked(try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: output,
                                         communicator: communicator, onEpoch: { summary in
                                             // A folder where model.safetensors goes: rank 0's save fails.
                                             guard communicator.rank == 0, summary.epoch == configuration.epochs else { return }
                                             try? FileManager.default.createDirectory(atPath: output + "/model.safetensors/blocked",
                                                                                      withIntermediateDirectories: true)
                                         }))
        }
        #expect(throws: TrainingError.self) { try results[0].get() }
        do {
            _ = try results[1].get()
            Issue.record("rank 1 returned although rank 0 failed")
        } catch let TrainingError.distributed(.rankFailed(rank, _, what)) {
            #expect(rank == 0)
            #expect(what.contains("evaluating"), "\(what)")
        } catch {
            Issue.record("rank 1: \(error)")
        }
    }

    @Test("verification sets are evaluated on rank 0 only: every rank holds rank 0's records")
    func verificationOnRoot() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        // Each rank its own set: a rank that evaluated would record its own set's name.
        let paths = try ["zero", "one"].enumerated().map { index, name in
            try VerificationDuringTrainingTests.writeSet(named: name, identities: [36 + 2 * index, 37 + 2 * index], in: directory.path)
        }
        let configuration = {
            var c = Self.configuration()
            c.verifyEverySteps = 2
            return c
        }()
        let data = Unchecked(try attSlice(identityCount: 3))
        let results = runRanks(2) { (communicator: InProcessCommunicator) throws -> Unchecked<(Trainer, [VerificationRecord])> in
            var own = configuration
            own.verificationSets = [paths[communicator.rank]]
            let trainer = try Trainer(configuration: own, trainingSet: data.value, communicator: communicator)
            trainer.verificationSets = try Experiment.loadVerificationSets(own)
            var called: [VerificationRecord] = []
            trainer.onVerification = { called.append($0) }
            _ = try trainer.run()
            return Unchecked((trainer, called))
        }
        let (root, rootCalls) = try results[0].get().value, (other, otherCalls) = try results[1].get().value
        #expect(!root.verifications.isEmpty)
        #expect(root.verifications.allSatisfy { $0.sets.map(\.name) == ["zero"] })
        #expect(other.verifications == root.verifications)
        #expect(otherCalls == rootCalls && rootCalls == root.verifications)
    }
}
