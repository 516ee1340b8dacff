// The depthwise and 1×1 convolution tables: MobileFaceNet's depthwise shapes against the
// memory-bandwidth bound of the bytes they must move, and 1×1 convolutions (MobileFaceNet's
// expansions and projections, IResNet's stride-2 downsample) against the GEMMs they issue.
import ArcFace

/// The measured copy bandwidth: a parallel copy of 2 × 256 MiB, bytes read + written per second.
struct BandwidthResult: Codable {
    var bytes: Int
    var copy: Timing
    var bytesPerSecond: Double
}

func benchmarkBandwidth(warmup: Int, repetitions: Int, threads: Int) -> BandwidthResult {
    let count = 64 << 20   // 256 MiB of Float
    let source = randomFloats(1 << 16, seed: 1)
    let big = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        for i in 0..<count { buffer[i] = source[i & 0xFFFF] }
        initialized = count
    }
    var target = [Float](repeating: 0, count: count)
    let timing = measure(warmup: warmup, repetitions: repetitions) {
        parallelCopy(big, into: &target, workers: threads)
        blackHole(Double(target[count / 2]))
    }
    let bytes = 2 * count * MemoryLayout<Float>.size
    return BandwidthResult(bytes: bytes, copy: timing, bytesPerSecond: Double(bytes) / timing.minimum)
}

/// One depthwise row: forward and backward (with ∂x) of a `Conv2D(groups: C)`.
struct DepthwiseResult: Codable {
    var batchSize: Int, channels: Int, height: Int, width: Int, kernelSize: Int, stride: Int, padding: Int, groups: Int
    var forward: Timing, backward: Timing
    /// Bytes each pass must move at least: forward x + y + w; backward x + ∂y + ∂x + w + ∂w.
    var forwardBytes: Int, backwardBytes: Int
    /// Bytes per second (median) and the median time over the bandwidth bound `bytes / bandwidth`
    /// (`bandwidth` from the 256 MiB copy row at the start of the table).
    var forwardBytesPerSecond: Double, backwardBytesPerSecond: Double
    var forwardToBound: Double, backwardToBound: Double
    /// A parallel copy moving the same bytes (half read, half written), timed alternately with the
    /// passes (so machine load hits both alike), and the passes' medians over its median.
    var forwardCopy: Timing, backwardCopy: Timing
    var forwardToCopy: Double, backwardToCopy: Double
    /// The depthwise kernels' instruction set (`baseline`, `avx2`, `avx512`).
    var instructionSet = "\(DepthwiseInstructionSet.processDefault)"
}

func benchmarkDepthwise(n: Int, channels: Int, size: Int, kernelSize: Int = 3, stride: Int, padding: Int = 1,
                        groups: Int? = nil, bandwidth: Double, warmup: Int, repetitions: Int) -> DepthwiseResult {
    let groups = groups ?? channels
    var generator = SeededGenerator(seed: 21)
    let layer = Conv2D(inputChannels: channels, outputChannels: channels, kernelSize: kernelSize, stride: stride,
                       padding: padding, groups: groups, name: "dw", generator: &generator)
    let g = layer.geometry(height: size, width: size)
    let input = Tensor(shape: [n, channels, size, size], storage: randomFloats(n * channels * size * size, seed: 22))
    let outputGradient = Tensor(shape: [n, channels, g.outputHeight, g.outputWidth],
                                storage: randomFloats(n * channels * g.outputHeight * g.outputWidth, seed: 23))
    var cache: (any LayerCache)? = nil
    let f = MemoryLayout<Float>.size
    let x = input.count * f, y = outputGradient.count * f, w = layer.weight.value.count * f
    let forwardBytes = x + y + w, backwardBytes = 2 * x + y + 2 * w
    let forwardSource = randomFloats(forwardBytes / (2 * f), seed: 24), backwardSource = randomFloats(backwardBytes / (2 * f), seed: 25)
    var forwardTarget = forwardSource, backwardTarget = backwardSource
    let threads = BLAS.threadCount
    let timings = measureAlternately(warmup: warmup, repetitions: repetitions, [{
        parallelCopy(forwardSource, into: &forwardTarget, workers: threads)
        blackHole(Double(forwardTarget[0]))
    }, {
        parallelCopy(backwardSource, into: &backwardTarget, workers: threads)
        blackHole(Double(backwardTarget[0]))
    }, {
        let (y, c) = layer.forward(input, mode: .training)
        cache = c
        blackHole(Double(y.storage[0]))
    }, {
        let dx = layer.backward(outputGradient, cache: cache!)
        blackHole(Double(dx.storage[0]))
    }])
    let (forwardCopy, backwardCopy, forward, backward) = (timings[0], timings[1], timings[2], timings[3])
    return DepthwiseResult(batchSize: n, channels: channels, height: size, width: size, kernelSize: kernelSize,
                           stride: stride, padding: padding, groups: groups, forward: forward, backward: backward,
                           forwardBytes: forwardBytes, backwardBytes: backwardBytes,
                           forwardBytesPerSecond: Double(forwardBytes) / forward.median,
                           backwardBytesPerSecond: Double(backwardBytes) / backward.median,
                           forwardToBound: forward.median * bandwidth / Double(forwardBytes),
                           backwardToBound: backward.median * bandwidth / Double(backwardBytes),
                           forwardCopy: forwardCopy, backwardCopy: backwardCopy,
                           forwardToCopy: forward.median / forwardCopy.median,
                           backwardToCopy: backward.median / backwardCopy.median)
}

