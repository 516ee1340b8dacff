import Foundation
import FaceData

extension TrainingConfiguration {
    /// The preprocessing a model of this configuration is trained and evaluated with: the
    /// backbone's input `[C, H, W]`, RGB order, `(x − 127.5)/127.5`.
    public var preprocessing: InputPreprocessing {
        InputPreprocessing(channels: backbone.inputChannels, height: backbone.inputHeight, width: backbone.inputWidth)
    }
}
