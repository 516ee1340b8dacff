// The memory of the field's backbones (IResNet, MobileFaceNet), tallied layer by layer from
// their architectures, for `BackboneConfiguration.memoryBytesEstimate`.

/// A running count, in floats, of what a network's layers hold: parameters and buffers, per-image
/// activations and the convolutions' scratch. Each layer keeps its output array between calls
/// (training and inference) and, in training, its input-gradient array; caches share the arrays
/// they save. So, per image:
///
/// - convolution `Cin → Cout`, `k×k`, to `Ho×Wo`: output `Cout·Ho·Wo`, + `Cin·H·W` in training;
///   scratch per worker: the im2col matrix and its gradient `2·k²·Cin·Ho·Wo` (an upper bound for
///   grouped convolutions, whose groups' matrices are `Cin/g` rows each) and a weight-gradient
///   partial `Cout·(Cin/g)·k²`;
/// - BatchNorm, PReLU, a residual sum: `C·H·W`, ×2 in training;
/// - Dropout `3·F` in training (mask, output, gradient); Linear `D`, + `F` in training.
///
/// Parameters count once here (`parameterFloats`); the estimate multiplies them by 3 in training
/// (value, gradient, SGD momentum).
package struct LayerMemoryTally {
    package let training: Bool
    /// `min(batchSize, cores)`, the convolution's workers.
    package let workers: Double
    /// Trainable scalars.
    package private(set) var parameterFloats = 0.0
    /// Non-trainable saved state (running statistics, fixed weights).
    package private(set) var bufferFloats = 0.0
    /// Activations and gradients per image.
    package private(set) var perImageFloats = 0.0
    /// Convolution scratch, whole batch.
    package private(set) var scratchFloats = 0.0

    package init(training: Bool, workers: Double) {
        self.training = training
        self.workers = workers
    }

    /// A square convolution without bias; returns its output size.
    @discardableResult
    package mutating func convolution(_ cin: Double, _ cout: Double, kernel k: Double, stride s: Double, padding p: Double,
                                      groups g: Double = 1, height h: Double, width w: Double) -> (Double, Double) {
        let ho = ((h + 2 * p - k) / s).rounded(.down) + 1, wo = ((w + 2 * p - k) / s).rounded(.down) + 1
        parameterFloats += cout * (cin / g) * k * k
        perImageFloats += cout * ho * wo + (training ? cin * h * w : 0)
        scratchFloats += workers * (2 * k * k * cin * ho * wo + cout * (cin / g) * k * k)
        return (ho, wo)
    }

    /// BatchNorm of `c` channels over `h×w`; `trainsWeight: false` keeps γ as a buffer.
    package mutating func batchNorm(_ c: Double, height h: Double = 1, width w: Double = 1, trainsWeight: Bool = true) {
        parameterFloats += trainsWeight ? 2 * c : c
        bufferFloats += trainsWeight ? 2 * c : 3 * c
        elementwise(c, height: h, width: w)
    }

    /// PReLU of `c` channels over `h×w`.
    package mutating func prelu(_ c: Double, height h: Double, width w: Double) {
        parameterFloats += c
        elementwise(c, height: h, width: w)
    }

    /// An elementwise array of `c·h·w` (a residual sum's output and gradient).
    package mutating func elementwise(_ c: Double, height h: Double, width w: Double) {
        perImageFloats += c * h * w * (training ? 2 : 1)
    }

    package mutating func dropout(_ features: Double) {
        perImageFloats += training ? 3 * features : 0
    }

    package mutating func linear(_ features: Double, _ outputs: Double, bias: Bool) {
        parameterFloats += features * outputs + (bias ? outputs : 0)
        perImageFloats += outputs + (training ? features : 0)
    }

    /// Bytes for a batch: parameters (×3 in training), buffers, `batch` images of activations
    /// plus the input image twice (a mirrored copy), and the scratch, 4 bytes a float.
    package func bytes(batchSize: Double, inputFloats: Double) -> Double {
        4 * ((training ? 3 : 1) * parameterFloats + bufferFloats + batchSize * (perImageFloats + 2 * inputFloats) + scratchFloats)
    }
}