/// MobileFaceNet's depthwise convolutions (arcface_torch `get_mbf`, scale 2, 112×112 input):
/// `(C, size, k, stride, padding, groups)`; the 64-channel 56×56 row is the scale-1 model's block,
/// the grouped row (64 groups of 2 channels) its second layer, the 7×7 one the GDC.
let mobileFaceNetDepthwiseShapes: [(channels: Int, size: Int, k: Int, stride: Int, padding: Int, groups: Int?)] = [
    (64, 56, 3, 1, 1, nil), (128, 56, 3, 2, 1, nil), (128, 28, 3, 1, 1, nil), (256, 28, 3, 2, 1, nil),
    (256, 14, 3, 1, 1, nil), (512, 14, 3, 2, 1, nil), (256, 7, 3, 1, 1, nil), (512, 7, 7, 1, 0, nil),
    (128, 56, 3, 1, 1, 64),
]

/// One 1×1 row: the layer's forward+backward (with ∂x) against the GEMMs it issues.
struct PointwiseResult: Codable {
    var batchSize: Int, inputChannels: Int, outputChannels: Int, size: Int, stride: Int
    var layer: Timing, gemms: Timing
    var ratio: Double
}

func benchmarkPointwise(n: Int, inputChannels: Int, outputChannels: Int, size: Int, stride: Int,
                        warmup: Int, repetitions: Int) -> PointwiseResult {
    var generator = SeededGenerator(seed: 31)
    let layer = Conv2D(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 1, stride: stride,
                       name: "pw", generator: &generator)
    let g = layer.geometry(height: size, width: size)
    let spatial = g.outputHeight * g.outputWidth
    let input = Tensor(shape: [n, inputChannels, size, size], storage: randomFloats(n * inputChannels * size * size, seed: 32))
    let outputGradient = Tensor(shape: [n, outputChannels, g.outputHeight, g.outputWidth],
                                storage: randomFloats(n * outputChannels * spatial, seed: 33))
    let columns = randomFloats(inputChannels * spatial, seed: 34), weight = layer.weight.value.storage
    var issuedOutput: [Float] = [], issuedScratch: [Float] = []
    let timings = measureAlternately(warmup: warmup, repetitions: repetitions, [{
        let (y, cache) = layer.forward(input, mode: .training)
        let dx = layer.backward(outputGradient, cache: cache)
        blackHole(Double(y.storage[0] + dx.storage[0]))
    }, {
        convolutionGEMMsOnly(batchSize: n, geometry: g, weight: weight, outputChannels: outputChannels,
                             columns: columns, output: &issuedOutput, scratch: &issuedScratch)
        blackHole(Double(issuedOutput[0] + issuedScratch[0]))
    }])
    return PointwiseResult(batchSize: n, inputChannels: inputChannels, outputChannels: outputChannels, size: size,
                           stride: stride, layer: timings[0], gemms: timings[1], ratio: timings[0].median / timings[1].median)
}

/// MobileFaceNet's 1×1 convolutions (expansion/projection, `conv_sep`) and IResNet's stride-2
/// downsample: `(Cin, Cout, input size, stride)`.
let pointwiseShapes: [(cin: Int, cout: Int, size: Int, stride: Int)] = [
    (128, 128, 28, 1), (128, 256, 28, 1), (256, 256, 14, 1), (256, 512, 14, 1), (512, 256, 7, 1), (256, 512, 7, 1),
    (64, 128, 56, 2), (128, 256, 28, 2), (256, 512, 14, 2),
]
