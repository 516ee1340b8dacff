import Foundation
import TensorCore

// An upper bound of the memory a `Backbone` needs, checked before it is allocated, so that an
// absurd configuration (10⁵×10⁵ images, 10⁸-d embeddings, 10⁵ channels) is a typed error
// instead of a "failed to allocate" abort.

extension BackboneConfiguration {
    /// The exact number of trainable scalars of the `Backbone` this configuration builds, in
    /// `Double` so that absurd sizes do not overflow (671,456 by default).
    ///
    /// Plain stage: conv `9·C_in·C_out` (no bias) + BatchNorm `2·C_out` + PReLU `C_out`.
    /// Residual stage: conv1 `9·C_in·C_out`, conv2 `9·C_out²`, two BatchNorms and a PReLU
    /// `5·C_out`, and when `C_in ≠ C_out` a 1×1 shortcut `C_in·C_out + 2·C_out`.
    /// Then the embedding Linear `F·D + D` and the feature BatchNorm `2·D`.
    ///
    /// The field's backbones: `IResNetArchitecture.parameterCount` and
    /// `MobileFaceNetArchitecture.parameterCount` (tallied layer by layer, `LayerMemoryTally`).
    public var parameterCountEstimate: Double {
        if let tally = familyMemoryTally(training: true, workers: 1) { return tally.parameterFloats }
        var total = 0.0
        var channels = Double(inputChannels)
        for outputChannels in stageChannels.map(Double.init) {
            if residual {
                total += 9 * channels * outputChannels + 9 * outputChannels * outputChannels + 5 * outputChannels
                if channels != outputChannels { total += channels * outputChannels + 2 * outputChannels }
            } else {
                total += 9 * channels * outputChannels + 3 * outputChannels
            }
            channels = outputChannels
        }
        let (h, w) = finalSpatialSize
        let features = channels * Double(h) * Double(w)
        let dimension = Double(embeddingDimension)
        return total + features * dimension + dimension + 2 * dimension
    }

    /// An upper bound, in bytes, of the memory a `Backbone` of this configuration needs for
    /// batches of `batchSize` images, computed in `Double` (no overflow) and clamped to `Int.max`:
    ///
    /// - parameters `P`, ×3 in training (value, gradient, SGD momentum), ×1 for inference;
    /// - per image, for each stage at its input size `H×W`: the stage input and, in training,
    ///   `6·C_out·H·W` (plain: conv output, normalized values, activations, pool indices and
    ///   their gradients) or `12·C_out·H·W` (residual), `3·C_out·H·W` for inference; the
    ///   flattened features and the embedding; the image itself twice (a mirrored copy);
    /// - per convolution and worker (`min(batchSize, cores)`): the im2col matrix and its gradient
    ///   `2·9·C_in·H·W` and a weight-gradient partial `9·C_in·C_out`.
    ///
    /// All values are 4-byte floats. The field's backbones are tallied layer by layer
    /// (`LayerMemoryTally`: every layer's output and, in training, input gradient; the
    /// parameters ×3 in training and the BatchNorm buffers; the convolutions' scratch).
    public func memoryBytesEstimate(batchSize: Int, training: Bool,
                                    processorCount: Int = ProcessInfo.processInfo.activeProcessorCount) -> Int {
        let batch = Double(max(1, batchSize))
        let workers = Double(max(1, min(batchSize, processorCount)))
        if let tally = familyMemoryTally(training: training, workers: workers) {
            let bytes = tally.bytes(batchSize: batch, inputFloats: Double(inputChannels) * Double(inputHeight) * Double(inputWidth))
            return bytes < Double(Int.max) ? Int(bytes) : Int.max
        }
        let perStage = training ? (residual ? 12.0 : 6.0) : 3.0
        var perImage = 2 * Double(inputChannels) * Double(inputHeight) * Double(inputWidth)
        var scratch = 0.0
        var channels = Double(inputChannels), h = Double(inputHeight), w = Double(inputWidth)
        for outputChannels in stageChannels.map(Double.init) {
            perImage += channels * h * w + perStage * outputChannels * h * w
            let convolutions = residual ? [(channels, 9.0), (outputChannels, 9.0), (channels, 1.0)] : [(channels, 9.0)]
            for (inputs, kernel) in convolutions {
                scratch += workers * (2 * kernel * inputs * h * w + kernel * inputs * outputChannels)
            }
            channels = outputChannels
            h = (h / 2).rounded(.down)
            w = (w / 2).rounded(.down)
        }
        perImage += 2 * channels * h * w + 4 * Double(embeddingDimension)
        let floats = (training ? 3 : 1) * parameterCountEstimate + batch * perImage + scratch
        let bytes = 4 * floats
        return bytes < Double(Int.max) ? Int(bytes) : Int.max
    }

