import Foundation
import Testing
import _TestSupport
@testable import Training
import ArcFace

/// `arcface train`: every bad option value is a usage error (exit 64) that names the option and
/// its accepted range, before any data is read; `--threads 0` means the library's default, as
/// the configuration key `threads` does.
@Suite struct UsageErrorCLITests {
    @Test("bad option values exit 64 naming the option; --threads 0 is accepted",
          .enabled(if: ArcFaceBinary.path != nil))
    func badValues() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        let base = ["train", "--data", directory.path + "/no-such-data", "--output", directory.path + "/run"]
        let cases: [([String], String)] = [
            (["--keep-checkpoints", "0"], "--keep-checkpoints"),
            (["--checkpoint-every-steps=-5"], "--checkpoint-every-steps"),
            (["--epochs", "-3"], "--epochs"),
            (["--threads", "100000"], "--threads must be in 0…1024"),
            (["--threads", "-1"], "--threads must be in 0…1024"),
            (["--margin", "5"], "angularMargin must be in"),
        ]
        for (options, named) in cases {
            let result = try RunFolderCLITests.run(binary, base + options)
            #expect(result.status == 64, "\(options): \(result.text)")
            #expect(result.text.contains(named), "\(options): \(result.text)")
            #expect(!result.text.contains("Missing value"), "\(options): \(result.text)")
        }
        // --threads 0 passes option validation: the run then fails on the missing data (exit 1).
        let zero = try RunFolderCLITests.run(binary, base + ["--threads", "0"])
        #expect(zero.status == 1, "\(zero.text)")
        #expect(!zero.text.contains("--threads"), "\(zero.text)")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/run/model.safetensors"))
    }
}
