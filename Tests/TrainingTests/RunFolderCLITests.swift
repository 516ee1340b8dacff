import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// `arcface train`: the output folder's guards and the options that combine with `--resume`.
@Suite(.serialized) struct RunFolderCLITests {
    static func run(_ binary: String, _ arguments: [String]) throws -> (status: Int32, text: String) {
        let running = try ArcFaceBinary.start(binary, arguments)
        running.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.05)  // the pipe's last bytes
        return (running.process.terminationStatus, running.text)
    }

    @Test("fresh run into a used folder, --output/--validation-identities with --resume, a finished run, a locked folder, a diverged run",
          .enabled(if: ArcFaceBinary.path != nil))
    func guards() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let configFile = directory.path + "/config.json"
        try RunFolderGuardTests.configuration().jsonData().write(to: URL(fileURLWithPath: configFile))
        let output = directory.path + "/run"
        let train = ["train", "--data", attFacesDirectory, "--config", configFile]
        let first = try Self.run(binary, train + ["--output", output])
        #expect(first.status == 0, "\(first.text)")
        let checkpoints = try RunFolderGuardTests.contents(output + "/checkpoints")

        // A fresh run into it: exit 1, nothing changed.
        let fresh = try Self.run(binary, train + ["--output", output, "--seed", "9"])
        #expect(fresh.status == 1)
        #expect(fresh.text.contains("error: \(output) already holds the training checkpoints of a run"), "\(fresh.text)")
        #expect(fresh.text.contains("--resume \(output)"))
        #expect(!fresh.text.contains("epoch "))
        #expect(try RunFolderGuardTests.contents(output + "/checkpoints") == checkpoints)

        // Options a resume cannot honour: usage errors.
        let elsewhere = try Self.run(binary, ["train", "--resume", output, "--output", directory.path + "/elsewhere"])
        #expect(elsewhere.status == 64 && elsewhere.text.contains("drop --output"), "\(elsewhere.text)")
        let validation = try Self.run(binary, ["train", "--resume", output, "--validation-identities", "3"])
        #expect(validation.status == 64 && validation.text.contains("drop the hyperparameter options"), "\(validation.text)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/elsewhere"))

        // Resuming the finished run: said so, nothing trained or changed, exit 0 (ResumeOrOverwriteTests).
        let again = try Self.run(binary, ["train", "--resume", output, "--output", output])
        #expect(again.status == 0, "\(again.text)")
        #expect(again.text.contains("run already finished (epoch 1/1"))
        #expect(!again.text.contains("epoch   1/1 |"), "no epoch is trained again")

        // Another process holds the folder.
        let lock = try RunLock(folder: output)
        let locked = try Self.run(binary, ["train", "--resume", output])
        #expect(locked.status == 1 && locked.text.contains("another arcface process is training in \(output)"), "\(locked.text)")
        lock.release()

        // A diverging run with --on-non-finite skip: a clear error, not a metrics encoding failure.
        let diverged = directory.path + "/diverged"
        let skip = try Self.run(binary, train + ["--output", diverged, "--lr", "1e6", "--on-non-finite", "skip", "--epochs", "3"])
        #expect(skip.status == 1)
        #expect(skip.text.contains("was skipped for non-finite values: the run diverged"), "\(skip.text)")
        #expect(!skip.text.contains("not encodable"))
        #expect(!FileManager.default.fileExists(atPath: diverged + "/metrics.json"))
    }

    @Test("a SIGINT after the last epoch: the run finishes evaluating, says so and exits 0",
          .enabled(if: ArcFaceBinary.path != nil))
    func signalAfterLastEpoch() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let configFile = directory.path + "/config.json"
        var configuration = RunFolderGuardTests.configuration()
        configuration.heldOutIdentities = 38  // a longer evaluation: 380 held-out images
        try configuration.jsonData().write(to: URL(fileURLWithPath: configFile))
        let output = directory.path + "/run"
        let running = try ArcFaceBinary.start(binary, ["train", "--data", attFacesDirectory, "--config", configFile, "--output", output])
        try running.waitForLine(containing: "epoch   1/1")
        running.process.interrupt()
        running.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.05)
        #expect(running.process.terminationStatus == 0, "\(running.text)")
        #expect(!running.text.contains("stopping after the current step"))
        if running.text.contains("signal \(SIGINT)") {
            #expect(running.text.contains("training has finished; finishing the evaluation and saving"))
            #expect(!running.text.contains("the stop came after the last step"))
        }
        #expect(FileManager.default.fileExists(atPath: output + "/metrics.json"))
    }
}
