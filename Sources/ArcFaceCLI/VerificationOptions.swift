// `arcface train --verify SET --verify-every N --best-by NAME`: fixed-pairs verification sets
// evaluated during training, and their figures on the epoch lines.
import ArgumentParser
import ArcFace

/// The verification-set options of `train` (configuration keys `verificationSets`,
/// `verifyEverySteps`, `bestBy`).
struct VerificationOptions: ParsableArguments {
    @Option(name: .customLong("verify"), help: ArgumentHelp(
        "A verification set evaluated during training: an InsightFace .bin, or PAIRS:ROOT for LFW's pairs.txt and its image folder (the text before the first ':' is the pairs file); repeatable. Named by its file name without extension.",
        valueName: "set"))
    var sets: [String] = []
    @Option(name: .customLong("verify-every"), parsing: .unconditional,
            help: "Evaluate the --verify sets every this many steps, and after the last step (0: after the last step only), as the key verifyEverySteps.")
    var everySteps: Int?
    @Option(help: "Choose best.safetensors by the k-fold accuracy of this --verify set (its name: lfw for lfw.bin) instead of the training loss or validation AUC.")
    var bestBy: String?

    var isEmpty: Bool { sets.isEmpty && everySteps == nil && bestBy == nil }

    func validate() throws {
        if let everySteps, everySteps < 0 { throw ValidationError("--verify-every must be ≥ 0 (0: after the last step only): \(everySteps)") }
    }

    /// Adds the sets to the configuration's and sets the other two keys when given.
    func apply(to configuration: inout TrainingConfiguration) {
        configuration.verificationSets += sets
        if let everySteps { configuration.verifyEverySteps = everySteps }
        if let bestBy { configuration.bestBy = bestBy }
    }
}

/// The verification figures on the epoch lines: the last evaluation of an epoch goes on its
/// epoch line; an earlier one of the same epoch (with `--verify-every` below the epoch's steps)
/// gets its own line when the next one arrives.
final class VerificationLines {
    private var pending: VerificationRecord?
    private let log: (String) -> Void

    init(log: @escaping (String) -> Void) { self.log = log }

    func record(_ record: VerificationRecord) {
        if let pending { log("step \(pending.step) |" + Self.text(pending)) }
        pending = record
    }

    /// The figures of the evaluation since the last epoch line ("" when none), and forgets it.
    func epochLineSuffix() -> String {
        defer { pending = nil }
        return pending.map { " |" + Self.text($0) } ?? ""
    }

    /// ` lfw 0.9633±0.0120 (no flip 0.9500±0.0150) | cfp_fp …`: mean k-fold accuracy ± standard
    /// deviation over the folds, with flip-summing, then without.
    static func text(_ record: VerificationRecord) -> String {
        record.sets.map {
            String(format: " %@ %.4f±%.4f (no flip %.4f±%.4f)", $0.name, $0.withFlip.accuracy, $0.withFlip.standardDeviation,
                   $0.withoutFlip.accuracy, $0.withoutFlip.standardDeviation)
        }.joined(separator: " |")
    }
}

/// The verification sets' final and highest accuracies (`RunMetrics.verificationSets`), and
/// what chose `best.safetensors`.
func printVerificationSets(_ m: RunMetrics, flipEmbeddings: Bool) {
    for set in m.verificationSets ?? [] {
        let f = set.final, best = flipEmbeddings ? set.best.withFlip : set.best.withoutFlip
        say(String(format: "verification set %@ (%d genuine, %d impostor pairs, %d folds) after step %d: "
                   + "accuracy %.4f ± %.4f with flip, %.4f ± %.4f without; highest %.4f %@ at step %d",
                   set.name, set.genuinePairCount, set.impostorPairCount, set.folds, f.step, f.withFlip.accuracy,
                   f.withFlip.standardDeviation, f.withoutFlip.accuracy, f.withoutFlip.standardDeviation,
                   best.accuracy, flipEmbeddings ? "with flip" : "without", set.best.step))
    }
    if let best = m.bestBy {
        say(String(format: "best.safetensors: step %d, %@ accuracy %.4f (--best-by %@)", best.step, best.set, best.accuracy, best.set))
    }
}
