import Foundation
import Layers
import MarginLosses
import Optimizers
import FaceData

/// The margin-loss family a run trains with.
public enum LossKind: String, Codable, Sendable, CaseIterable {
    /// ArcFace: `s·cos(θ_y + m)` (Deng et al. 2019, Eq. 3).
    case arcface
    /// CosFace: `s·(cos θ_y − m)` (Wang et al. 2018, Eq. 4).
    case cosface
    /// NormFace: `s·cos θ_y`, normalized features and centers, no margin (Wang et al. 2017).
    case normface
    /// Plain softmax on a linear layer with bias: the un-normalized baseline.
    case softmax
    /// The combined margin `s·(cos(m1·θ_y + m2) − m3)` (Deng et al. 2019, Eq. 4).
    case combined
}

/// What a non-finite value (NaN, ±∞) in a batch, the loss or a gradient does to training.
public enum NonFinitePolicy: String, Codable, Sendable, CaseIterable {
    /// Stop with `NumericalError.nonFiniteInput`, `.nonFiniteLoss`, `.nonFiniteGradient` or `.nonFiniteParameter`
    /// (carrying the step and the last finite loss); the weights are not updated.
    case stop
    /// Skip the step: gradients zeroed, no update, BatchNorm running statistics restored; the
    /// step is counted in `EpochSummary.skippedSteps`.
    case skip
}

/// What a run that did not take off does (the take-off watchdog, after the warm-ups).
public enum NoProgressPolicy: String, Codable, Sendable, CaseIterable {
    /// Say so on the epoch line, in `report.html` and in `metrics.json` (`"converged": false`).
    case warn
    /// As `warn`, then stop with `TrainingError.noProgress` once the epoch's checkpoint is written.
    case stop
}

/// Every hyperparameter of a training run. `Codable`; a JSON file overrides only the keys it
/// names, and an unknown key is an error (see `TrainingConfiguration.decode(json:)`).
public struct TrainingConfiguration: Codable, Sendable, Equatable {
    // MARK: Model
    /// The backbone architecture (input size, stage widths, embedding dimension `D`, dropout).
    public var backbone = BackboneConfiguration()

    // MARK: Margin
    /// Which loss of the margin family to train with.
    public var loss: LossKind = .arcface
    /// The logit scale `s` (dimensionless). The paper's 64 is tuned for ~10⁵ identities; with the
    /// 30 training identities of AT&T, 16 trains better (see README).
    public var scale: Double = 16
    /// ArcFace's additive angular margin `m`, radians (0.5 rad ≈ 28.6°).
    public var angularMargin: Double = 0.5
    /// CosFace's additive cosine margin `m` (dimensionless).
    public var cosineMargin: Double = 0.35
    /// The combined margin `cos(m1·θ + m2) − m3` (Deng et al. 2019, Eq. 4): `m1`, the angular
    /// multiplier (SphereFace-style, > 0). InsightFace's combined preset is (1, 0.3, 0.2).
    public var combinedAngularMultiplier: Double = 1.0
    /// The combined margin's `m2`: additive angular margin, radians.
    public var combinedAngularMargin: Double = 0.3
    /// The combined margin's `m3`: additive cosine margin.
    public var combinedCosineMargin: Double = 0.2
    /// What ArcFace's ψ does where `θ_y + m` would pass π (`MarginFallback`): `hard` (default,
    /// arcface_torch), `easy` (`easy_margin`: the margin only where `cos θ_y > 0`) or `none`
    /// (plain `cos(θ_y + m)`, non-monotone past π − m). Configuration files of earlier versions
    /// may give `"easyMargin": true/false` instead (see `decode(json:over:source:validate:)`).
    public var marginFallback: MarginFallback = .hard
    /// `marginFallback == .easy`; setting it chooses `.easy` or `.hard`. Not a stored key.
    public var easyMargin: Bool {
        get { marginFallback == .easy }
        set { marginFallback = newValue ? .easy : .hard }
    }
    /// Straight-through gradients through the margin (the default, arcface_torch's behaviour) or
    /// the exact chain rule (`"exact"`), which stalls ArcFace on hard data (see `MarginGradient`).
    public var marginGradient: MarginGradient = .default
    /// Epochs over which the margin ramps linearly from 0 to its value (0: no ramp).
    public var marginWarmupEpochs = 0
    /// Centers per class `k` (sub-center ArcFace, Deng et al. ECCV 2020; 1: a plain head).
    public var subcenters = 1
    /// Partial FC's fraction of classes per step, in (0, 1] (An et al. 2022; 1: all classes).
    public var partialFCSampleRate: Double = 1