extension IResNetArchitecture {
    /// The memory of an `IResNet` of this architecture, layer by layer (`LayerMemoryTally`).
    package func memoryTally(training: Bool, workers: Double) -> LayerMemoryTally {
        var t = LayerMemoryTally(training: training, workers: workers)
        var h = Double(inputHeight), w = Double(inputWidth)
        var c = Double(stemChannels)
        t.convolution(Double(inputChannels), c, kernel: 3, stride: 1, padding: 1, height: h, width: w)
        t.batchNorm(c, height: h, width: w)
        t.prelu(c, height: h, width: w)
        for (channels, count) in zip(stageChannels.map(Double.init), blocks) {
            for index in 0..<count {
                let stride: Double = index == 0 ? 2 : 1
                t.batchNorm(c, height: h, width: w)
                t.convolution(c, channels, kernel: 3, stride: 1, padding: 1, height: h, width: w)
                t.batchNorm(channels, height: h, width: w)
                t.prelu(channels, height: h, width: w)
                let (ho, wo) = t.convolution(channels, channels, kernel: 3, stride: stride, padding: 1, height: h, width: w)
                t.batchNorm(channels, height: ho, width: wo)
                if index == 0 {
                    t.convolution(c, channels, kernel: 1, stride: stride, padding: 0, height: h, width: w)
                    t.batchNorm(channels, height: ho, width: wo)
                }
                t.elementwise(channels, height: ho, width: wo)   // the sum (and its gradient)
                c = channels
                (h, w) = (ho, wo)
            }
        }
        t.batchNorm(c, height: h, width: w)
        let features = c * h * w, dimension = Double(embeddingDimension)
        t.dropout(features)
        t.linear(features, dimension, bias: true)
        t.batchNorm(dimension, trainsWeight: false)
        return t
    }
}

extension MobileFaceNetArchitecture {
    /// The memory of a `MobileFaceNet` of this architecture, layer by layer (`LayerMemoryTally`).
    package func memoryTally(training: Bool, workers: Double) -> LayerMemoryTally {
        var t = LayerMemoryTally(training: training, workers: workers)
        var h = Double(inputHeight), w = Double(inputWidth), c = Double(inputChannels)
        func convBlock(_ cout: Double, kernel: Double, stride: Double, padding: Double, groups: Double, activation: Bool) {
            (h, w) = t.convolution(c, cout, kernel: kernel, stride: stride, padding: padding, groups: groups, height: h, width: w)
            t.batchNorm(cout, height: h, width: w)
            if activation { t.prelu(cout, height: h, width: w) }
            c = cout
        }
        func depthwise(_ cout: Double, expansion e: Double, stride: Double, residual: Bool) {
            convBlock(e, kernel: 1, stride: 1, padding: 0, groups: 1, activation: true)
            convBlock(e, kernel: 3, stride: stride, padding: 1, groups: e, activation: true)
            convBlock(cout, kernel: 1, stride: 1, padding: 0, groups: 1, activation: false)
            if residual { t.elementwise(c, height: h, width: w) }   // the sum (and its gradient)
        }
        for module in modules {
            switch module {
            case let .convolution(cout, kernel, stride, groups):
                convBlock(Double(cout), kernel: Double(kernel), stride: Double(stride), padding: Double(kernel / 2),
                          groups: Double(groups), activation: true)
            case let .depthwise(cout, expansion, stride):
                depthwise(Double(cout), expansion: Double(expansion), stride: Double(stride), residual: false)
            case let .residual(channels, count, expansion):
                for _ in 0..<count { depthwise(Double(channels), expansion: Double(expansion), stride: 1, residual: true) }
            }
        }
        convBlock(512, kernel: 1, stride: 1, padding: 0, groups: 1, activation: true)   // conv_sep
        convBlock(512, kernel: 7, stride: 1, padding: 0, groups: 512, activation: false) // features.layers.0
        let dimension = Double(embeddingDimension)
        t.linear(512 * h * w, dimension, bias: false)
        t.batchNorm(dimension)
        return t
    }
}