    /// The layer-by-layer tally of a field backbone (`nil` for the default CNN); an IResNet
    /// `depth` that is not supported is tallied as the deepest (an upper bound for an invalid
    /// configuration, which validation rejects anyway).
    func familyMemoryTally(training: Bool, workers: Double) -> LayerMemoryTally? {
        switch kind {
        case .default:
            return nil
        case .iresnet:
            let depth = depth.flatMap { IResNetArchitecture.blocks(depth: $0) == nil ? nil : $0 } ?? 100
            var architecture = IResNetArchitecture(depth: depth, embeddingDimension: embeddingDimension, dropout: 0)
            architecture.inputChannels = inputChannels
            architecture.inputHeight = inputHeight
            architecture.inputWidth = inputWidth
            return architecture.memoryTally(training: training, workers: workers)
        case .mobilefacenet:
            // Out-of-range blocks or scale are tallied at their largest (validation rejects them anyway).
            var bounded = self
            bounded.embeddingDimension = max(1, embeddingDimension)
            if !mobileFaceNetProblems.isEmpty {
                bounded.blocks = Array(repeating: MobileFaceNetArchitecture.maximumBlocks, count: 4)
                bounded.scale = MobileFaceNetArchitecture.maximumScale
            }
            return bounded.mobileFaceNetArchitecture?.memoryTally(training: training, workers: workers)
        }
    }

    /// Checks that a `Backbone` of this configuration fits in `availableBytes` for batches of
    /// `batchSize`, before anything is allocated.
    ///
    /// - Throws: `BackboneMemoryError.doesNotFit` stating the bytes needed and available.
    public func checkMemory(batchSize: Int, training: Bool,
                            availableBytes: Int = SystemMemory.availableBytes) throws(BackboneMemoryError) {
        let needed = memoryBytesEstimate(batchSize: batchSize, training: training)
        guard needed <= availableBytes else {
            throw .doesNotFit(neededBytes: needed, availableBytes: availableBytes, parameterCount: parameterCountEstimate,
                              batchSize: batchSize, training: training)
        }
    }
}

/// A backbone configuration that cannot fit in memory; thrown before anything large is allocated.
public enum BackboneMemoryError: Error, CustomStringConvertible, Equatable {
    /// `BackboneConfiguration.memoryBytesEstimate` (an upper bound) exceeds the available memory.
    case doesNotFit(neededBytes: Int, availableBytes: Int, parameterCount: Double, batchSize: Int, training: Bool)

    public var description: String {
        switch self {
        case let .doesNotFit(needed, available, parameters, batchSize, training):
            let parameterText = parameters < 1e15 ? String(Int(parameters)) : String(parameters)
            return "the backbone needs up to \(needed) bytes (\(gibibyteText(needed)) GiB: \(parameterText) parameters"
                + (training ? " with gradients and momentum" : "") + " and batches of \(batchSize) images) but \(available) bytes "
                + "(\(gibibyteText(available)) GiB) are available; HINT: use a smaller input size, fewer channels, "
                + "a smaller embedding dimension or a smaller batch"
        }
    }
}

private func gibibyteText(_ bytes: Int) -> String {
    String(Double(Int(Double(bytes) / Double(1 << 30) * 100)) / 100)
}