    // MARK: Optimizer
    /// Peak learning rate (per step), reached after warm-up.
    public var learningRate: Double = 0.1
    /// SGD momentum μ.
    public var momentum: Double = 0.9
    /// Nesterov momentum.
    public var nesterov = false
    /// Weight decay λ (L2, coupled into the gradient as `torch.optim.SGD` does, unless decoupled).
    public var weightDecay: Double = 5e-4
    /// Decoupled weight decay (SGDW, Loshchilov & Hutter 2019).
    public var decoupledWeightDecay = false
    /// Clip the global gradient L2 norm to this value before each step; 0 disables clipping.
    public var gradientClipNorm: Double = 0
    /// Linear warm-up length, epochs.
    public var warmupEpochs = 5
    /// The backbone's learning rate as a fraction of the head's, in [0, 1] (1: one rate for all;
    /// 0.1 for fine-tuning a pretrained backbone, `--init-from`; 0 keeps the backbone's weights fixed).
    public var backboneLearningRateScale: Double = 1
    /// Train with every BatchNorm of the backbone in inference normalization: its running
    /// statistics normalize and stay unchanged (fine-tuning on small data); γ, β still train.
    public var freezeBatchNorm = false
    /// The decay after warm-up: `"cosine"` (to `finalLearningRateFraction` of the peak),
    /// `"step"` (× `stepDecayFactor` at each of `stepDecayEpochs`), `"polynomial"`
    /// (`(1 − t/T)^polynomialPower`, arcface_torch's PolyScheduler) or `"constant"`.
    public var learningRateSchedule = "cosine"
    /// The cosine schedule's final learning rate as a fraction of the peak.
    public var finalLearningRateFraction: Double = 0
    /// The step schedule's milestones, epochs from the start of training.
    public var stepDecayEpochs: [Int] = [60, 80]
    /// The step schedule's multiplier at each milestone.
    public var stepDecayFactor: Double = 0.1
    /// The polynomial schedule's power.
    public var polynomialPower: Double = 2
    /// Total training length, epochs.
    public var epochs = 100
    /// Images per training step.
    public var batchSize = 32

    // MARK: Data
    /// Identities held out of training for open-set verification.
    public var heldOutIdentities = 10
    /// Training identities held out of the fit for validation (0: none, the default). They are
    /// taken from the training side of the split (never from the `heldOutIdentities` test set),
    /// chosen with `seed`; at each epoch end the model is verified on every pair of their images
    /// (ROC AUC, `EpochSummary.validationAUC`), and `best.safetensors` is the epoch with the
    /// highest validation AUC instead of the lowest training loss. Either side must keep ≥ 2
    /// identities (`TrainingDataError.validationSplitTooSmall`).
    public var validationIdentities = 0
    /// Random horizontal flips (p = 0.5) during training.
    public var horizontalFlip = true
    /// Random translation, uniform in ±this many pixels per axis.
    public var maxTranslation = 4

