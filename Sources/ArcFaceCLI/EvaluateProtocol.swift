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
        centre-cropped to its input size. Accuracy is the mean over the protocol's folds (LFW: the 10 folds \
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

    func validate() throws {
        if bin.isEmpty && lfwPairs == nil { throw ValidationError("give --bin and/or --lfw-pairs") }
        if (lfwPairs == nil) != (lfwRoot == nil) { throw ValidationError("--lfw-pairs and --lfw-root go together") }
    }

    func run() throws {
        let model: FaceRecognitionModel
        do { model = try Experiment.loadModel(path: checkpoint.path) } catch { throw failure(error) }
        let shape = model.configuration.backbone
        say("model input: \(shape.inputChannels)×\(shape.inputHeight)×\(shape.inputWidth), flip-sum \(model.configuration.flipEmbeddings)")
        for path in bin {
            do {
                let set = try VerificationBin.read(path: path)
                printPairProtocol(name: path, try PairProtocolEvaluation.evaluate(model, bin: set))
            } catch let error as VerificationSetError {
                throw failure(error)
            } catch let error as PairProtocolError {
                throw failure(error)
            }
        }
        if let lfwPairs, let lfwRoot {
            do {
                let pairs = try LFWPairs.read(path: lfwPairs)
                printPairProtocol(name: lfwPairs, try PairProtocolEvaluation.evaluate(model, lfwPairs: pairs, root: lfwRoot,
                                                                                      fileExtension: imageExtension))
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
