import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// What a new user hit (issue 10): the command printed on a stop must run as pasted, `make train`
/// continues its own unfinished run (`--resume-or-overwrite`), and resuming a finished run says so.
@Suite(.serialized) struct ResumeOrOverwriteTests {
    // MARK: - Shell quoting

    @Test("shell quoting: plain words unchanged; spaces, quotes, the empty string and specials quoted")
    func quoting() {
        #expect(ShellCommand.quoted("/usr/bin/arcface") == "/usr/bin/arcface")
        #expect(ShellCommand.quoted("--data=a,b:c@d%e+f") == "--data=a,b:c@d%e+f")
        #expect(ShellCommand.quoted("my runs/a") == "'my runs/a'")
        #expect(ShellCommand.quoted("it's") == #"'it'\''s'"#)
        #expect(ShellCommand.quoted("") == "''")
        #expect(ShellCommand.quoted("$HOME") == "'$HOME'")
        #expect(ShellCommand.quoted("~/x") == "'~/x'", "no tilde expansion")
        #expect(ShellCommand(["a b", "", "c"]).description == "'a b' '' c")
    }

    @Test("a quoted command read back by /bin/sh gives the same words", .enabled(if: FileManager.default.isExecutableFile(atPath: "/bin/sh")))
    func quotingRoundTrip() throws {
        let words = ["plain", "with space", "it's", "", "'", "\"double\"", "$HOME `id` $(id)", "a\\b", "tab\there", "new\nline", "*", "x;y|z&", "~"]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", ShellCommand(["printf", "%s\\0"] + words).description]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let read = String(decoding: data, as: UTF8.self).split(separator: "\0", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(read == words)
    }

