// The trainer over MPI (make test-mpi): P ranks with the real MPI communicator against the
// one-process trainer with P BatchNorm micro-batches, computed on every rank in the same process
// (as DistributedTrainingTests do with threads as ranks).
#if MPI
import Foundation
import Collectives
import MPICollectives
import Testing
import TensorCore
import RunConfiguration
import FaceData
@testable import Training

extension MPICommunicatorTests {
    /// The AT&T faces beside the checkout (`../shared/data/att_faces`), or `$ARCFACE_DATA`.
    static let attFaces: String = {
        if let override = ProcessInfo.processInfo.environment["ARCFACE_DATA"] { return override }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.deletingLastPathComponent().appendingPathComponent("shared/data/att_faces").path
    }()

    /// 3 identities × 10 images, a global batch of 5 per rank, dropout on, a two-stage backbone.
    static func trainingConfiguration(worldSize: Int) -> TrainingConfiguration {
        var c = TrainingConfiguration.base
        c.backbone.stageChannels = [4, 8]
        c.backbone.embeddingDimension = 16
        c.backbone.dropout = 0.5
        c.epochs = 4
        c.warmupEpochs = 1
        c.batchSize = 5 * worldSize
        c.learningRate = 0.05
        c.heldOutIdentities = 3
        c.threads = 1
        return c
    }

    /// This rank's trainer after `steps` steps over MPI, and the one-process reference with
    /// `world.size` micro-batches after as many.
    static func trainedPair(steps: Int, world: MPICommunicator) throws -> (rank: Trainer, reference: Trainer) {
        BLAS.threadCount = 1
        let set = try FaceDataset.load(directory: attFaces).prefix(identityCount: 3)
        let configuration = trainingConfiguration(worldSize: world.size)
        let rank = try Trainer(configuration: configuration, trainingSet: set, communicator: world)
        rank.replicaCheckEverySteps = 1
        rank.stopAfterStep = steps
        _ = try rank.run()
        let reference = try Trainer(configuration: configuration, trainingSet: set)
        reference.microBatches = world.size
        reference.stopAfterStep = steps
        _ = try reference.run()
        return (rank, reference)
    }

    /// The largest |a − b| and the magnitude max |b|.
    static func deviation(_ a: [Float], _ b: [Float]) -> (worst: Float, magnitude: Float) {
        (zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }, b.reduce(0) { max($0, abs($1)) })
    }

    @Test("one trainer step over MPI = one process with P micro-batches (loss within rtol 1e-5)")
    func trainerOneStep() throws {
        let world = try Self.world()
        let (rank, reference) = try Self.trainedPair(steps: 1, world: world)
        let loss = try #require(reference.lastFiniteLoss), rankLoss = try #require(rank.lastFiniteLoss)
        #expect(rank.step == 1)
        #expect(abs(rankLoss - loss) <= 1e-5 * abs(loss), "rank \(world.rank): loss \(rankLoss) vs \(loss)")
    }

    @Test("ten trainer steps over MPI = one process with P micro-batches (parameters within 1e-4 of their magnitude)")
    func trainerTenSteps() throws {
        let world = try Self.world()
        let (rank, reference) = try Self.trainedPair(steps: 10, world: world)
        #expect(rank.step == 10)
        let pairs = zip(rank.model.backbone.parameters.map { ($0.name, $0.value) } + rank.model.backbone.buffers.map { ($0.name, $0.value) },
                        reference.model.backbone.parameters.map(\.value) + reference.model.backbone.buffers.map(\.value))
        for ((name, a), b) in pairs {
            #expect(a.count == b.count, "\(name): sizes")
            let (worst, magnitude) = Self.deviation(a.storage, b.storage)
            // The floor: round-off-only tensors (a bias before a BatchNorm), as DistributedTrainingTests.
            #expect(worst <= 1e-4 * magnitude + 1e-6, "rank \(world.rank) \(name): max |Δ| \(worst) vs magnitude \(magnitude)")
        }
        let slice = rank.localSlice(of: reference.model.head.parameters[0].value)
        let head = rank.model.head.parameters[0].value
        #expect(head.shape == slice.shape)
        let (worst, magnitude) = Self.deviation(head.storage, slice.storage)
        #expect(worst <= 1e-4 * magnitude + 1e-6, "rank \(world.rank) head: max |Δ| \(worst) vs magnitude \(magnitude)")
        // The ranks' losses are the global batch's: the same on every rank.
        var losses = [rank.lastFiniteLoss ?? .nan], minimum = losses
        try world.allReduce(&losses, .max)
        try world.allReduce(&minimum, .min)
        #expect(losses == minimum)
    }
}
#endif
