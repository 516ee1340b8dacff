// `arcface make-pairs`: a run's held-out identities as an InsightFace `.bin` verification set.
import ArgumentParser
import ArcFace
import Foundation

struct MakePairs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-pairs",
        abstract: "Write the held-out identities of a run's split as an InsightFace .bin verification set (for train --verify).",
        discussion: """
        Give the options you give train (--config, --seed, --held-out-identities, …): the split is the run's, \
        and the pairs are those of its final evaluation (every genuine pair and as many seeded impostor pairs), \
        ordered so that the set's contiguous folds are the run's folds. A run's config.json works as --config. \
        The file loads with insightface's eval/verification.py (pickle.load) and with evaluate-protocol --bin.
        """)

    @Option(help: "Dataset folder: one subfolder of PGM, JPEG or PNG images per identity.")
    var data: String
    @Option(help: "The .bin file to write (replaced if it exists).")
    var output: String
    @OptionGroup var hyperparameters: HyperparameterOptions

    func run() throws {
        let configuration = try hyperparameters.resolve()
        do {
            let (set, identities) = try Experiment.heldOutVerificationBin(directory: data, configuration: configuration, path: output)
            try Experiment.write(set)
            let genuine = set.isSame.count { $0 }
            say("wrote \(output): \(genuine) genuine + \(set.pairCount - genuine) impostor pairs (\(set.encodedImages.count) images) "
                + "of the \(identities.count) held-out identities \(identities.joined(separator: ", ")) "
                + "(seed \(configuration.seed), \(configuration.folds) folds)")
        } catch { throw failure(error) }
    }
}