    @Test("the executable's absolute path: argument 0 made absolute, or the process's executable when found on PATH")
    func executablePath() {
        #expect(ShellCommand.executablePath(argument0: ".build/release/arcface", currentDirectory: "/home/u/my repo",
                                            processExecutable: "/elsewhere") == "/home/u/my repo/.build/release/arcface")
        #expect(ShellCommand.executablePath(argument0: "../bin/./arcface", currentDirectory: "/a/b", processExecutable: nil) == "/a/bin/arcface")
        #expect(ShellCommand.executablePath(argument0: "/opt/arcface", currentDirectory: "/a", processExecutable: "/x") == "/opt/arcface")
        #expect(ShellCommand.executablePath(argument0: "arcface", currentDirectory: "/a", processExecutable: "/usr/local/bin/arcface")
                == "/usr/local/bin/arcface")
        #expect(ShellCommand.executablePath(argument0: "arcface", currentDirectory: "/a", processExecutable: nil) == "arcface")
        #expect(ShellCommand.absolutePath("runs/x", currentDirectory: "/w") == "/w/runs/x")
        #expect(ShellCommand.absolutePath("/d/../e", currentDirectory: "/w") == "/e")
    }

    // MARK: - What a folder holds, and the choice of --resume-or-overwrite

    @Test("no run, unfinished (stopped; trained but unsaved), finished; another configuration is refused, fault options may differ")
    func folderContents() throws {
        BLAS.threadCount = 1
        let configuration = ResumeFallbackTests.configuration()  // 2 epochs × 5 steps
        let directory = TemporaryDirectory()
        let output = directory.path + "/run"
        #expect(try Experiment.contents(ofRunFolder: output) == .noRun)
        try FileManager.default.createDirectory(atPath: output + "/checkpoints", withIntermediateDirectories: true)
        #expect(try Experiment.resumeOrOverwrite(folder: output, configuration: configuration) == .noRun)

        // Stopped after its first step.
        let stop = StopRequest()
        stop.request()
        #expect(throws: TrainingError.self) {
            try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: output, stopRequest: stop)
        }
        let first = TrainingCheckpoint.path(in: output + "/checkpoints", step: 1)
        #expect(TrainingError.interrupted(step: 1, signal: nil, checkpoint: first).description.contains("--resume \(output)"))
        guard case let .unfinished(run) = try Experiment.contents(ofRunFolder: output) else { Issue.record("unfinished"); return }
        #expect(run.checkpoint == first && run.finishedEpochs == 0 && !run.isTrained && !run.resultsSaved)
        #expect(run.configuration == configuration && run.dataDirectory == attFacesDirectory)
        #expect(try Experiment.resumeOrOverwrite(folder: output, configuration: configuration) == .unfinished(run))

        // Other settings: refused, naming them; options that do not change a step's arithmetic may differ.
        var other = configuration
        other.epochs = 3
        other.learningRate *= 2
        #expect(throws: TrainingError.runFolder(.holdsOtherUnfinishedRun(directory: output, finishedEpochs: 0, epochs: 2,
                                                                         differingKeys: ["epochs", "learningRate"]))) {
            try Experiment.resumeOrOverwrite(folder: output, configuration: other)
        }
        let message = TrainingError.runFolder(.holdsOtherUnfinishedRun(directory: output, finishedEpochs: 0, epochs: 2,
                                                                       differingKeys: ["epochs"])).description
        #expect(message.contains("unfinished run (epoch 0/2)") && message.contains("differs in epochs")
                && message.contains("--resume \(output)") && message.contains("--overwrite"))
        var faults = configuration
        faults.keepCheckpoints = 7
        faults.onNonFinite = .skip
        #expect(try Experiment.resumeOrOverwrite(folder: output, configuration: faults) == .unfinished(run))

        // While another process holds the folder, what it holds is changing: in use.
        let lock = try RunLock(folder: output)
        #expect(throws: TrainingError.runFolder(.inUse(directory: output))) { try Experiment.contents(ofRunFolder: output) }
        lock.release()

        // Resumed to the end: finished, and then another configuration starts afresh (no error).
        _ = try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: output, resume: true)
        guard case let .finished(done) = try Experiment.contents(ofRunFolder: output) else { Issue.record("finished"); return }
        #expect(done.finishedEpochs == 2 && done.isTrained && done.resultsSaved && done.isFinished)
        #expect(try Experiment.resumeOrOverwrite(folder: output, configuration: other) == .finished(done))

        // Trained to the end but the results not saved (killed while evaluating): unfinished.
        try FileManager.default.removeItem(atPath: output + "/metrics.json")
        guard case let .unfinished(unsaved) = try Experiment.contents(ofRunFolder: output) else { Issue.record("unsaved"); return }
        #expect(unsaved.isTrained && !unsaved.isFinished && unsaved.checkpoint == done.checkpoint)
        // Resuming it only evaluates and saves: no session of zero images is reported.
        let evaluated = try Experiment.run(configuration: configuration, dataDirectory: attFacesDirectory, outputDirectory: output, resume: true)
        #expect(evaluated.metrics.session == nil, "\(String(describing: evaluated.metrics.session))")
        #expect(evaluated.metrics.timing.images == 100, "the totals of the sessions that trained")
        #expect(FileManager.default.fileExists(atPath: output + "/metrics.json"))
    }

    // MARK: - The command

    static func run(_ binary: String, _ arguments: [String]) throws -> (status: Int32, text: String) {
        try RunFolderCLITests.run(binary, arguments)
    }

    /// The relative path and bytes of every file under `directory`.
    static func files(_ directory: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for name in try FileManager.default.subpathsOfDirectory(atPath: directory) {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isFolder), !isFolder.boolValue {
                result[name] = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))
            }
        }
        return result
    }

    /// Runs `command` with /bin/sh in `directory`.
    static func shell(_ command: String, in directory: String) throws -> (status: Int32, text: String) {
        let running = try ArcFaceBinary.start("/bin/sh", ["-c", "cd / && cd " + ShellCommand.quoted(directory) + " && " + command])
        running.waitUntilExit()
        return (running.process.terminationStatus, running.text)
    }

    @Test("--resume of a finished run: says so and what to do, changes nothing; the printed commands run; an unsaved one is evaluated without a 0 progress or throughput",
          .enabled(if: ArcFaceBinary.path != nil))
    func finishedRun() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let configFile = directory.path + "/config.json"
        try RunFolderGuardTests.configuration().jsonData().write(to: URL(fileURLWithPath: configFile))
        let output = directory.path + "/it's a run"
        let first = try Self.run(binary, ["train", "--data", attFacesDirectory, "--config", configFile, "--output", output])
        #expect(first.status == 0, "\(first.text)")
        let before = try Self.files(output)

        let again = try Self.run(binary, ["train", "--resume", output])
        #expect(again.status == 0, "\(again.text)")
        #expect(again.text.contains("run already finished (epoch 1/1"), "\(again.text)")
        #expect(again.text.contains("nothing to resume, nothing was changed"))
        #expect(!again.text.contains("training: 0/") && !again.text.contains(" 0 images/s") && !again.text.contains("ETA"), "\(again.text)")
        #expect(!again.text.contains("configuration:"), "nothing is loaded or trained")
        #expect(try Self.files(output) == before)
        // The two commands it prints run as pasted, from another folder.
        let lines = again.text.split(separator: "\n").map(String.init)
        let evaluate = try #require(lines.first { $0.contains("to re-evaluate its model: ") })
            .components(separatedBy: "to re-evaluate its model: ")[1]
        #expect(evaluate.hasPrefix("/"), "an absolute executable path: \(evaluate)")
        let evaluated = try Self.shell(evaluate, in: "/")
        #expect(evaluated.status == 0 && evaluated.text.contains("verification on held-out identities"), "\(evaluate)\n\(evaluated.text)")
        let retrain = try #require(lines.first { $0.contains("to train it again from scratch (replacing it): ") })
            .components(separatedBy: "(replacing it): ")[1]
        #expect(retrain.contains("--overwrite"))
        let retrained = try Self.shell(retrain, in: "/")
        #expect(retrained.status == 0 && retrained.text.contains("epoch   1/1 |"), "\(retrain)\n\(retrained.text)")

        // Trained but not saved: evaluated and saved, said so, no bar at 0 and no session of 0 images.
        try FileManager.default.removeItem(atPath: output + "/metrics.json")
        let unsaved = try Self.run(binary, ["train", "--resume", output])
        #expect(unsaved.status == 0, "\(unsaved.text)")
        #expect(unsaved.text.contains("training had finished (epoch 1/1) but its results were not saved"), "\(unsaved.text)")
        #expect(!unsaved.text.contains("training: 0/") && !unsaved.text.contains(" 0 images/s") && !unsaved.text.contains("this session"),
                "\(unsaved.text)")
        #expect(FileManager.default.fileExists(atPath: output + "/metrics.json"))
    }

    @Test("--resume-or-overwrite: starts a new folder, resumes its unfinished run, refuses one of other settings, replaces a finished one",
          .enabled(if: ArcFaceBinary.path != nil))
    func resumeOrOverwriteCommand() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let configFile = directory.path + "/config.json"
        var configuration = RunFolderGuardTests.configuration()
        configuration.epochs = 2  // 5 steps per epoch: checkpoints at steps 5 and 10
        try configuration.jsonData().write(to: URL(fileURLWithPath: configFile))
        let output = directory.path + "/run"
        let train = ["train", "--data", attFacesDirectory, "--config", configFile, "--output", output, "--resume-or-overwrite"]

        let fresh = try Self.run(binary, train)
        #expect(fresh.status == 0 && fresh.text.contains("epoch   2/2 |"), "\(fresh.text)")
        #expect(!fresh.text.contains("resuming"))

        // Unfinished: the newest checkpoint (epoch 2) gone, epoch 1's is the newest.
        try FileManager.default.removeItem(atPath: TrainingCheckpoint.path(in: output + "/checkpoints", step: 10))
        let stepFive = TrainingCheckpoint.path(in: output + "/checkpoints", step: 5)
        let otherSettings = try Self.run(binary, train + ["--lr", "0.01"])
        #expect(otherSettings.status == 1, "\(otherSettings.text)")
        #expect(otherSettings.text.contains("error: \(output) holds an unfinished run (epoch 1/2) with other settings"), "\(otherSettings.text)")
        #expect(otherSettings.text.contains("differs in learningRate"))
        #expect(TrainingCheckpoint.latest(in: output + "/checkpoints") == stepFive, "nothing was changed")
        let resumed = try Self.run(binary, train + ["--keep-checkpoints", "2"])
        #expect(resumed.status == 0, "\(resumed.text)")
        #expect(resumed.text.contains("holds an unfinished run of these settings (epoch 1/2): resuming from \(stepFive)"), "\(resumed.text)")
        #expect(!resumed.text.contains("epoch   1/2 |") && resumed.text.contains("epoch   2/2 |"), "only epoch 2 is trained")
        #expect(resumed.text.contains("training, all 2 sessions: "))

        // Finished: started afresh (one session again), whatever the settings.
        let replaced = try Self.run(binary, train + ["--lr", "0.01"])
        #expect(replaced.status == 0, "\(replaced.text)")
        #expect(replaced.text.contains("holds a finished run (epoch 2/2): starting afresh"), "\(replaced.text)")
        #expect(replaced.text.contains("epoch   1/2 |") && !replaced.text.contains("all 2 sessions"))

        // With --overwrite or --resume: a usage error.
        #expect(try Self.run(binary, train + ["--overwrite"]).status == 64)
        #expect(try Self.run(binary, ["train", "--resume", output, "--resume-or-overwrite"]).status == 64)
    }
}
