import Collectives

/// A problem with a batch handed to a loss or head: its data, or a size the head's memory budget
/// cannot hold. Thrown before anything is computed or accumulated: on error, no parameter
/// gradient has been touched.
public enum MarginLossError: Error, CustomStringConvertible, Equatable {
    /// `labels[sample]` is not in `0..<classCount` (negative labels included).
    case labelOutOfRange(sample: Int, label: Int, classCount: Int)
    /// Row `sample` of the input (embeddings, cosines or logits) contains NaN or ±Inf.
    case nonFiniteEmbedding(sample: Int)
    /// Row `row` of the head's parameter `parameter` (e.g. `"head.centers"`, `"head.weight"`,
    /// `"head.bias"`) contains NaN or ±Inf. For `MarginHead` centers the row is `c·k + s` (class
    /// `c`, sub-center `s`); for a bias, the element. Thrown before any gradient is touched.
    case nonFiniteParameter(parameter: String, row: Int)
    /// The input has `embeddings` rows but `labels` labels were given.
    case batchSizeMismatch(embeddings: Int, labels: Int)
    /// The batch has no samples.
    case emptyBatch
    /// A batch of `batchSize` samples cannot be planned within the head's `memoryBudgetBytes`
    /// (`budgetBytes`) even one class per chunk: that takes `neededBytes` (`HeadPlan`). Thrown
    /// before anything is computed; `MarginHead.checkMemory` finds the same before training.
    case memoryBudgetTooSmall(batchSize: Int, budgetBytes: Int, neededBytes: Int)
    /// A collective of a class-parallel head (`ClassParallelMarginHead`) timed out or failed:
    /// another rank died, hangs or disagrees. The job cannot continue; end it
    /// (`Communicator.abort(_:exitCode:)`).
    case communication(CommunicatorError)

    public var description: String {
        switch self {
        case let .labelOutOfRange(sample, label, classCount):
            return "label \(label) of sample \(sample) is outside 0..<\(classCount); "
                + "HINT: the head's classCount must cover every identity in the dataset"
        case let .nonFiniteEmbedding(sample):
            return "input row \(sample) contains NaN or Inf; HINT: the backbone diverged "
                + "(lower the learning rate or clip gradients) or the input batch is corrupt"
        case let .nonFiniteParameter(parameter, row):
            return "row \(row) of \(parameter) contains NaN or Inf; HINT: the weights diverged before this step "
                + "(restore an earlier checkpoint, lower the learning rate or clip gradients) or the model file is corrupt"
        case let .batchSizeMismatch(embeddings, labels):
            return "batch has \(embeddings) input rows but \(labels) labels"
        case .emptyBatch:
            return "empty batch (no samples)"
        case let .memoryBudgetTooSmall(batchSize, budget, needed):
            return "a batch of \(batchSize) samples needs at least \(needed) bytes of the margin head's memory "
                + "(one class per chunk) but memoryBudgetBytes is \(budget); "
                + "HINT: set memoryBudgetBytes ≥ \(needed) or use smaller batches"
        case let .communication(error):
            return "the class-parallel margin head could not exchange its statistics: \(error)"
        }
    }
}

/// Checks the batch shape and labels: `rowCount == labels.count > 0`, every label in
/// `0..<classCount`.
func validateBatch(rowCount: Int, labels: [Int], classCount: Int) throws(MarginLossError) {
    guard rowCount == labels.count else {
        throw .batchSizeMismatch(embeddings: rowCount, labels: labels.count)
    }
    guard rowCount > 0 else { throw .emptyBatch }
    for (sample, label) in labels.enumerated() where label < 0 || label >= classCount {
        throw .labelOutOfRange(sample: sample, label: label, classCount: classCount)
    }
}

/// Throws `.nonFiniteEmbedding` for the first row of a `[rows, columns]` matrix holding NaN/Inf.
func validateFiniteRows(_ storage: [Float], columns: Int) throws(MarginLossError) {
    guard let index = storage.firstIndex(where: { !$0.isFinite }) else { return }
    throw .nonFiniteEmbedding(sample: columns > 0 ? index / columns : 0)
}
