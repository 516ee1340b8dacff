import Foundation
import Testing
@testable import Training
import _TestSupport

/// `arcface train --validation-identities`: the flag reaches the configuration (its typed error
/// names the key and the counts) and a valid split shows the validation AUC on the epoch line.
@Suite("CLI validation split flag")
struct ValidationFlagTests {
    @Test("--validation-identities 1 → validationSplitTooSmall, exit 1; --validation-identities 2 → val AUC per epoch",
          .enabled(if: ArcFaceBinary.path != nil))
    func flag() throws {
        let binary = try #require(ArcFaceBinary.path)
        let directory = TemporaryDirectory()
        var configuration = tinyConfiguration()
        configuration.epochs = 1
        configuration.heldOutIdentities = 34  // 6 training identities: 4 fit, 2 validate
        let configFile = directory.path + "/config.json"
        try configuration.jsonData().write(to: URL(fileURLWithPath: configFile))

        let refused = try ArcFaceBinary.start(binary, ["train", "--data", attFacesDirectory, "--config", configFile,
                                                       "--output", directory.path + "/refused", "--validation-identities", "1"])
        refused.waitUntilExit()
        #expect(refused.process.terminationStatus == 1, "\(refused.text)")
        #expect(refused.text.contains("validationIdentities = 1 of 6 training identities"), "\(refused.text)")

        let run = try ArcFaceBinary.start(binary, ["train", "--data", attFacesDirectory, "--config", configFile,
                                                   "--output", directory.path + "/run", "--validation-identities", "2"])
        run.waitUntilExit()
        #expect(run.process.terminationStatus == 0, "\(run.text)")
        #expect(run.text.contains("val AUC"), "\(run.text)")
    }
}
