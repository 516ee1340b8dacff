// The trainer on P > 1 ranks (issue 13): data parallel backbone (each rank its part of every
// global batch, gradients all-reduced by SUM), class-parallel head (ClassParallelMarginHead),
// agreement on every per-rank decision (non-finite values, stop requests, failures on rank 0),
// checkpoints gathered to rank 0 and sliced again on restore with any P.
import Collectives
import TensorCore
import Layers
import MarginLosses
import Checkpointing
import FaceData
import RunConfiguration

extension Trainer {
    /// Whether this trainer runs on more than one rank.
    public var isDistributed: Bool { communicator.size > 1 }
    /// Whether this is rank 0, the rank that writes checkpoints, validates and reports.
    public var isRoot: Bool { communicator.rank == 0 }

    /// The problems of `configuration` on `worldSize` ranks (the global batch split, keys without
    /// a distributed form).
    static func distributedProblems(of configuration: TrainingConfiguration, worldSize: Int) -> DistributedTrainingError? {
        guard worldSize > 1 else { return nil }
        if configuration.batchSize % worldSize != 0 {
            return .batchSizeNotDivisible(batchSize: configuration.batchSize, worldSize: worldSize)
        }
        if configuration.loss == .softmax {
            return .unsupported(key: "loss", reason: "the softmax baseline has no class-parallel head; use a margin loss",
                                worldSize: worldSize)
        }
        if configuration.gradientClipNorm > 0 {
            return .unsupported(key: "gradientClipNorm", reason: "the norm would need the head slices of every rank; set it to 0",
                                worldSize: worldSize)
        }
        return nil
    }

    /// Runs one collective, timing it as communication; a failure ends the step with
    /// `DistributedTrainingError.communication`.
    func collective<R>(_ what: String, _ body: () throws(CommunicatorError) -> R) throws(TrainingError) -> R {
        let start = ContinuousClock.now
        defer { trainerCommunicationSeconds += seconds(ContinuousClock.now - start) }
        do { return try body() } catch { throw .distributed(.communication(error, step: step, what: what)) }
    }

    /// The element-wise maximum over the ranks of `values` (`values` itself with one rank).
    func agreedMaximum(_ values: [Int], what: String) throws(TrainingError) -> [Int] {
        guard isDistributed else { return values }
        var values = values
        try collective(what) { () throws(CommunicatorError) in try communicator.allReduce(&values, .max) }
        return values
    }

    /// Runs `body` on rank 0 only, then tells every rank whether it succeeded: rank 0 rethrows its
    /// error, the other ranks throw `.rankFailed(rank: 0, …)`. Returns `body`'s value on rank 0,
    /// nil on the others.
    func onRoot<R>(_ what: String, _ body: () throws(TrainingError) -> R) throws(TrainingError) -> R? {
        guard isDistributed else { return try body() }
        var result: R?
        var failure: TrainingError?
        if isRoot {
            do { result = try body() } catch { failure = error }
        }
        let failed = try agreedMaximum([failure == nil ? 0 : 1], what: what)[0]
        if let failure { throw failure }
        if failed != 0 { throw .distributed(.rankFailed(rank: 0, step: step, what: what)) }
        return result
    }

    /// Sums every backbone gradient over the ranks (one flat buffer): the head returns the
    /// gradient of the global loss, so the sum is the one-process gradient of the global batch.
    func allReduceBackboneGradients() throws(TrainingError) {
        let parameters = model.backbone.parameters
        var flat = [Float]()
        flat.reserveCapacity(parameters.reduce(0) { $0 + $1.gradient.count })
        for parameter in parameters { flat.append(contentsOf: parameter.gradient.storage) }
        try collective("all-reduce of the backbone gradients") { () throws(CommunicatorError) in
            try communicator.allReduce(&flat, .sum)
        }
        var offset = 0
        for parameter in parameters {
            let count = parameter.gradient.count
            parameter.gradient.storage.replaceSubrange(0..<count, with: flat[offset..<(offset + count)])
            offset += count
        }
    }

