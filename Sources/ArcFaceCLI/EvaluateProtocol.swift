// `arcface evaluate-protocol`: a checkpoint on fixed-pairs protocols (InsightFace .bin sets,
// LFW's pairs.txt).
import ArgumentParser
import ArcFace
import Foundation

struct EvaluateProtocol: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate-protocol",
        abstract: "Evaluate a checkpoint on fixed verification pairs: InsightFace .bin sets and/or LFW's pairs.txt.",
        discussion: """
        Images are converted to the checkpoint's input channels and resized (bilinear, aspect kept) and \
        centre-cropped to its input size, with a warning counting them (--strict-input refuses them instead). Accuracy is the mean over the protocol's folds (LFW: the 10 folds \
        of pairs.txt; .bin: 10 contiguous folds, as insightface's verification.py).
        """)

    @OptionGroup var checkpoint: CheckpointOption
    @Option(help: "An InsightFace verification set (lfw.bin, cfp_fp.bin, agedb_30.bin, …); repeatable.")
    var bin: [String] = []
    @Option(help: "LFW's pairs.txt (View 2: 10 folds × 300 matched + 300 mismatched pairs).")
    var lfwPairs: String?
    @Option(help: "The LFW image folder for --lfw-pairs (layout Name/Name_0001.jpg).")
    var lfwRoot: String?
    @Option(help: "The extension of the LFW images (jpg or .jpg).")
    var imageExtension = "jpg"
    @Flag(help: "Refuse an image whose channels or size differ from the model's input (default: convert it and warn).")
    var strictInput = false

    func validate() throws {
        if bin.isEmpty && lfwPairs == nil { throw ValidationError("give --bin and/or --lfw-pairs") }
        if (lfwPairs == nil) != (lfwRoot == nil) { throw ValidationError("--lfw-pairs and --lfw-root go together") }
    }

    func run() throws {
        let model: EmbeddingModel
        do { model = try Experiment.loadEmbeddingModel(path: checkpoint.path) } catch { throw failure(error) }
        let preprocessing = model.configuration.preprocessing
        say("model: \(model.summary)")
        say("model input: \(preprocessing), flip-sum \(model.configuration.flipEmbeddings)")
        let policy: InputMismatchPolicy = strictInput ? .refuse : .convert
        for path in bin {
            do {
                let set = try VerificationBin.read(path: path)
                var sources = InputSourceTally()
                let report = try PairProtocolEvaluation.evaluate(model.backbone, folds: model.configuration.folds, flipSum: model.configuration.flipEmbeddings,
                                                                bin: set, input: policy, sources: &sources)
                sources.mismatchWarnings(against: preprocessing).forEach { say("warning: \(path): " + $0) }
                printPairProtocol(name: path, report)
            } catch let error as VerificationSetError {
                throw failure(error)
            } catch let error as PairProtocolError {
                throw failure(error)
            }
        }
        if let lfwPairs, let lfwRoot {
            do {
                let pairs = try LFWPairs.read(path: lfwPairs)
                var sources = InputSourceTally()
                let report = try PairProtocolEvaluation.evaluate(model.backbone, flipSum: model.configuration.flipEmbeddings, lfwPairs: pairs, root: lfwRoot, fileExtension: imageExtension,
                                                                 input: policy, sources: &sources)
                sources.mismatchWarnings(against: preprocessing).forEach { say("warning: \(lfwPairs): " + $0) }
                printPairProtocol(name: lfwPairs, report)
            } catch let error as VerificationSetError {
                throw failure(error)
            } catch let error as PairProtocolError {
                throw failure(error)
            }
        }
    }
}

func printPairProtocol(name: String, _ r: PairProtocolReport) {
    say("""
    verification on \(name) (\(r.genuinePairCount) genuine, \(r.impostorPairCount) impostor pairs, \(r.foldAccuracies.count) folds):
      \("accuracy (\(r.foldAccuracies.count)-fold)".padding(toLength: 29, withPad: " ", startingAt: 0))\(String(format: "%.4f ± %.4f", r.accuracy, r.accuracyStdErr))
      AUC                          \(String(format: "%.4f", r.auc))
      EER                          \(String(format: "%.4f", r.eer))
      TAR@FAR=1e-2                 \(tarFigure(r.tarAtFar1e2, note: r.falseAcceptRateNote(target: 1e-2)))
      TAR@FAR=1e-3                 \(tarFigure(r.tarAtFar1e3, note: r.falseAcceptRateNote(target: 1e-3)))
    """)
}
