import Foundation
import Testing
@testable import Optimizers

private func expectRate(_ scheduler: LearningRateScheduler, step: Int, _ expected: Double,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    let actual = scheduler.learningRate(atStep: step)
    #expect(abs(actual - expected) <= 1e-12 + 1e-12 * abs(expected),
            "step \(step): \(actual) vs \(expected)", sourceLocation: sourceLocation)
}

@Test func linearWarmupThenConstant() {
    // η = 0.1, W = 10: η·(s+1)/10 → 0.01 at s = 0, 0.05 at s = 4, 0.1 at s = 9; then 0.1.
    let scheduler = LearningRateScheduler(baseLearningRate: 0.1, warmupSteps: 10, totalSteps: 110, schedule: .constant)
    expectRate(scheduler, step: 0, 0.01)
    expectRate(scheduler, step: 4, 0.05)
    expectRate(scheduler, step: 9, 0.1)
    expectRate(scheduler, step: 10, 0.1)
    expectRate(scheduler, step: 500, 0.1)
}

@Test func cosineAfterWarmup() {
    // W = 10, S = 110 → T = 100. f = ½(1 + cos(π t/100)).
    let scheduler = LearningRateScheduler(baseLearningRate: 0.1, warmupSteps: 10, totalSteps: 110,
                                          schedule: .cosine(finalFraction: 0))
    expectRate(scheduler, step: 0, 0.01)
    expectRate(scheduler, step: 10, 0.1)                  // t = 0
    expectRate(scheduler, step: 35, 0.0853553390593274)   // t = 25: 0.05·(1 + √2/2)
    expectRate(scheduler, step: 60, 0.05)                 // t = 50
    expectRate(scheduler, step: 110, 0)                   // t = T
    expectRate(scheduler, step: 1000, 0)                  // clamped
    // finalFraction 0.1: f = 0.1 + 0.9·½(1 + cos(π t/T)) → 0.055 at t = 50, 0.01 at the end.
    let floor = LearningRateScheduler(baseLearningRate: 0.1, warmupSteps: 10, totalSteps: 110,
                                      schedule: .cosine(finalFraction: 0.1))
    expectRate(floor, step: 60, 0.055)
    expectRate(floor, step: 110, 0.01)
}

@Test func stepMilestonesAreAbsoluteSteps() {
    let scheduler = LearningRateScheduler(baseLearningRate: 0.1, warmupSteps: 0, totalSteps: 100,
                                          schedule: .step(milestones: [30, 60], factor: 0.1))
    expectRate(scheduler, step: 0, 0.1)
    expectRate(scheduler, step: 29, 0.1)
    expectRate(scheduler, step: 30, 0.01)
    expectRate(scheduler, step: 59, 0.01)
    expectRate(scheduler, step: 60, 0.001)
    expectRate(scheduler, step: 99, 0.001)
    // With a warm-up of 5 steps the milestones still count from step 0.
    let warm = LearningRateScheduler(baseLearningRate: 0.1, warmupSteps: 5, totalSteps: 100,
                                     schedule: .step(milestones: [30], factor: 0.5))
    expectRate(warm, step: 1, 0.04)   // 0.1·2/5
    expectRate(warm, step: 29, 0.1)
    expectRate(warm, step: 30, 0.05)
}

@Test func polynomialDecay() {
    // power 2, W = 0, S = 100: η(1 − s/100)².
    let scheduler = LearningRateScheduler(baseLearningRate: 0.1, warmupSteps: 0, totalSteps: 100,
                                          schedule: .polynomial(power: 2))
    expectRate(scheduler, step: 0, 0.1)
    expectRate(scheduler, step: 50, 0.025)
    expectRate(scheduler, step: 90, 0.001)
    expectRate(scheduler, step: 100, 0)
    expectRate(scheduler, step: 150, 0)
    // With W = 10, S = 110 the decay is measured from the end of the warm-up: t = 50 of 100.
    let warm = LearningRateScheduler(baseLearningRate: 0.1, warmupSteps: 10, totalSteps: 110,
                                     schedule: .polynomial(power: 2))
    expectRate(warm, step: 60, 0.025)
    expectRate(warm, step: 9, 0.1)
}

@Test func schedulerCodableRoundTrip() throws {
    let schedules: [LearningRateSchedule] = [.constant, .cosine(finalFraction: 0.05),
                                             .step(milestones: [10, 20], factor: 0.1), .polynomial(power: 2)]
    for schedule in schedules {
        let scheduler = LearningRateScheduler(baseLearningRate: 0.1, warmupSteps: 5, totalSteps: 50, schedule: schedule)
        let data = try JSONEncoder().encode(scheduler)
        #expect(try JSONDecoder().decode(LearningRateScheduler.self, from: data) == scheduler)
    }
    // The JSON form a configuration file uses.
    let json = #"{"baseLearningRate":0.2,"warmupSteps":3,"totalSteps":13,"schedule":{"cosine":{"finalFraction":0}}}"#
    let decoded = try JSONDecoder().decode(LearningRateScheduler.self, from: Data(json.utf8))
    #expect(decoded == LearningRateScheduler(baseLearningRate: 0.2, warmupSteps: 3, totalSteps: 13,
                                             schedule: .cosine(finalFraction: 0)))
    expectRate(decoded, step: 8, 0.1)   // t = 5 of T = 10: 0.2·½
}

@Test func sgdConfigurationCodableRoundTrip() throws {
    for configuration in [SGDConfiguration(), SGDConfiguration(momentum: 0.5, nesterov: true, weightDecay: 1e-4,
                                                               decoupledWeightDecay: true, gradientClipNorm: 5)] {
        let data = try JSONEncoder().encode(configuration)
        #expect(try JSONDecoder().decode(SGDConfiguration.self, from: data) == configuration)
    }
    // Defaults: μ = 0.9, λ = 5e-4, coupled, no clipping.
    let defaults = SGDConfiguration()
    #expect(defaults.momentum == 0.9 && defaults.weightDecay == 5e-4 && !defaults.nesterov
            && !defaults.decoupledWeightDecay && defaults.gradientClipNorm == nil)
}