    /// Replaces the BatchNorm running statistics by their mean over the ranks (each rank updated
    /// them from its own micro-batch), so the replicas stay identical.
    func averageBuffersOverRanks() throws(TrainingError) {
        let buffers = model.backbone.buffers
        guard !buffers.isEmpty else { return }
        var flat = [Float]()
        for buffer in buffers { flat.append(contentsOf: buffer.value.storage) }
        try collective("all-reduce of the BatchNorm statistics") { () throws(CommunicatorError) in
            try communicator.allReduce(&flat, .sum)
        }
        let scale = 1 / Float(communicator.size)
        var offset = 0
        for buffer in buffers {
            let count = buffer.value.count
            for i in 0..<count { buffer.value.storage[i] = flat[offset + i] * scale }
            offset += count
        }
    }

    /// A checksum of the bit patterns of every backbone parameter and buffer (FNV-1a), in `0...Int.max`.
    func replicaChecksum() -> Int {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for tensor in model.backbone.parameters.map(\.value) + model.backbone.buffers.map(\.value) {
            for value in tensor.storage {
                hash = (hash ^ UInt64(value.bitPattern)) &* 0x0000_0100_0000_01B3
            }
        }
        return Int(hash & UInt64(Int.max))
    }

    /// The head's centers and their momentum of all ranks, in class order (a collective: every
    /// rank calls it). With one rank, this rank's own.
    func gatheredHead() throws(TrainingError) -> (centers: Tensor, momentum: Tensor)? {
        guard isDistributed, let head = model.head as? ClassParallelMarginHead else { return nil }
        let rowWidth = head.subcenters * head.embeddingDimension
        let counts = (0..<communicator.size).map { head.partition.classes(ofRank: $0).count * rowWidth }
        let momentumIndex = optimizer.parameters.firstIndex { $0 === head.centers }!
        let (centers, momentum) = try collective("gathering the head for a checkpoint") { () throws(CommunicatorError) in
            (try communicator.allGather(head.centers.value.storage, counts: counts),
             try communicator.allGather(optimizer.momentumBuffers[momentumIndex].storage, counts: counts))
        }
        let shape = [head.classCount * head.subcenters, head.embeddingDimension]
        return (Tensor(shape: shape, storage: centers), Tensor(shape: shape, storage: momentum))
    }

    /// The training state with the whole head (gathered from every rank: a collective).
    func checkpointState() throws(TrainingError) -> TrainingState {
        var state = trainingState
        guard let (centers, momentum) = try gatheredHead() else { return state }
        let name = model.head.parameters[0].name
        state.modelTensors = state.modelTensors.map { $0.name == name ? (name, centers) : $0 }
        state.momentum = state.momentum.map { $0.name == name ? (name, momentum) : $0 }
        return state
    }

    /// `trainingState` with zero tensors of the whole head's shape in place of this rank's slice,
    /// to validate a checkpoint against (shapes only).
    var wholeShapeState: TrainingState {
        var state = trainingState
        guard isDistributed, let head = model.head as? ClassParallelMarginHead else { return state }
        let whole = Tensor(shape: [head.classCount * head.subcenters, head.embeddingDimension])
        state.modelTensors = state.modelTensors.map { $0.name == head.centers.name ? ($0.name, whole) : $0 }
        state.momentum = state.momentum.map { $0.name == head.centers.name ? ($0.name, whole) : $0 }
        return state
    }

    /// This rank's rows of a whole head tensor `[K·k, D]` read from a checkpoint.
    func localSlice(of whole: Tensor) -> Tensor {
        guard isDistributed, let head = model.head as? ClassParallelMarginHead else { return whole }
        let rowWidth = head.subcenters * head.embeddingDimension
        let classes = head.localClasses
        return Tensor(shape: [classes.count * head.subcenters, head.embeddingDimension],
                      storage: Array(whole.storage[(classes.lowerBound * rowWidth)..<(classes.upperBound * rowWidth)]))
    }

