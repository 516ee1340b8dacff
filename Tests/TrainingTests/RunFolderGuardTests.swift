import Foundation
import Testing
import _TestSupport
@_spi(FaultInjection) @testable import Training
import ArcFace

/// The output folder's guards: a fresh run never adopts another run's checkpoints, one run per
/// folder at a time (lock), a resume refuses changed training images.
@Suite(.serialized) struct RunFolderGuardTests {
    /// 5 training identities of AT&T (35 held out), 50 images, batch 10: 5 steps, 1 epoch.
    static func configuration() -> TrainingConfiguration {
        var c = tinyConfiguration()
        c.epochs = 1
        c.warmupEpochs = 0
        c.heldOutIdentities = 35
        return c
    }

    /// The names and bytes of every file in `directory`.
    static func contents(_ directory: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            result[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
        }
        return result
    }

    @Test("a fresh run into a folder holding another run's checkpoints is refused before anything changes")
    func freshRunRefusesOldCheckpoints() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        _ = try Experiment.run(configuration: Self.configuration(), dataDirectory: attFacesDirectory, outputDirectory: output)
        let before = try Self.contents(output + "/checkpoints")
        let model = try Data(contentsOf: URL(fileURLWithPath: output + "/model.safetensors"))
        var other = Self.configuration()
        other.seed = 7
        var loaded = false
        #expect(throws: TrainingError.runFolder(.holdsCheckpoints(directory: output))) {
            try Experiment.run(configuration: other, dataDirectory: attFacesDirectory, outputDirectory: output,
                               onDataset: { _ in loaded = true })
        }
        #expect(!loaded, "refused before the data set is loaded")
        #expect(try Self.contents(output + "/checkpoints") == before)
        #expect(try Data(contentsOf: URL(fileURLWithPath: output + "/model.safetensors")) == model)
        #expect(TrainingError.runFolder(.holdsCheckpoints(directory: output)).description.contains("--resume \(output)"))
        // Resuming it is still possible (the finished run re-evaluates).
        _ = try Experiment.run(configuration: Self.configuration(), dataDirectory: attFacesDirectory, outputDirectory: output, resume: true)
        // replacingCheckpoints (`--overwrite`): the earlier run's checkpoints go, the new run's stay.
        _ = try Experiment.run(configuration: other, dataDirectory: attFacesDirectory, outputDirectory: output,
                               replacingCheckpoints: true)
        let latest = try #require(TrainingCheckpoint.latest(in: output + "/checkpoints"))
        #expect(try TrainingCheckpoint.configuration(at: latest).configuration.seed == 7)
        #expect(try TrainingCheckpoint.configuration(at: output + "/checkpoints/" + TrainingCheckpoint.bestName).configuration.seed == 7)
    }

    @Test("one run per output folder: a held lock is RunFolderError.inUse")
    func lock() throws {
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        let held = try RunLock(folder: output)
        #expect(throws: TrainingError.runFolder(.inUse(directory: output))) {
            try Experiment.run(configuration: Self.configuration(), dataDirectory: attFacesDirectory, outputDirectory: output)
        }
        #expect(throws: RunFolderError.inUse(directory: output)) { try RunLock(folder: output) }
        held.release()
        _ = try RunLock(folder: output)  // free again (and freed again at once)
        #expect(!FileManager.default.fileExists(atPath: output + "/checkpoints"), "nothing was trained")
    }

    /// A training checkpoint written after 2 steps, and its tensors and metadata.
    static func checkpoint(in directory: String) throws -> (path: String, tensors: [String: Tensor], metadata: [String: String]) {
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: try attSlice(identityCount: 3))
        trainer.checkpointDirectory = directory
        trainer.stopAfterStep = 2
        try trainer.run()
        let path = TrainingCheckpoint.path(in: directory, step: 2)
        let (tensors, metadata) = try Safetensors.read(path: path)
        return (path, tensors, metadata)
    }

    @Test("a flipped bit fails the CRC-32; NaN values are refused naming the tensor, also without a checksum")
    func corruptValues() throws {
        let directory = TemporaryDirectory()
        let (path, tensors, metadata) = try Self.checkpoint(in: directory.path)
        #expect(metadata[Safetensors.checksumKey]?.count == 8, "checkpoints carry a CRC-32")
        // One bit of the last tensor byte.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 1] ^= 0x01
        let flipped = directory.path + "/flipped.safetensors"
        try bytes.write(to: URL(fileURLWithPath: flipped))
        do {
            _ = try TrainingCheckpoint.read(path: flipped)
            Issue.record("a flipped bit went unnoticed")
        } catch {
            guard case let .malformed(file, reason) = error else { Issue.record("\(error)"); return }
            #expect(file == flipped && reason.contains("CRC-32"))
        }
        // NaN written over a weight, in a file without a checksum (as older checkpoints are).
        let name = "head.centers"
        var poisoned = tensors
        poisoned[name]!.storage[3] = .nan
        var old = metadata
        old[Safetensors.checksumKey] = nil
        let nan = directory.path + "/nan.safetensors"
        try Safetensors.encode(poisoned.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: old)
            .write(to: URL(fileURLWithPath: nan))
        #expect(throws: CheckpointError.nonFiniteTensor(path: nan, name: name)) { try TrainingCheckpoint.read(path: nan) }
        // Momentum too.
        var momentum = tensors
        momentum["momentum." + name]!.storage[0] = .infinity
        try Safetensors.encode(momentum.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: old)
            .write(to: URL(fileURLWithPath: nan))
        #expect(throws: CheckpointError.nonFiniteTensor(path: nan, name: "momentum." + name)) { try TrainingCheckpoint.read(path: nan) }
        // The unchanged tensors without a checksum stay loadable (older checkpoints).
        let unchecked = directory.path + "/unchecked.safetensors"
        try Safetensors.encode(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: old)
            .write(to: URL(fileURLWithPath: unchecked))
        _ = try TrainingCheckpoint.read(path: unchecked)
        // A final model with a NaN weight.
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: try attSlice(identityCount: 3))
        try Experiment.save(trainer.model, metrics: nil, identities: [], to: directory.path + "/model")
        let modelPath = directory.path + "/model/model.safetensors"
        var (modelTensors, modelMetadata) = try Safetensors.read(path: modelPath)
        #expect(modelMetadata[Safetensors.checksumKey] != nil)
        modelMetadata[Safetensors.checksumKey] = nil
        modelTensors[name]!.storage[0] = .nan
        try Safetensors.encode(modelTensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: modelMetadata)
            .write(to: URL(fileURLWithPath: modelPath))
        #expect(throws: CheckpointError.nonFiniteTensor(path: modelPath, name: name)) { try Experiment.loadModel(path: modelPath) }
    }

    @Test("non-finite weights are never written: a typed error, no file")
    func refuseWriting() throws {
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: try attSlice(identityCount: 3))
        let name = trainer.model.parameters[0].name
        trainer.model.parameters[0].value.storage[0] = .nan
        #expect(throws: CheckpointError.nonFiniteWrite(path: TrainingCheckpoint.path(in: directory.path, step: 0), name: name)) {
            try TrainingCheckpoint.write(trainer.trainingState, to: directory.path, writer: trainer.fileWriter)
        }
        #expect(throws: CheckpointError.nonFiniteWrite(path: directory.path + "/model.safetensors", name: name)) {
            try Experiment.save(trainer.model, metrics: nil, identities: [], to: directory.path)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test("resume: a step checkpoint with NaN weights is set aside like a truncated one; the run ends bit-identically")
    func resumeSkipsNaNCheckpoint() throws {
        BLAS.threadCount = 1
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        _ = try Experiment.run(configuration: ResumeFallbackTests.configuration(), dataDirectory: attFacesDirectory, outputDirectory: output)
        let finished = try Safetensors.read(path: output + "/model.safetensors").tensors
        let checkpoints = output + "/checkpoints"
        let newest = TrainingCheckpoint.path(in: checkpoints, step: 10)
        // NaN bytes over a weight, checksum recomputed: only the value check can notice.
        var (tensors, metadata) = try Safetensors.read(path: newest)
        tensors["head.centers"]!.storage[0] = .nan
        metadata[Safetensors.checksumKey] = nil
        try Safetensors.encode(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, metadata: metadata, checksum: true)
            .write(to: URL(fileURLWithPath: newest))
        var skipped: [(String, CheckpointError)] = []
        _ = try Experiment.run(configuration: ResumeFallbackTests.configuration(), dataDirectory: attFacesDirectory,
                               outputDirectory: output, resume: true, onCheckpointSkipped: { skipped.append(($0, $1)) })
        #expect(skipped.count == 1 && skipped.first?.1 == .nonFiniteTensor(path: newest, name: "head.centers"))
        #expect(FileManager.default.fileExists(atPath: newest + ".unloadable"))
        #expect(try Safetensors.read(path: output + "/model.safetensors").tensors == finished)
    }

    /// A folder of symbolic links to AT&T images: identities s1…s6, images 1…5 each.
    static func linkedDataset() throws -> TemporaryDirectory {
        let data = TemporaryDirectory()
        for identity in 1...6 {
            try FileManager.default.createDirectory(atPath: data.path + "/s\(identity)", withIntermediateDirectories: true)
            for image in 1...5 {
                try FileManager.default.createSymbolicLink(atPath: data.path + "/s\(identity)/\(image).pgm",
                                                           withDestinationPath: attFacesDirectory + "/s\(identity)/\(image).pgm")
            }
        }
        return data
    }

    @Test("resume refuses training images that changed since the checkpoint, saying what changed")
    func changedTrainingImages() throws {
        BLAS.threadCount = 1
        let data = try Self.linkedDataset()
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        var configuration = Self.configuration()
        configuration.heldOutIdentities = 2
        configuration.folds = 2
        let stop = StopRequest()
        stop.request()
        #expect(throws: TrainingError.self) {
            try Experiment.run(configuration: configuration, dataDirectory: data.path, outputDirectory: output, stopRequest: stop)
        }
        let checkpoint = try #require(TrainingCheckpoint.latest(in: output + "/checkpoints"))
        let identities = try #require(try Safetensors.read(path: checkpoint).metadata["identities"]
            .flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String] })
        let identity = identities[0]
        func resume() throws -> TrainingError? {
            do {
                _ = try Experiment.run(configuration: configuration, dataDirectory: data.path, outputDirectory: output,
                                       resume: true, stopRequest: stop)
            } catch { return error }
            return nil
        }
        // One image removed.
        let removed = data.path + "/\(identity)/5.pgm"
        try FileManager.default.removeItem(atPath: removed)
        guard case let .checkpoint(.trainingSetChanged(path, reason))? = try resume() else {
            Issue.record("a removed image went unnoticed"); return
        }
        #expect(path == checkpoint)
        #expect(reason.contains("20 → 19 images") && reason.contains("\(identity): 5 → 4 images"), "\(reason)")
        // Another file in its place (same count, another name).
        try FileManager.default.createSymbolicLink(atPath: data.path + "/\(identity)/9.pgm", withDestinationPath: attFacesDirectory + "/s9/9.pgm")
        guard case let .checkpoint(.trainingSetChanged(_, reason))? = try resume() else {
            Issue.record("a renamed image went unnoticed"); return
        }
        #expect(reason.contains("fingerprint"), "\(reason)")
        // Restored: resume goes on (and stops again at once, after a step).
        try FileManager.default.removeItem(atPath: data.path + "/\(identity)/9.pgm")
        try FileManager.default.createSymbolicLink(atPath: removed, withDestinationPath: attFacesDirectory + "/\(identity)/5.pgm")
        guard case .interrupted? = try resume() else { Issue.record("the unchanged data must resume"); return }
    }

    @Test("skip: a whole epoch of skipped steps in a row stops the run with a typed error")
    func everyStepSkipped() throws {
        let train = try attSlice(identityCount: 3)  // 3 steps per epoch
        let trainer = try Trainer(configuration: NonFiniteTests.configuration(.skip), trainingSet: train)
        trainer.afterBackward = NonFiniteTests.poison(at: Set(4...20))
        do {
            try trainer.run()
            Issue.record("a diverged run went on skipping")
        } catch {
            guard case let .numerics(.everyStepSkipped(step, steps, last)) = error else { Issue.record("\(error)"); return }
            #expect(step == 7 && steps == 3)
            #expect(last != nil && last!.isFinite)
        }
        #expect(trainer.model.namedTensors.allSatisfy { $0.tensor.isFinite })
    }

    @Test("non-finite held-out embeddings are a typed error counting the images")
    func nonFiniteEmbeddings() {
        let embedded = Tensor(shape: [3, 2], storage: [1, 0, .nan, 1, 0, .infinity])
        #expect(throws: TrainingError.numerics(.nonFiniteEmbeddings(count: 2, total: 3))) {
            try Experiment.checkFinite(embeddings: embedded)
        }
        #expect(TrainingError.numerics(.nonFiniteEmbeddings(count: 2, total: 3)).description
            .contains("the trained model produces non-finite embeddings on 2 of 3 held-out images"))
    }
}
