import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// The trainer on P = 2 ranks (threads with `InProcessCommunicator`) against one process
/// processing the same global batches as 2 BatchNorm micro-batches (`Trainer.microBatches`).
@Suite(.serialized) struct DistributedTrainingTests {
    /// 3 identities × 10 images, global batch 10 → 3 steps per epoch; dropout on.
    static func configuration() -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 4
        c.backbone.dropout = 0.5
        return c
    }

    /// Runs until step `steps` on 2 ranks (nil: does not run); returns both trainers.
    static func runTwoRanks(_ configuration: TrainingConfiguration, _ set: FaceDataset, steps: Int?,
                            checkpoints: String? = nil, restoring: String? = nil) throws -> [Trainer] {
        let data = Unchecked(set)
        let results = runRanks(2) { (communicator: InProcessCommunicator) throws -> Unchecked<Trainer> in
            let trainer = try Trainer(configuration: configuration, trainingSet: data.value, communicator: communicator)
            trainer.replicaCheckEverySteps = 1
            trainer.checkpointDirectory = checkpoints
            if let restoring { try trainer.restore(from: restoring) }
            if let steps {
                trainer.stopAfterStep = steps
                _ = try trainer.run()
            }
            return Unchecked(trainer)
        }
        return try results.map { try $0.get().value }
    }

    static func reference(_ configuration: TrainingConfiguration, _ set: FaceDataset, steps: Int,
                          microBatches: Int = 2) throws -> Trainer {
        let trainer = try Trainer(configuration: configuration, trainingSet: set)
        trainer.microBatches = microBatches
        trainer.stopAfterStep = steps
        _ = try trainer.run()
        return trainer
    }

    /// The whole head of a 2-rank run (rank 0's rows, then rank 1's).
    static func wholeHead(_ ranks: [Trainer]) -> [Float] {
        ranks.flatMap { $0.model.head.parameters[0].value.storage }
    }

    /// max |a − b| ≤ relative · max |b| + 1e-6. The absolute floor is for tensors that are pure
    /// round-off: the embedding layer's bias feeds a BatchNorm, so its gradient is zero in exact
    /// arithmetic and its values (≈ 1e-8) are noise of the summation order.
    static func expectClose(_ a: [Float], _ b: [Float], relative: Float, _ what: String) {
        #expect(a.count == b.count, "\(what): sizes")
        let magnitude = b.reduce(0) { max($0, abs($1)) }
        let worst = zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
        #expect(worst <= relative * magnitude + 1e-6, "\(what): max |Δ| \(worst) vs magnitude \(magnitude)")
    }

    @Test("one step on 2 ranks = one process with 2 micro-batches (loss within rtol 1e-5)")
    func oneStep() throws {
        BLAS.threadCount = 1
        let set = try attSlice(identityCount: 3)
        let ranks = try Self.runTwoRanks(Self.configuration(), set, steps: 1)
        let reference = try Self.reference(Self.configuration(), set, steps: 1)
        let whole = try Self.reference(Self.configuration(), set, steps: 1, microBatches: 1)
        let loss = try #require(reference.lastFiniteLoss)
        for rank in ranks {
            let rankLoss = try #require(rank.lastFiniteLoss)
            #expect(abs(rankLoss - loss) <= 1e-5 * abs(loss), "loss \(rankLoss) vs \(loss)")
        }
        // The micro-batches matter: one batch of 10 has other BatchNorm statistics.
        let wholeLoss = try #require(whole.lastFiniteLoss)
        #expect(wholeLoss != loss)
        #expect(ranks[0].model.head.parameters[0].value.shape == [2, 16])
        #expect(ranks[1].model.head.parameters[0].value.shape == [1, 16])
    }

    @Test("communicationSeconds counts the head's collectives (all-gathers, all-reduces, reduce-scatter) besides the trainer's")
    func headCollectivesAreCounted() throws {
        BLAS.threadCount = 1
        let set = try attSlice(identityCount: 3)
        let ranks = try Self.runTwoRanks(Self.configuration(), set, steps: 2)
        for rank in ranks {
            let head = try #require(rank.model.head as? ClassParallelMarginHead)
            let timed = try #require(head.communicator as? TimedCommunicator, "the head's collectives are not timed")
            #expect(timed === rank.headCommunicator)
            // Per step: 3 all-gathers (sizes, embeddings, labels), 2 all-reduces, 1 reduce-scatter.
            #expect((timed.calls[.allGather] ?? 0) >= 6 && (timed.calls[.reduceScatter] ?? 0) >= 2, "\(timed.calls)")
            #expect(timed.totalSeconds > 0)
            #expect(rank.trainerCommunicationSeconds > 0)
            #expect(rank.communicationSeconds == rank.trainerCommunicationSeconds + timed.totalSeconds)
        }
        // One rank: no timing wrapper and no communication.
        let single = try Self.reference(Self.configuration(), set, steps: 1, microBatches: 1)
        #expect(single.headCommunicator == nil && single.communicationSeconds == 0)
    }

    @Test("ten steps on 2 ranks = one process with 2 micro-batches (parameters within 1e-4); replicas bit-identical")
    func tenSteps() throws {
        BLAS.threadCount = 1
        let set = try attSlice(identityCount: 3)
        let ranks = try Self.runTwoRanks(Self.configuration(), set, steps: 10)
        let reference = try Self.reference(Self.configuration(), set, steps: 10)
        #expect(ranks.allSatisfy { $0.step == 10 })
        for (a, b) in zip(ranks[0].model.backbone.parameters, reference.model.backbone.parameters) {
            Self.expectClose(a.value.storage, b.value.storage, relative: 1e-4, a.name)
        }
        for (a, b) in zip(ranks[0].model.backbone.buffers, reference.model.backbone.buffers) {
            Self.expectClose(a.value.storage, b.value.storage, relative: 1e-4, a.name)
        }
        Self.expectClose(Self.wholeHead(ranks), reference.model.head.parameters[0].value.storage, relative: 1e-4, "head")
        // Replicas: bit-identical backbones (parameters and BatchNorm statistics) on both ranks.
        #expect(ranks[0].model.backbone.parameters.map(\.value) == ranks[1].model.backbone.parameters.map(\.value))
        #expect(ranks[0].model.backbone.buffers.map(\.value) == ranks[1].model.backbone.buffers.map(\.value))
        #expect(ranks[0].history.map(\.loss) == ranks[1].history.map(\.loss))
        #expect(ranks[0].history.count == 3)
        for (a, b) in zip(ranks[0].history, reference.history) {
            #expect(abs(a.loss - b.loss) <= 1e-4 * abs(b.loss))
            #expect(a.accuracy == b.accuracy)
        }
    }

    @Test("a 2-rank checkpoint holds the whole head, resumes on 1 rank and on 2 ranks")
    func checkpointsAcrossRankCounts() throws {
        BLAS.threadCount = 1
        let set = try attSlice(identityCount: 3)
        let directory = TemporaryDirectory()
        let ranks = try Self.runTwoRanks(Self.configuration(), set, steps: 4, checkpoints: directory.path)
        let path = TrainingCheckpoint.path(in: directory.path, step: 4)
        #expect(ranks.allSatisfy { $0.lastCheckpoint == path })
        let stored = try TrainingCheckpoint.read(path: path)
        #expect(stored.modelTensorsByName["head.centers"]?.storage == Self.wholeHead(ranks))
        let momentum = ranks.flatMap { rank in rank.optimizer.momentumBuffers[rank.optimizer.parameters.firstIndex { $0.name == "head.centers" }!].storage }
        #expect(stored.momentumByName["head.centers"]?.storage == momentum)

        // P = 2 → P = 2: bit-identical to the uninterrupted 2-rank run.
        let uninterrupted = try Self.runTwoRanks(Self.configuration(), set, steps: 10)
        let resumed = try Self.runTwoRanks(Self.configuration(), set, steps: 10, restoring: path)
        #expect(resumed[0].model.backbone.parameters.map(\.value) == uninterrupted[0].model.backbone.parameters.map(\.value))
        #expect(Self.wholeHead(resumed) == Self.wholeHead(uninterrupted))

        // P = 2 → P = 1 (with the micro-batches of 2 ranks): continues the run, to round-off.
        let single = try Trainer(configuration: Self.configuration(), trainingSet: set)
        single.microBatches = 2
        try single.restore(from: path)
        #expect(single.model.head.parameters[0].value.storage == Self.wholeHead(ranks))
        single.stopAfterStep = 10
        _ = try single.run()
        for (a, b) in zip(single.model.backbone.parameters, uninterrupted[0].model.backbone.parameters) {
            Self.expectClose(a.value.storage, b.value.storage, relative: 1e-4, a.name)
        }
        Self.expectClose(single.model.head.parameters[0].value.storage, Self.wholeHead(uninterrupted), relative: 1e-4, "head")

        // P = 1 → P = 2: each rank takes its slice.
        let oneDirectory = TemporaryDirectory()
        let first = try Trainer(configuration: Self.configuration(), trainingSet: set)
        first.microBatches = 2
        first.checkpointDirectory = oneDirectory.path
        first.stopAfterStep = 4
        _ = try first.run()
        let sliced = try Self.runTwoRanks(Self.configuration(), set, steps: nil,
                                          restoring: TrainingCheckpoint.path(in: oneDirectory.path, step: 4))
        #expect(Self.wholeHead(sliced) == first.model.head.parameters[0].value.storage)
    }

    @Test("a global batch that does not split over the ranks is a typed error on every rank")
    func indivisibleBatch() throws {
        let set = Unchecked(try attSlice(identityCount: 3))
        let results = runRanks(3) { (communicator: InProcessCommunicator) throws -> Void in
            _ = try Trainer(configuration: Self.configuration(), trainingSet: set.value, communicator: communicator)
        }
        for result in results {
            guard case .failure(let error) = result, let error = error as? TrainingError,
                  case .distributed(.batchSizeNotDivisible(batchSize: 10, worldSize: 3)) = error else {
                Issue.record("expected batchSizeNotDivisible, got \(result)")
                continue
            }
        }
    }

    @Test("micro-batches that do not divide the batch are a typed error")
    func invalidMicroBatches() throws {
        let trainer = try Trainer(configuration: Self.configuration(), trainingSet: try attSlice(identityCount: 3))
        trainer.microBatches = 3
        #expect(throws: TrainingError.distributed(.invalidMicroBatches(microBatches: 3, batchSize: 10, worldSize: 1))) {
            try trainer.run()
        }
    }
}

/// `arcface train` built without the trait MPI, started as if by `mpirun -np 2`.
@Suite struct LaunchedWithoutMPICLITests {
    @Test("a binary without MPI under a launcher of 2 ranks stops with a clear message, not 2 runs",
          .enabled(if: ArcFaceBinary.path != nil))
    func refusesIndependentCopies() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let train = [binary, "train", "--data", attFacesDirectory, "--output", directory.path + "/run", "--epochs", "1"]
        let launched = try RunFolderCLITests.run("/usr/bin/env", ["OMPI_COMM_WORLD_SIZE=2"] + train)
        #expect(launched.status == 1, "\(launched.text)")
        #expect(launched.text.contains("built without MPI"), "\(launched.text)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/run"))
        // One rank under a launcher is one process.
        let single = try RunFolderCLITests.run("/usr/bin/env", ["OMPI_COMM_WORLD_SIZE=1", binary, "train", "--data",
                                                                 directory.path + "/no-such-data", "--output", directory.path + "/run"])
        #expect(!single.text.contains("built without MPI"), "\(single.text)")
    }
}