    /// The rows `part` of `count` of a batch tensor `[N, …]` (the micro-batches of the reference).
    static func rows(_ tensor: Tensor, part: Int, of count: Int) -> Tensor {
        let n = tensor.shape[0], width = tensor.count / max(n, 1)
        let range = BatchShard(index: part, count: count).rows(of: 0..<n)
        var shape = tensor.shape
        shape[0] = range.count
        return Tensor(shape: shape, storage: Array(tensor.storage[(range.lowerBound * width)..<(range.upperBound * width)]))
    }
}

import Reporting

extension Trainer {
    /// The backbone forward of one step: the whole batch at once; or (`microBatches > 1`, one
    /// process) each micro-batch from the same BatchNorm statistics and dropout stream, the
    /// running statistics then averaged over them, as `P` ranks do; on `P > 1` ranks the running
    /// statistics averaged over the ranks.
    ///
    /// - Returns: the embeddings `[N, D]`, the cache (nil with micro-batches: the backward
    ///   recomputes each micro-batch's forward) and the dropout stream before the forward.
    func forwardBackbone(_ images: Tensor) throws(TrainingError) -> (embeddings: Tensor, cache: (any LayerCache)?,
                                                                      dropoutStart: SeededGenerator) {
        let backbone = model.backbone
        let dropoutStart = backbone.dropoutGenerator
        guard microBatches > 1 else {
            let (embeddings, cache) = backbone.forward(images, mode: .training)
            if isDistributed { try averageBuffersOverRanks() }
            return (embeddings, cache, dropoutStart)
        }
        let buffers = backbone.buffers
        let start = buffers.map(\.value)
        var sums = [[Float]]()
        var embeddings = [Float]()
        var dimension = 0, dropoutAfter = dropoutStart
        for part in 0..<microBatches {
            for (buffer, value) in zip(buffers, start) { buffer.value = value }
            backbone.dropoutGenerator = dropoutStart
            let (output, _) = backbone.forward(Self.rows(images, part: part, of: microBatches), mode: .training)
            dropoutAfter = backbone.dropoutGenerator
            dimension = output.shape[1]
            embeddings.append(contentsOf: output.storage)
            if part == 0 {
                sums = buffers.map(\.value.storage)
            } else {
                for (b, buffer) in buffers.enumerated() {
                    for i in 0..<buffer.value.count { sums[b][i] += buffer.value.storage[i] }
                }
            }
        }
        let scale = 1 / Float(microBatches)   // as averageBuffersOverRanks: the sum, then × 1/P
        for (b, buffer) in buffers.enumerated() {
            buffer.value = Tensor(shape: buffer.value.shape, storage: sums[b].map { $0 * scale })
        }
        backbone.dropoutGenerator = dropoutAfter
        return (Tensor(shape: [embeddings.count / dimension, dimension], storage: embeddings), nil, dropoutStart)
    }

    /// The backbone backward of one step (see `forwardBackbone`): with micro-batches, each
    /// micro-batch's forward again (same statistics and dropout masks) and its backward, the
    /// gradients accumulating; the running statistics and dropout stream are left as the forward
    /// left them.
    func backwardBackbone(_ gradient: Tensor, forward: (embeddings: Tensor, cache: (any LayerCache)?, dropoutStart: SeededGenerator),
                          images: Tensor) {
        let backbone = model.backbone
        if let cache = forward.cache {
            _ = backbone.backward(gradient, cache: cache)
            return
        }
        let buffers = backbone.buffers
        let kept = buffers.map(\.value), dropoutAfter = backbone.dropoutGenerator
        for part in 0..<microBatches {
            backbone.dropoutGenerator = forward.dropoutStart
            let (_, cache) = backbone.forward(Self.rows(images, part: part, of: microBatches), mode: .training)
            _ = backbone.backward(Self.rows(gradient, part: part, of: microBatches), cache: cache)
        }
        for (buffer, value) in zip(buffers, kept) { buffer.value = value }
        backbone.dropoutGenerator = dropoutAfter
    }