    // MARK: Evaluation
    /// Sum each embedding with its horizontally flipped image's before normalizing.
    public var flipEmbeddings = true
    /// Folds of the k-fold verification accuracy.
    public var folds = 10
    /// Fixed-pairs verification sets evaluated during training (`arcface train --verify`), each
    /// an InsightFace `.bin` path or `PAIRS:ROOT` (LFW's `pairs.txt` and its image folder); see
    /// `VerificationSetSpec`. Empty: none.
    public var verificationSets: [String] = []
    /// Evaluate `verificationSets` every this many steps, and always after the last step (0:
    /// only after the last step).
    public var verifyEverySteps = 0
    /// The name of a verification set (`VerificationSetSpec.name`) whose accuracy chooses
    /// `best.safetensors` instead of the training loss or validation AUC ("": not by a set).
    public var bestBy = ""

    // MARK: Run
    /// Seed of every random stream (split, initialization, shuffling, augmentation, dropout, pairs).
    public var seed: UInt64 = 1
    /// OpenBLAS threads (0: leave the library's default).
    public var threads = 0

    // MARK: Fault tolerance
    /// What a NaN or ±∞ in a batch, the loss or a gradient does: stop with a typed error, or skip
    /// the step (no update) and count it.
    public var onNonFinite: NonFinitePolicy = .stop
    /// What a corrupt or unreadable image file does when the data set is loaded: stop with an
    /// error naming it, or skip it (listed in `skipped-images.txt` in the output folder).
    public var onBadImage: BadImagePolicy = .error
    /// Step checkpoints kept in `<output>/checkpoints/` (the newest ones; the best is kept apart), ≥ 1.
    public var keepCheckpoints = 3
    /// Also write a checkpoint every this many steps (0: only at the end of each epoch and on a stop).
    public var checkpointEverySteps = 0
    /// What a run does when the take-off watchdog finds it near chance after the warm-ups:
    /// warn (default) or stop with a typed error after the checkpoint.
    public var onNoProgress: NoProgressPolicy = .warn

    public init() {}

    /// The defaults every preset and JSON file starts from.
    public static let base = TrainingConfiguration()

    /// A short name for the run, e.g. `"arcface_s16_m0.5"`.
    public var runName: String {
        switch loss {
        case .arcface: "arcface_s\(formatted(scale))_m\(formatted(angularMargin))"
        case .cosface: "cosface_s\(formatted(scale))_m\(formatted(cosineMargin))"
        case .normface: "normface_s\(formatted(scale))"
        case .softmax: "softmax"
        case .combined: "combined_s\(formatted(scale))_m\([combinedAngularMultiplier, combinedAngularMargin, combinedCosineMargin].map(formatted).joined(separator: "-"))"
        }
    }

    /// The learning-rate schedule after warm-up, with milestones converted to steps.
    public func makeSchedule(stepsPerEpoch: Int) -> LearningRateSchedule {
        switch learningRateSchedule {
        case "step": .step(milestones: stepDecayEpochs.map { $0 * stepsPerEpoch }, factor: stepDecayFactor)
        case "polynomial": .polynomial(power: polynomialPower)
        case "constant": .constant
        default: .cosine(finalFraction: finalLearningRateFraction)
        }
    }

