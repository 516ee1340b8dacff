/// The geometry of a 2-D convolution (or pooling) window over an NCHW image batch.
package struct ConvolutionGeometry: Sendable, Equatable, Codable {
    /// Input channels `C`, height `H`, width `W` (per image).
    package var channels: Int, height: Int, width: Int
    /// Window size `kh × kw`, stride and zero padding, in pixels.
    package var kernelHeight: Int, kernelWidth: Int
    package var strideHeight: Int, strideWidth: Int
    package var paddingHeight: Int, paddingWidth: Int

    package init(channels: Int, height: Int, width: Int,
                 kernelHeight: Int, kernelWidth: Int,
                 strideHeight: Int = 1, strideWidth: Int = 1,
                 paddingHeight: Int = 0, paddingWidth: Int = 0) {
        precondition(channels > 0 && height > 0 && width > 0, "convolution input must be non-empty: C=\(channels) H=\(height) W=\(width)")
        precondition(kernelHeight > 0 && kernelWidth > 0 && strideHeight > 0 && strideWidth > 0,
                     "kernel \(kernelHeight)×\(kernelWidth) and stride \(strideHeight)×\(strideWidth) must be positive")
        precondition(paddingHeight >= 0 && paddingWidth >= 0, "padding must be non-negative")
        self.channels = channels; self.height = height; self.width = width
        self.kernelHeight = kernelHeight; self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight; self.strideWidth = strideWidth
        self.paddingHeight = paddingHeight; self.paddingWidth = paddingWidth
        precondition(outputHeight > 0 && outputWidth > 0,
                     "kernel \(kernelHeight)×\(kernelWidth) does not fit input \(height)×\(width) with padding \(paddingHeight)×\(paddingWidth)")
    }

    /// `Ho = (H + 2·ph − kh) / sh + 1`.
    package var outputHeight: Int { (height + 2 * paddingHeight - kernelHeight) / strideHeight + 1 }
    /// `Wo = (W + 2·pw − kw) / sw + 1`.
    package var outputWidth: Int { (width + 2 * paddingWidth - kernelWidth) / strideWidth + 1 }
    /// `C·kh·kw`: the rows of the im2col matrix.
    package var patchSize: Int { channels * kernelHeight * kernelWidth }
    /// `C·H·W`: elements of one input image.
    package var inputSize: Int { channels * height * width }
}