    /// The name of the first parameter (in `model.parameters` order, the same on every rank)
    /// whose `property` holds NaN or ±∞ on any rank; nil when none.
    func agreedFirstNonFinite(_ property: KeyPath<Parameter, Tensor>, what: String) throws(TrainingError) -> String? {
        let parameters = model.parameters
        var index = [parameters.firstIndex { !$0[keyPath: property].isFinite } ?? Int.max]
        if isDistributed {
            try collective(what) { () throws(CommunicatorError) in try communicator.allReduce(&index, .min) }
        }
        return index[0] == Int.max ? nil : parameters[index[0]].name
    }

    /// Whether to stop after this step (a `StopRequest` or `stopAfterStep` on any rank: every rank
    /// stops at the same step). Every `replicaCheckEverySteps` steps the same all-reduce also
    /// compares the replicas' checksums.
    ///
    /// - Throws: `.distributed(.replicasDiverged)` or `.communication`.
    func agreedStop() throws(TrainingError) -> Bool {
        var values = [stopRequest.isRequested || step == stopAfterStep ? 1 : 0]
        let checks = isDistributed && replicaCheckEverySteps > 0 && step % replicaCheckEverySteps == 0
        if checks {
            let checksum = replicaChecksum()
            values += [checksum, -checksum]
        }
        values = try agreedMaximum(values, what: "agreeing on a stop")
        if checks && values[1] != -values[2] {
            throw .distributed(.replicasDiverged(step: step, minimum: -values[2], maximum: values[1]))
        }
        return values[0] != 0
    }

    /// The validation check (`validationCheck`), on rank 0 only with `P > 1`, its result
    /// broadcast to every rank (the other ranks wait).
    func agreedValidationCheck() throws(TrainingError) -> (auc: Double, spread: CosineSpread?)? {
        guard isDistributed else { return validationCheck() }
        guard validationSet != nil else { return nil }
        let local = try onRoot("validating") { () throws(TrainingError) in validationCheck() }
        var values = [Double](repeating: .nan, count: 4)
        if let result = local ?? nil {
            values[0] = result.auc
            if let spread = result.spread {
                values[1] = spread.mean
                values[2] = spread.standardDeviation
                values[3] = Double(spread.pairs)
            }
        }
        try collective("broadcasting the validation result") { () throws(CommunicatorError) in
            try communicator.broadcast(&values, root: 0)
        }
        return (values[0], values[3].isNaN ? nil : CosineSpread(mean: values[1], standardDeviation: values[2], pairs: Int(values[3])))
    }
}

import Foundation

extension Trainer {
    /// `value` of rank 0 on every rank (a collective: every rank calls it; the others pass nil):
    /// its JSON (non-finite numbers as strings) broadcast as its length, then its bytes. One
    /// rank: `value` itself.
    ///
    /// - Throws: `.distributed(.communication)`, or `.distributed(.rankFailed(rank: 0, …))` when
    ///   rank 0 has no value or its JSON does not decode (every rank throws).
    static func broadcastFromRoot<T: Codable>(_ value: T?, communicator: any Communicator, step: Int,
                                              what: String) throws(TrainingError) -> T {
        if communicator.size == 1, let value { return value }
        let encoder = JSONEncoder(), decoder = JSONDecoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "+inf", negativeInfinity: "-inf", nan: "nan")
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "+inf", negativeInfinity: "-inf", nan: "nan")
        let bytes = communicator.rank == 0 ? value.flatMap { try? encoder.encode($0) } : nil
        var count = [bytes?.count ?? -1]
        do { try communicator.broadcast(&count, root: 0) }
        catch { throw .distributed(.communication(error, step: step, what: what)) }
        guard count[0] >= 0 else { throw .distributed(.rankFailed(rank: 0, step: step, what: what)) }
        var words = bytes.map { $0.map(Int.init) } ?? [Int](repeating: 0, count: count[0])
        do { try communicator.broadcast(&words, root: 0) }
        catch { throw .distributed(.communication(error, step: step, what: what)) }
        guard let decoded = try? decoder.decode(T.self, from: Data(words.map { UInt8(truncatingIfNeeded: $0) })) else {
            throw .distributed(.rankFailed(rank: 0, step: step, what: what))
        }
        return decoded
    }
}
