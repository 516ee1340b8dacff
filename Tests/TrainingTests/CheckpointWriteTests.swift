import Foundation
import Synchronization
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// A writer that works for the first `successes` writes, then fails as a full disk would.
final class FailingWriter: CheckpointFileWriter {
    let successes: Int
    let count = Atomic<Int>(0)
    init(successes: Int) { self.successes = successes }
    func write(_ data: Data, to path: String) throws(CheckpointError) {
        let (_, index) = count.add(1, ordering: .relaxed)
        guard index <= successes else { throw .writeFailed(path: path, reason: "No space left on device") }
        try DurableFileWriter().write(data, to: path)
    }
}

@Suite(.serialized) struct CheckpointWriteTests {
    @Test("an unwritable checkpoint folder fails before the first step")
    func failsAtFirstWrite() throws {
        let train = try attSlice(identityCount: 3)
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        trainer.checkpointDirectory = directory.path + "/checkpoints"
        trainer.fileWriter = FailingWriter(successes: 0)
        #expect(throws: TrainingError.checkpoint(.writeFailed(path: directory.path + "/checkpoints/.write-probe",
                                                             reason: "No space left on device"))) {
            try trainer.run()
        }
        #expect(trainer.step == 0)
        // A file where the folder should be: the same, without injection.
        let blocked = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        try Data("x".utf8).write(to: URL(fileURLWithPath: directory.path + "/file"))
        blocked.checkpointDirectory = directory.path + "/file/checkpoints"
        #expect(throws: TrainingError.self) { try blocked.run() }
        #expect(blocked.step == 0)
    }

    @Test("a write failure mid-run is a typed error and the previous checkpoint stays loadable")
    func previousCheckpointSurvives() throws {
        let train = try attSlice(identityCount: 3)
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        trainer.checkpointDirectory = directory.path
        trainer.fileWriter = FailingWriter(successes: 2)  // the probe and epoch 1; epoch 2 fails
        do {
            try trainer.run()
            Issue.record("the failed write went unnoticed")
        } catch {
            guard case .checkpoint(.writeFailed(let path, _)) = error else { Issue.record("\(error)"); return }
            #expect(path == TrainingCheckpoint.path(in: directory.path, step: 6))
            #expect(error.description.contains("previous file there is unchanged"))
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names == ["best.safetensors", "step-00000003.safetensors"])
        let resumed = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        try resumed.restore(from: try #require(TrainingCheckpoint.latest(in: directory.path)))
        #expect(resumed.step == 3)
    }

    @Test("a full disk (a 256 KiB tmpfs) leaves the previous file and no temporary file",
          .enabled(if: TinyFilesystem.canMount))
    func fullDisk() throws {
        let filesystem = try TinyFilesystem(kibibytes: 256)
        let path = filesystem.path + "/state.safetensors"
        let writer = DurableFileWriter()
        try writer.write(Data(repeating: 1, count: 100_000), to: path)
        do {
            try writer.write(Data(repeating: 2, count: 400_000), to: path)
            Issue.record("a 400 kB write into 256 KiB succeeded")
        } catch {
            guard case .writeFailed(let failed, let reason) = error else { Issue.record("\(error)"); return }
            #expect(failed == path)
            #expect(reason.contains("space"), "\(reason)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(repeating: 1, count: 100_000))
        #expect(try FileManager.default.contentsOfDirectory(atPath: filesystem.path) == ["state.safetensors"])
    }
}

/// A small tmpfs mounted for one test (needs root and a kernel that allows it; else skipped).
final class TinyFilesystem {
    let path: String

    static let canMount: Bool = {
        guard let probe = try? TinyFilesystem(kibibytes: 64) else { return false }
        _ = probe
        return true
    }()

    init(kibibytes: Int) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("arcface-tmpfs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kibibytes)k", "tmpfs", path]) else {
            try? FileManager.default.removeItem(atPath: path)
            throw CocoaError(.fileWriteNoPermission)
        }
    }

    deinit {
        _ = Self.run("/bin/umount", [path])
        try? FileManager.default.removeItem(atPath: path)
    }

    static func run(_ executable: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
