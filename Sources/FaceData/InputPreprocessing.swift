// What a model's input was when it was trained — size, channels, channel order, normalization —
// and a tally of the images a model is given, so evaluation and embedding can say when the two
// differ (the field's common silent error: grey images for an RGB model, another crop size, BGR).
import Foundation

/// The order of the three planes of a colour network input.
public enum ChannelOrder: String, Codable, Sendable, Equatable, CaseIterable {
    /// Red, green, blue: what this package's decoders produce and arcface_torch trains on
    /// (`mx.image.imdecode`, and `cv2.dnn.blobFromImage(…, swapRB=True)` in insightface's ONNX
    /// models).
    case rgb
    /// Blue, green, red: OpenCV's `imread` order, used by some imported models.
    case bgr
}

/// The preprocessing a model was trained with: its input `[C, H, W]`, the channel order, and the
/// normalization `(x − mean) / standardDeviation` of 8-bit pixel values `x` ∈ [0, 255].
///
/// Stored as JSON in the `preprocessing` metadata of every checkpoint and `model.safetensors`
/// (`{"channels":3,"height":112,"width":112,"channelOrder":"rgb","mean":127.5,"standardDeviation":127.5}`)
/// and printed with every score. This package trains and evaluates with `mean = 127.5`,
/// `standardDeviation = 127.5` (values in [−1, 1], as arcface_torch's
/// `transforms.Normalize(mean=[0.5]*3, std=[0.5]*3)` after `ToTensor`) and RGB order; a model that
/// records anything else is refused on load (`unsupportedReason`), never silently mis-fed.
public struct InputPreprocessing: Codable, Sendable, Equatable, CustomStringConvertible {
    /// `C`: 1 (grey) or 3 (colour).
    public var channels: Int
    /// `H`, `W`: the input size in pixels (images are resized and centre-cropped to it).
    public var height: Int, width: Int
    /// The order of the colour planes (meaningless for one channel; stored as `rgb`).
    public var channelOrder: ChannelOrder
    /// The normalization, in 8-bit pixel units: the network sees `(x − mean) / standardDeviation`.
    public var mean: Double, standardDeviation: Double

    /// The normalization this package applies: `(x − 127.5) / 127.5`, i.e. `2·(x/255) − 1`.
    public static let standardMean = 127.5, standardStandardDeviation = 127.5

