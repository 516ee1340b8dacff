// The depthwise convolution's kernels (`groups == Cin == Cout`). Placeholder: delegates to the
// grouped path (one 1-row GEMM per image and channel) until the direct kernel lands.
import TensorCore

func depthwiseConvolutionForward(_ input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                                 weight: [Float], bias: [Float]?, into output: inout [Float], scratch: inout [Float]) {
    groupedConvolutionForward(input, batchSize: batchSize, geometry: g, groups: g.channels, weight: weight,
                              outputChannels: g.channels, bias: bias, into: &output, scratch: &scratch)
}

func depthwiseConvolutionBackward(outputGradient: [Float], input: [Float], batchSize: Int, geometry g: ConvolutionGeometry,
                                  weight: [Float], weightGradient: inout [Float], computesInputGradient: Bool,
                                  into inputGradient: inout [Float], scratch: inout [Float]) {
    groupedConvolutionBackward(outputGradient: outputGradient, input: input, batchSize: batchSize, geometry: g,
                               groups: g.channels, weight: weight, outputChannels: g.channels,
                               weightGradient: &weightGradient, computesInputGradient: computesInputGradient,
                               into: &inputGradient, scratch: &scratch)
}
