import Foundation
import ArcFace


/// The AT&T faces beside the checkout (`../shared/data/att_faces`), or `$ARCFACE_DATA`.
let attFacesDirectory: String = {
    if let override = ProcessInfo.processInfo.environment["ARCFACE_DATA"] { return override }
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data/att_faces").path
}()

/// A small, fast configuration for tests: a two-stage backbone with few channels.
func tinyConfiguration(loss: LossKind = .arcface) -> TrainingConfiguration {
    var c = TrainingConfiguration.base
    c.backbone.stageChannels = [4, 8]
    c.backbone.embeddingDimension = 16
    c.loss = loss
    c.epochs = 4
    c.warmupEpochs = 1
    c.batchSize = 10
    c.learningRate = 0.05
    c.heldOutIdentities = 3
    c.threads = 1
    return c
}

/// The first `identityCount` identities of AT&T.
func attSlice(identityCount: Int) throws -> FaceDataset {
    try FaceDataset.load(directory: attFacesDirectory).prefix(identityCount: identityCount)
}