    public init(channels: Int, height: Int, width: Int, channelOrder: ChannelOrder = .rgb,
                mean: Double = InputPreprocessing.standardMean,
                standardDeviation: Double = InputPreprocessing.standardStandardDeviation) {
        self.channels = channels
        self.height = height
        self.width = width
        self.channelOrder = channelOrder
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    /// The input size without the channel count.
    public var imageSize: ImageSize { ImageSize(width: width, height: height) }

    /// E.g. "3×112×112 RGB, (x − 127.5)/127.5" or "1×112×92 grey, (x − 127.5)/127.5" (C×H×W).
    public var description: String {
        let colour = channels == 1 ? "grey" : channelOrder.rawValue.uppercased()
        return "\(channels)×\(height)×\(width) \(colour), (x − \(Self.format(mean)))/\(Self.format(standardDeviation))"
    }

    /// Why this package cannot feed a model with this preprocessing, or nil when it can: the
    /// channel count must be 1 or 3, the size positive, colour order RGB and the normalization
    /// `(x − 127.5)/127.5` (to 10⁻⁶).
    public var unsupportedReason: String? {
        if channels != 1 && channels != 3 { return "\(channels) input channels (1 or 3 are supported)" }
        if height < 1 || width < 1 { return "input size \(height)×\(width) is not positive" }
        if channels == 3 && channelOrder != .rgb {
            return "the model expects \(channelOrder.rawValue.uppercased()) input; this package feeds RGB "
                + "(convert the model with its first convolution's input channels swapped)"
        }
        if abs(mean - Self.standardMean) > 1e-6 || abs(standardDeviation - Self.standardStandardDeviation) > 1e-6 {
            return "normalization (x − \(Self.format(mean)))/\(Self.format(standardDeviation)); this package feeds (x − 127.5)/127.5"
        }
        return nil
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// The channel count and size of an image as it was decoded, before it was converted for a model.
public struct SourceFormat: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var channels: Int
    public var width: Int, height: Int

    public init(channels: Int, width: Int, height: Int) {
        self.channels = channels
        self.width = width
        self.height = height
    }

    public init(of image: FaceImage) {
        self.init(channels: image.channels, width: image.width, height: image.height)
    }

    public static func < (a: SourceFormat, b: SourceFormat) -> Bool {
        (a.channels, a.height, a.width) < (b.channels, b.height, b.width)
    }

    /// E.g. "grey 92×112" (width×height, as image tools print sizes).
    public var description: String { "\(channels == 1 ? "grey" : "colour") \(width)×\(height)" }
}

/// How many images of each `SourceFormat` a model was given (`FaceDataset.load`'s report, the
/// images of `arcface embed` and of a pairs protocol), to compare with its `InputPreprocessing`.
public struct InputSourceTally: Sendable, Equatable {
    /// Images counted per decoded format.
    public private(set) var counts: [SourceFormat: Int] = [:]

    public init() {}

    /// The number of images counted.
    public var imageCount: Int { counts.values.reduce(0, +) }

    /// Counts `image` (as decoded, before conversion).
    public mutating func record(_ image: FaceImage) { record(SourceFormat(of: image)) }

    /// Counts one image of `format`.
    public mutating func record(_ format: SourceFormat) { counts[format, default: 0] += 1 }

    /// One warning line per way the images differ from what the model was trained on: grey
    /// images for a colour model (their plane is copied to R, G and B), colour images for a grey
    /// model (converted to luma), images of another size (resized and centre-cropped). Empty when
    /// every image already has the model's channels and size.
    public func mismatchWarnings(against model: InputPreprocessing) -> [String] {
        let total = imageCount
        var warnings: [String] = []
        let otherChannels = counts.filter { $0.key.channels != model.channels }.values.reduce(0, +)
        if otherChannels > 0 {
            warnings.append(model.channels == 3
                ? "\(otherChannels) of \(total) images are grey but the model was trained on colour (\(model)): each grey plane was copied to R, G and B; scores on them are not comparable with the model's colour figures"
                : "\(otherChannels) of \(total) images are colour but the model was trained on grey (\(model)): they were converted to grey (BT.601 luma)")
        }
        let resized = counts.filter { $0.key.width != model.width || $0.key.height != model.height }
        if !resized.isEmpty {
            let sizes = resized.keys.map { "\($0.width)×\($0.height)" }
            let shown = Array(Set(sizes)).sorted().prefix(3).joined(separator: ", ") + (Set(sizes).count > 3 ? ", …" : "")
            warnings.append("\(resized.values.reduce(0, +)) of \(total) images are not \(model.width)×\(model.height) (\(shown), width×height): they were resized and centre-cropped to it (bilinear, aspect kept); a model trained on aligned crops expects crops aligned the same way (arcface align)")
        }
        return warnings
    }

    /// The first way `image` (as decoded) differs from `model`'s input, or nil.
    public static func mismatch(of image: FaceImage, against model: InputPreprocessing) -> String? {
        if image.channels != model.channels {
            // Both sizes width×height: `model`'s own description is C×H×W, and "colour 100×120 but
            // the model takes 1×112×92" read as two orders of the same numbers.
            return "the image is \(image.channels == 1 ? "grey" : "colour"), \(image.width)×\(image.height) pixels (width×height), "
                + "but the model takes \(model.channels == 1 ? "grey" : "colour"), \(model.width)×\(model.height) "
                + "(input C×H×W \(model))"
        }
        if image.width != model.width || image.height != model.height {
            return "the image is \(image.width)×\(image.height) pixels (width×height) but the model takes \(model.width)×\(model.height)"
        }
        return nil
    }
}

extension FaceImage {
    /// The image prepared for a model with `preprocessing`: converted to its channels, then
    /// `resizedAndCropped(to:)` its input size (`prepared(channels:size:)`).
    public func prepared(for preprocessing: InputPreprocessing) -> FaceImage {
        prepared(channels: preprocessing.channels, size: preprocessing.imageSize)
    }
}

/// What evaluation and embedding do with an image whose channels or size differ from the
/// model's input (`InputPreprocessing`).
public enum InputMismatchPolicy: Sendable, Equatable {
    /// Convert it (channels, then resize and centre-crop) and count it for a warning.
    case convert
    /// Stop with an error naming the image (`arcface … --strict-input`).
    case refuse
}

extension InputPreprocessing {
    /// The metadata key of checkpoints and `model.safetensors` that holds the preprocessing JSON.
    public static let metadataKey = "preprocessing"

    /// The compact JSON stored under `metadataKey` (sorted keys).
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain numbers and strings cannot fail.
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The preprocessing in `json`, or nil when it is not valid preprocessing JSON.
    public init?(json: String) {
        guard let value = try? JSONDecoder().decode(InputPreprocessing.self, from: Data(json.utf8)) else { return nil }
        self = value
    }
}