    /// Checks ranges; returns a description of each problem (empty when valid).
    public func validationProblems() -> [String] {
        var problems: [String] = []
        // Every Double below becomes a Float in the kernels and the optimizer: it must be finite
        // there too (|x| ≤ Float.greatestFiniteMagnitude ≈ 3.4e38), or training would trap or
        // compute with ±∞.
        let float = " and finite as a 32-bit float (≤ 3.4e38)"
        if !(Self.isFiniteAsFloat(scale) && scale > 0) { problems.append("scale must be positive\(float): \(scale)") }
        if !ArcFaceMargin.marginRange.contains(angularMargin) { problems.append("angularMargin must be in [0, π/2] radians: \(angularMargin)") }
        if !(0..<1).contains(cosineMargin) { problems.append("cosineMargin must be in [0, 1): \(cosineMargin)") }
        if !(Self.isFiniteAsFloat(combinedAngularMultiplier) && combinedAngularMultiplier > 0) {
            problems.append("combinedAngularMultiplier must be > 0\(float): \(combinedAngularMultiplier)")
        } else if !(0..<Double.pi).contains(combinedAngularMargin) {
            problems.append("combinedAngularMargin must be in [0, π) radians: \(combinedAngularMargin)")
        } else if Double.pi - (Double.pi - combinedAngularMargin) / combinedAngularMultiplier > Double.pi / 2 {
            problems.append("combined margin: π − (π − m2)/m1 must be ≤ π/2 (m1 = \(combinedAngularMultiplier), m2 = \(combinedAngularMargin))")
        }
        if !(Self.isFiniteAsFloat(combinedCosineMargin) && combinedCosineMargin >= 0) {
            problems.append("combinedCosineMargin must be ≥ 0\(float): \(combinedCosineMargin)")
        }
        if !["cosine", "step", "polynomial", "constant"].contains(learningRateSchedule) {
            problems.append("learningRateSchedule must be cosine, step, polynomial or constant: \(learningRateSchedule)")
        }
        if !(0...1).contains(finalLearningRateFraction) { problems.append("finalLearningRateFraction must be in [0, 1]: \(finalLearningRateFraction)") }
        if stepDecayEpochs.contains(where: { $0 < 0 }) { problems.append("stepDecayEpochs must be ≥ 0: \(stepDecayEpochs)") }
        if !(Self.isFiniteAsFloat(stepDecayFactor) && stepDecayFactor > 0) { problems.append("stepDecayFactor must be > 0\(float): \(stepDecayFactor)") }
        if !(Self.isFiniteAsFloat(polynomialPower) && polynomialPower > 0) { problems.append("polynomialPower must be > 0\(float): \(polynomialPower)") }
        if !(Self.isFiniteAsFloat(learningRate) && learningRate > 0) {
            problems.append("learningRate must be positive\(float): \(learningRate)")
        } else if learningRateSchedule == "step", Self.isFiniteAsFloat(stepDecayFactor), stepDecayFactor > 1,
                  !Self.isFiniteAsFloat(learningRate * pow(stepDecayFactor, Double(stepDecayEpochs.count))) {
            problems.append("learningRate × stepDecayFactor^\(stepDecayEpochs.count) (the last step's rate) must be finite as a 32-bit float: \(learningRate) × \(stepDecayFactor)^\(stepDecayEpochs.count)")
        }
        // SGD takes momentum and the clip norm as 32-bit floats: 0.9999999999 rounds to 1 there,
        // 1e-50 to 0 (either would trap in SGD), so the bounds hold after the conversion too.
        if !((0..<1).contains(momentum) && Float(momentum) < 1) {
            problems.append("momentum must be in [0, 1), also as a 32-bit float (≤ \(Double(Float(1).nextDown))): \(momentum)")
        } else if nesterov && !(Float(momentum) > 0) {
            problems.append("nesterov needs momentum > 0 (as a 32-bit float, ≥ \(Double(Float.leastNonzeroMagnitude))): momentum \(momentum)")
        }
        if !(Self.isFiniteAsFloat(weightDecay) && weightDecay >= 0) { problems.append("weightDecay must be ≥ 0\(float): \(weightDecay)") }
        if !(Self.isFiniteAsFloat(gradientClipNorm) && gradientClipNorm >= 0) {
            problems.append("gradientClipNorm must be ≥ 0 (0 disables)\(float): \(gradientClipNorm)")
        } else if gradientClipNorm > 0 && Float(gradientClipNorm) == 0 {
            problems.append("gradientClipNorm must be 0 (disabled) or ≥ \(Double(Float.leastNonzeroMagnitude)) (nonzero as a 32-bit float): \(gradientClipNorm)")
        }
        if !(0...1).contains(backboneLearningRateScale) {
            problems.append("backboneLearningRateScale must be in [0, 1] (1: the head's rate): \(backboneLearningRateScale)")
        }
        if epochs < 1 { problems.append("epochs must be ≥ 1: \(epochs)") }
        if warmupEpochs < 0 || warmupEpochs >= epochs { problems.append("warmupEpochs must be in 0..<epochs: \(warmupEpochs)") }
        if marginWarmupEpochs < 0 { problems.append("marginWarmupEpochs must be ≥ 0: \(marginWarmupEpochs)") }
        if subcenters < 1 { problems.append("subcenters must be ≥ 1: \(subcenters)") }
        if !(partialFCSampleRate > 0 && partialFCSampleRate <= 1) {
            problems.append("partialFCSampleRate must be in (0, 1]: \(partialFCSampleRate)")
        }
        if batchSize < 2 { problems.append("batchSize must be ≥ 2 (BatchNorm needs a batch): \(batchSize)") }
        if validationIdentities < 0 { problems.append("validationIdentities must be ≥ 0 (0: no validation split): \(validationIdentities)") }
        if heldOutIdentities < 2 { problems.append("heldOutIdentities must be ≥ 2 (verification needs impostor pairs): \(heldOutIdentities)") }
        if maxTranslation < 0 { problems.append("maxTranslation must be ≥ 0: \(maxTranslation)") }
        if folds < 2 { problems.append("folds must be ≥ 2: \(folds)") }
        if !(0...Self.maximumThreads).contains(threads) {
            problems.append("threads must be in 0…\(Self.maximumThreads) (0: the library's default): \(threads)")
        }
        if keepCheckpoints < 1 { problems.append("keepCheckpoints must be ≥ 1: \(keepCheckpoints)") }
        if checkpointEverySteps < 0 { problems.append("checkpointEverySteps must be ≥ 0 (0: epoch ends only): \(checkpointEverySteps)") }
        problems += verificationProblems()
        if backbone.embeddingDimension < 1 { problems.append("backbone.embeddingDimension must be ≥ 1") }
        // Documented bounds (README): far above any face model, far below sizes that cannot be allocated.
        if backbone.embeddingDimension > Self.maximumEmbeddingDimension {
            problems.append("backbone.embeddingDimension must be ≤ \(Self.maximumEmbeddingDimension): \(backbone.embeddingDimension)")
        }
        if backbone.inputHeight > Self.maximumInputSide || backbone.inputWidth > Self.maximumInputSide {
            problems.append("backbone.inputHeight and inputWidth must be ≤ \(Self.maximumInputSide): \(backbone.inputHeight)×\(backbone.inputWidth)")
        }
        if backbone.stageChannels.contains(where: { $0 > Self.maximumStageChannels }) {
            problems.append("backbone.stageChannels must each be ≤ \(Self.maximumStageChannels): \(backbone.stageChannels)")
        }
        if backbone.inputChannels < 1 || backbone.inputHeight < 1 || backbone.inputWidth < 1 {
            problems.append("backbone input size must be positive: \(backbone.inputChannels)×\(backbone.inputHeight)×\(backbone.inputWidth)")
        } else if maxTranslation >= min(backbone.inputHeight, backbone.inputWidth) {
            problems.append("maxTranslation must be smaller than the image: \(maxTranslation)")
        }
        if backbone.kind != .default {
            problems += backbone.familyProblems   // fixed layers: RGB 112×112, an IResNet depth, no stage keys
        } else if backbone.stageChannels.isEmpty || backbone.stageChannels.contains(where: { $0 < 1 }) {
            problems.append("backbone.stageChannels must be non-empty and positive: \(backbone.stageChannels)")
        } else if backbone.inputHeight >> (backbone.stageChannels.count - 1) < 2 || backbone.inputWidth >> (backbone.stageChannels.count - 1) < 2 {
            problems.append("backbone: \(backbone.stageChannels.count) stages of 2×2 pooling do not fit \(backbone.inputHeight)×\(backbone.inputWidth) images")
        }
        if !(0..<1).contains(backbone.dropout) { problems.append("backbone.dropout must be in [0, 1): \(backbone.dropout)") }
        if ![1, 3].contains(backbone.inputChannels) { problems.append("backbone.inputChannels must be 1 (grey) or 3 (RGB): \(backbone.inputChannels)") }
        return problems
    }

