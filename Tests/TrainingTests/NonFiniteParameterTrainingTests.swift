import Testing
import _TestSupport
@testable import Training
import ArcFace

/// A head row holding NaN or ±Inf reaches the Trainer as its numerics error (the non-finite
/// policy applies), never as a trap in the margin or a silent loss of 0.
@Suite(.serialized) struct NonFiniteParameterTrainingTests {
    static func trainer(_ policy: NonFinitePolicy, poison: Float, row: Int) throws -> Trainer {
        let train = try attSlice(identityCount: 3)
        let trainer = try Trainer(configuration: NonFiniteTests.configuration(policy), trainingSet: train)
        let centers = try #require(trainer.model.parameters.first { $0.name == "head.centers" })
        centers.value.storage[row * centers.value.shape[1]] = poison
        return trainer
    }

    @Test("stop: a NaN/±Inf center row is NumericalError.nonFiniteParameter naming the row; nothing updated",
          arguments: [Float.nan, .infinity, -.infinity])
    func stop(poison: Float) throws {
        for row in [0, 2] {   // every batch of the 3-identity slice has some class as its target
            let trainer = try Self.trainer(.stop, poison: poison, row: row)
            let before = ResumeTests.state(trainer)
            do {
                try trainer.run()
                Issue.record("a non-finite center row went unnoticed")
            } catch {
                guard case let .numerics(.nonFiniteParameter(step, parameter, badRow, last)) = error else {
                    Issue.record("\(error)"); continue
                }
                #expect(step == 0 && parameter == "head.centers" && badRow == row && last == nil)
                #expect(error.description.contains("row \(row) of head.centers"))
            }
            let after = ResumeTests.state(trainer)
            #expect(before.count == after.count)
            for (a, b) in zip(before, after) {   // NaN ≠ NaN: compare bit patterns
                #expect(a.storage.map(\.bitPattern) == b.storage.map(\.bitPattern))
            }
        }
    }

    @Test("skip: every step is skipped, then the run stops as diverged (everyStepSkipped)")
    func skip() throws {
        let trainer = try Self.trainer(.skip, poison: .nan, row: 1)
        do {
            try trainer.run()
            Issue.record("a run with a NaN center row finished")
        } catch {
            guard case let .numerics(.everyStepSkipped(_, steps, _)) = error else { Issue.record("\(error)"); return }
            #expect(steps == trainer.loader.batchesPerEpoch)
        }
    }
}
