import Foundation
import Testing
import _TestSupport
@_spi(FaultInjection) import Training
import ArcFace

@Suite(.serialized) struct InterruptTests {
    @Test("a stop request from another thread ends the run after the current step, with a checkpoint that resumes exactly")
    func stopRequest() throws {
        let train = try attSlice(identityCount: 3)
        let directory = TemporaryDirectory()
        let trainer = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        trainer.checkpointDirectory = directory.path
        let request = trainer.stopRequest
        trainer.afterBackward = { step, _ in
            // The request arrives mid-step (here: during step 4, from another thread).
            if step == 4 { DispatchQueue.global().sync { _ = request.request(signal: SIGTERM) } }
        }
        let outcome = try trainer.run()
        #expect(outcome == .stopped(step: 5, checkpoint: TrainingCheckpoint.path(in: directory.path, step: 5)))
        #expect(request.signal == SIGTERM)
        #expect(request.request(), "a second request reports that one was already made")

        let resumed = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        try resumed.restore(from: TrainingCheckpoint.path(in: directory.path, step: 5))
        try resumed.run()
        let reference = try Trainer(configuration: ResumeTests.configuration(), trainingSet: train)
        try reference.run()
        #expect(ResumeTests.state(resumed) == ResumeTests.state(reference))
    }

    @Test("arcface train: SIGINT → checkpoint and status 130, --resume finishes; two signals → killed at once",
          .enabled(if: ArcFaceBinary.path != nil))
    func binary() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        var configuration = tinyConfiguration()
        configuration.epochs = 8
        configuration.heldOutIdentities = 35  // 5 training identities, 50 images, 5 steps per epoch
        let configFile = directory.path + "/config.json"
        try configuration.jsonData().write(to: URL(fileURLWithPath: configFile))
        let output = directory.path + "/it's my run"  // a space and a quote the printed command must survive

        // One SIGINT after the first epoch line.
        let first = try ArcFaceBinary.start(binary, ["train", "--data", attFacesDirectory, "--config", configFile, "--output", output])
        try first.waitForLine(containing: "epoch   1/8")
        first.process.interrupt()
        first.waitUntilExit()
        #expect(first.process.terminationReason == .exit)
        #expect(first.process.terminationStatus == 130, "\(first.text)")
        #expect(first.text.contains("stopped after step"))
        let checkpoint = try #require(TrainingCheckpoint.latest(in: output + "/checkpoints"))
        #expect(!FileManager.default.fileExists(atPath: output + "/metrics.json"))

        // The printed command continues it as pasted into a shell, from another folder (here /),
        // without arcface on PATH: the executable's absolute path, quoted absolute paths.
        let line = try #require(first.text.split(separator: "\n").first { $0.hasPrefix("continue with: ") }, "\(first.text)")
        let command = String(line.dropFirst("continue with: ".count))
        #expect(command == ShellCommand([ShellCommand.absolutePath(binary), "train", "--resume", output,
                                         "--data", ShellCommand.absolutePath(attFacesDirectory)]).description, "\(command)")
        #expect(command.hasPrefix("/"), "no bare command name, which is not on PATH")
        let second = try ArcFaceBinary.start("/bin/sh", ["-c", "cd / && " + command])
        second.waitUntilExit()
        #expect(second.process.terminationStatus == 0, "\(second.text)")
        #expect(second.text.contains("resuming from \(checkpoint)"))
        #expect(second.text.contains("epoch   8/8"))
        // Timing: all sessions' totals and this session's share, each labelled.
        #expect(second.text.contains("training, all 2 sessions: "), "\(second.text)")
        #expect(second.text.contains("training, this session (2 of 2): "))
        #expect(FileManager.default.fileExists(atPath: output + "/metrics.json"))

        // SIGTERM twice: no waiting for the step (the default backbone: a step takes seconds in debug).
        let third = try ArcFaceBinary.start(binary, ["train", "--data", attFacesDirectory, "--output", directory.path + "/run3",
                                                     "--held-out-identities", "35", "--batch-size", "50", "--threads", "1"])
        try third.waitForLine(containing: "OpenBLAS:")
        kill(third.process.processIdentifier, SIGTERM)
        try third.waitForLine(containing: "stopping after the current step")
        kill(third.process.processIdentifier, SIGTERM)
        third.waitUntilExit()
        #expect(third.process.terminationReason == .uncaughtSignal)
        #expect(third.process.terminationStatus == SIGTERM)
    }
}

/// The `arcface` executable built beside the test bundle, if any.
enum ArcFaceBinary {
    static let path: String? = {
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var folder = runner.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent("arcface").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            folder = folder.deletingLastPathComponent()
        }
        return nil
    }()

    /// A running `arcface` whose standard output and error are collected.
    final class Running: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var collected = Data()
        private var reachedEndOfOutput = false
        var text: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }

        init(_ executable: String, _ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
                let data = handle.availableData
                guard let self else { return }
                self.lock.withLock {
                    if data.isEmpty { self.reachedEndOfOutput = true } else { self.collected.append(data) }
                }
                if data.isEmpty { handle.readabilityHandler = nil }
            }
            try process.run()
        }

        /// Waits for the process to exit and for its output to be read to the end (the
        /// readability handler delivers the last bytes after the exit; reading `text` right after
        /// `process.waitUntilExit()` can miss them on a loaded machine).
        func waitUntilExit() {
            process.waitUntilExit()
            let deadline = Date().addingTimeInterval(30)
            while !lock.withLock({ reachedEndOfOutput }), Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        }

        /// Waits (up to 2 minutes) until the output contains `text`.
        func waitForLine(containing needle: String) throws {
            let deadline = Date().addingTimeInterval(120)
            while !text.contains(needle) {
                guard process.isRunning, Date() < deadline else {
                    throw CocoaError(.fileReadUnknown, userInfo: ["output": text])
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
    }

    static func start(_ executable: String, _ arguments: [String]) throws -> Running {
        try Running(executable, arguments)
    }
}