    /// The largest `backbone.inputHeight` / `inputWidth` accepted, in pixels.
    public static let maximumInputSide = 4096
    /// The largest channel count of a backbone stage accepted.
    public static let maximumStageChannels = 4096
    /// The largest `threads` accepted. OpenBLAS caps its pool at the `NUM_THREADS` it was built
    /// with, and more threads than cores only oversubscribe them; a value like 100000 is a typo.
    /// The bound is fixed rather than a multiple of this machine's cores so that a checkpoint's
    /// configuration stays valid when it is resumed on another machine.
    public static let maximumThreads = 1024
    /// The largest `backbone.embeddingDimension` accepted.
    public static let maximumEmbeddingDimension = 65536

    /// Whether `value` converts to a finite `Float`: finite and |value| ≤ `Float.greatestFiniteMagnitude`.
    static func isFiniteAsFloat(_ value: Double) -> Bool {
        value.isFinite && abs(value) <= Double(Float.greatestFiniteMagnitude)
    }

    /// The configuration as pretty-printed JSON with sorted keys.
    public func jsonData() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Encoding a struct of plain values cannot fail.
        return (try? encoder.encode(self)) ?? Data()
    }

    /// Decodes a configuration from JSON that overrides any subset of `base`'s keys.
    ///
    /// - Parameter validate: check ranges (pass `false` when command-line overrides follow;
    ///   validate once after them).
    /// - Throws: `ConfigurationError.unknownKey` for a key that `TrainingConfiguration` does not
    ///   have (at any nesting level; Codable would silently ignore it), `.invalidJSON` or
    ///   `.invalidValue` otherwise (a key given twice in one object, a name that is not one of the
    ///   key's accepted values, a value of the wrong JSON kind: each naming the key, what it
    ///   accepts and what was found; also `easyMargin` and `marginFallback` given together and
    ///   disagreeing), and `.outOfRange` listing every range problem. The key `easyMargin` of
    ///   earlier versions (a Bool) is read as `marginFallback` `"easy"`/`"hard"`.
    public static func decode(json data: Data, over base: TrainingConfiguration = .base,
                              source: String = "configuration", validate: Bool = true) throws(ConfigurationError) -> TrainingConfiguration {
        let overrides: Any
        guard !data.allSatisfy({ [0x20, 0x09, 0x0A, 0x0D].contains($0) }) else {
            throw .invalidJSON(source: source, reason: "the file is empty (expected a JSON object such as {\"epochs\": 100})")
        }
        do { overrides = try JSONSerialization.jsonObject(with: data) }
        catch {
            // Foundation's own words say where ("Invalid value around character 7.",
            // "Number 1e400 is not representable in Swift."); its localized text does not.
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw .invalidJSON(source: source, reason: detail ?? error.localizedDescription)
        }
        guard let overrideObject = overrides as? [String: Any] else {
            throw .invalidJSON(source: source, reason: "the top level must be a JSON object")
        }
        if let duplicate = DuplicateKeyScanner.firstDuplicate(in: data) {
            throw .invalidValue(source: source, key: duplicate, reason: "the key is given twice (remove one; JSON readers would silently keep the last)")
        }
        let translated = try translatingLegacyKeys(overrideObject, source: source)
        guard var baseObject = (try? JSONSerialization.jsonObject(with: base.jsonData())) as? [String: Any] else {
            throw .invalidJSON(source: source, reason: "internal: cannot encode the base configuration")
        }
        // Another backbone kind starts from that kind's defaults (`backbone.kind`).
        if let backbone = baseBackboneObject(for: translated, over: base) { baseObject["backbone"] = backbone }
        let merged = try merge(translated, into: baseObject, path: "", source: source)
        do {
            let mergedData = try JSONSerialization.data(withJSONObject: merged)
            let configuration = try JSONDecoder().decode(TrainingConfiguration.self, from: mergedData)
            let problems = validate ? configuration.validationProblems() : []
            if !problems.isEmpty { throw ConfigurationError.outOfRange(source: source, problems: problems) }
            return configuration
        } catch let error as ConfigurationError {
            throw error
        } catch let DecodingError.typeMismatch(type, context) {
            let path = context.codingPath.map(\.stringValue)
            let found = value(at: path, in: overrideObject).map { ", found \(jsonText($0))" } ?? ""
            throw .invalidValue(source: source, key: path.joined(separator: "."), reason: "expected \(jsonKind(of: type))\(found)")
        } catch let DecodingError.valueNotFound(type, context) {
            throw .invalidValue(source: source, key: context.codingPath.map(\.stringValue).joined(separator: "."),
                                reason: "expected \(jsonKind(of: type)), found null")
        } catch let DecodingError.dataCorrupted(context) {
            throw .invalidValue(source: source, key: context.codingPath.map(\.stringValue).joined(separator: "."),
                                reason: context.debugDescription)
        } catch {
            throw .invalidValue(source: source, key: "?", reason: "\(error)")
        }
    }

    private static func merge(_ overrides: [String: Any], into base: [String: Any], path: String,
                              source: String) throws(ConfigurationError) -> [String: Any] {
        var result = base
        for (key, value) in overrides {
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard let baseValue = base[key] ?? optionalKeyPlaceholders[keyPath] else {
                throw .unknownKey(source: source, key: keyPath,
                                  known: (Array(base.keys) + optionalKeys(under: path).filter { base[$0] == nil }).sorted())
            }
            if value is NSNull {
                throw .invalidValue(source: source, key: keyPath, reason: "null is not a value here (leave the key out to keep its default)")
            }
            if let nestedBase = baseValue as? [String: Any] {
                guard let nested = value as? [String: Any] else {
                    throw .invalidValue(source: source, key: keyPath, reason: "expected an object")
                }
                result[key] = try merge(nested, into: nestedBase, path: keyPath, source: source)
            } else {
                try checkArrayKind(value, base: baseValue, key: keyPath, source: source)
                try checkNamedValue(value, key: keyPath, source: source)
                if let minimum = integerKeys[keyPath] { try checkInteger(value, key: keyPath, minimum: minimum, source: source) }
                result[key] = value
            }
        }
        return result
    }

    private func formatted(_ x: Double) -> String {
        x == x.rounded() ? String(Int(x)) : String(x)
    }
}

/// A problem with a configuration file or value.
public enum ConfigurationError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read.
    case unreadable(path: String, reason: String)
    /// The text is not a JSON object.
    case invalidJSON(source: String, reason: String)
    /// `key` (a dotted path) is not a configuration key; `known` lists the keys at that level.
    case unknownKey(source: String, key: String, known: [String])
    /// The value of `key` has the wrong type or form.
    case invalidValue(source: String, key: String, reason: String)
    /// Values outside their documented ranges, one description each.
    case outOfRange(source: String, problems: [String])

    public var description: String {
        switch self {
        case let .unreadable(path, reason): "cannot read configuration \(path): \(reason)"
        case let .invalidJSON(source, reason): "\(source): not valid configuration JSON: \(reason)"
        case let .unknownKey(source, key, known):
            "\(source): unknown key '\(key)' (known keys here: \(known.joined(separator: ", ")))"
        case let .invalidValue(source, key, reason): "\(source): bad value for '\(key)': \(reason)"
        case let .outOfRange(source, problems): "\(source): " + problems.joined(separator: "; ")
        }
    }
}
