// The benchmarked workloads: the margin head against its three GEMMs, a convolution layer
// against its three GEMMs, and a whole training step.
import ArcFace

/// One row of the head table.
struct HeadResult: Codable {
    var batchSize: Int, classCount: Int, embeddingDimension: Int
    var chunked: Bool, chunkSize: Int, chunkCount: Int
    /// Bytes the head allocates per batch beyond its parameters and gradient (its plan).
    var extraBytes: Int
    var head: Timing
    /// The three raw sgemm calls (logits, ∂embeddings, ∂centers) of the same shapes.
    var gemmFloor: Timing
    var ratio: Double
    var samplesPerSecond: Double
    var gflops: Double
}

/// The head forward+backward (`MarginHead.loss` with gradients) at `[N, K]`, `D`, timed
/// alternately with the three raw GEMMs of the same shapes. The GEMM floor is computed over
/// class slices of the head's chunk size when chunked (so its memory stays bounded too).
func benchmarkHead(n: Int, k: Int, d: Int, chunkSize: Int?, tileSize: Int? = nil, passTileSize: Int? = nil, warmup: Int,
                   repetitions: Int) -> HeadResult {
    var generator = SeededGenerator(seed: 7)
    let head = MarginHead(classCount: k, embeddingDimension: d, scale: 64, margin: ArcFaceMargin(margin: 0.5),
                          chunkSize: chunkSize, generator: &generator)
    head.tileSize = tileSize
    head.passTileSize = passTileSize
    let embeddings = Tensor(shape: [n, d], storage: randomFloats(n * d, seed: 8))
    let labels = (0..<n).map { ($0 &* 7919) % k }
    let plan = try! HeadPlan(batchSize: n, classCount: k, subcenters: 1, embeddingDimension: d,
                             memoryBudgetBytes: head.memoryBudgetBytes, chunkSize: chunkSize, tileSize: tileSize)
    let slice = plan.chunkSize
    var logits = [Float](repeating: 0, count: n * slice)        // [N, C]
    var embeddingGradient = [Float](repeating: 0, count: n * d)  // [N, D]
    var centerGradient = [Float](repeating: 0, count: slice * d) // [C, D]
    let centers = head.centers.value.storage
    let unitEmbeddings = embeddings.storage
    let (headTiming, floorTiming) = measurePair(warmup: warmup, repetitions: repetitions, {
        let out = try! head.loss(embeddings: embeddings, labels: labels, reduction: .mean, computeGradients: true)
        blackHole(out.loss)
    }, {
        var c0 = 0
        while c0 < k {
            let width = min(slice, k - c0)
            gemm(transposeB: true, m: n, n: width, k: d, a: unitEmbeddings, lda: d, b: centers, bOffset: c0 * d,
                 ldb: d, c: &logits, ldc: width)
            gemm(m: n, n: d, k: width, a: logits, lda: width, b: centers, bOffset: c0 * d, ldb: d, beta: 1,
                 c: &embeddingGradient, ldc: d)
            gemm(transposeA: true, m: width, n: d, k: n, a: logits, lda: width, b: unitEmbeddings, ldb: d,
                 c: &centerGradient, ldc: d)
            c0 += width
        }
        blackHole(Double(centerGradient[0]))
    })
    let flops = 3 * 2 * Double(n) * Double(k) * Double(d)
    return HeadResult(batchSize: n, classCount: k, embeddingDimension: d, chunked: plan.chunkCount > 1,
                      chunkSize: plan.chunkSize, chunkCount: plan.chunkCount, extraBytes: plan.extraBytes,
                      head: headTiming, gemmFloor: floorTiming, ratio: headTiming.median / floorTiming.median,
                      samplesPerSecond: Double(n) / headTiming.median, gflops: flops / headTiming.median / 1e9)
}

/// One row of the convolution table.
struct ConvolutionResult: Codable {
    var batchSize: Int, inputChannels: Int, outputChannels: Int, height: Int, width: Int, kernelSize: Int
    var layer: Timing
    /// The GEMMs the layer issues (per image: forward, ∂weight, ∂columns), the same calls on the
    /// same workers, without im2col, col2im or anything else.
    var gemms: Timing
    var ratio: Double
    /// The three batch-wide GEMMs of a whole-batch im2col convolution (`[Cout, P] × [P, N·S]` and
    /// its two backward products), for reference: what the per-image layer replaced.
    var batchedGEMMs: Timing
    var ratioToBatchedGEMMs: Double
    var imagesPerSecond: Double
}

/// `Conv2D` forward+backward against the GEMMs it issues, and against the three batch-wide GEMMs
/// of the same convolution. The layer is the default backbone's second stage: 16 → 32 channels,
/// 3×3, padding 1, on 56×46 inputs. All three are timed alternately in the same run.
func benchmarkConvolution(n: Int, warmup: Int, repetitions: Int,
                          inputChannels: Int = 16, outputChannels: Int = 32, height: Int = 56, width: Int = 46) -> ConvolutionResult {
    var generator = SeededGenerator(seed: 9)
    let layer = Conv2D(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: 3, padding: 1,
                       name: "conv", generator: &generator)
    let input = Tensor(shape: [n, inputChannels, height, width], storage: randomFloats(n * inputChannels * height * width, seed: 10))
    let outputGradient = Tensor(shape: [n, outputChannels, height, width],
                                storage: randomFloats(n * outputChannels * height * width, seed: 11))
    let patch = inputChannels * 9, spatial = height * width, columns = n * spatial
    let geometry = layer.geometry(height: height, width: width)
    let imageColumns = randomFloats(patch * spatial, seed: 12)
    var issuedOutput: [Float] = [], issuedScratch: [Float] = []
    let cols = randomFloats(patch * columns, seed: 12)
    var output = [Float](repeating: 0, count: outputChannels * columns)
    var weightGradient = [Float](repeating: 0, count: outputChannels * patch)
    var columnGradient = [Float](repeating: 0, count: patch * columns)
    let weight = layer.weight.value.storage
    let timings = measureAlternately(warmup: warmup, repetitions: repetitions, [{
        let (y, cache) = layer.forward(input, mode: .training)
        let dx = layer.backward(outputGradient, cache: cache)
        blackHole(Double(y.storage[0] + dx.storage[0]))
    }, {
        convolutionGEMMsOnly(batchSize: n, geometry: geometry, weight: weight, outputChannels: outputChannels,
                             columns: imageColumns, output: &issuedOutput, scratch: &issuedScratch)
        blackHole(Double(issuedOutput[0] + issuedScratch[0]))
    }, {
        gemm(m: outputChannels, n: columns, k: patch, a: weight, lda: patch, b: cols, ldb: columns,
             c: &output, ldc: columns)
        gemm(transposeB: true, m: outputChannels, n: patch, k: columns, a: output, lda: columns, b: cols, ldb: columns,
             beta: 1, c: &weightGradient, ldc: patch)
        gemm(transposeA: true, m: patch, n: columns, k: outputChannels, a: weight, lda: patch, b: output, ldb: columns,
             c: &columnGradient, ldc: columns)
        blackHole(Double(columnGradient[0]))
    }])
    let (layerTiming, gemmTiming, batchedTiming) = (timings[0], timings[1], timings[2])
    return ConvolutionResult(batchSize: n, inputChannels: inputChannels, outputChannels: outputChannels, height: height,
                             width: width, kernelSize: 3, layer: layerTiming, gemms: gemmTiming,
                             ratio: layerTiming.median / gemmTiming.median, batchedGEMMs: batchedTiming,
                             ratioToBatchedGEMMs: layerTiming.median / batchedTiming.median,
                             imagesPerSecond: Double(n) / layerTiming.median)
}

/// One row of the training-step table.
struct StepResult: Codable {
    var batchSize: Int, classCount: Int
    var step: Timing
    var imagesPerSecond: Double
}

/// A whole training step of the default model (`TrainingConfiguration.base`: the AT&T backbone,
/// ArcFace head over 30 identities, SGD) on synthetic data: zero gradients, backbone forward,
/// head loss, backbone backward (no image gradient, as in the Trainer), SGD step.
func benchmarkTrainingStep(n: Int, warmup: Int, repetitions: Int, classCount: Int = 30) -> StepResult {
    let configuration = TrainingConfiguration.base
    let model = FaceRecognitionModel(configuration: configuration, classCount: classCount)
    let optimizer = SGD(parameters: model.parameters, configuration: SGDConfiguration(
        momentum: Float(configuration.momentum), weightDecay: Float(configuration.weightDecay)))
    let b = configuration.backbone
    let images = Tensor(shape: [n, b.inputChannels, b.inputHeight, b.inputWidth],
                        storage: randomFloats(n * b.inputChannels * b.inputHeight * b.inputWidth, seed: 13).map { max(-1, min(1, $0 * 0.5)) })
    let labels = (0..<n).map { $0 % classCount }
    model.backbone.computesInputGradient = false   // as the Trainer: the images need no gradient
    let timing = measure(warmup: warmup, repetitions: repetitions) {
        optimizer.zeroGradients()
        let (embeddings, cache) = model.backbone.forward(images, mode: .training)
        let out = try! model.head.loss(embeddings: embeddings, labels: labels, reduction: .mean, computeGradients: true)
        _ = model.backbone.backward(out.embeddingGradient, cache: cache)
        optimizer.step(learningRate: 0.01)
        blackHole(out.loss)
    }
    return StepResult(batchSize: n, classCount: classCount, step: timing, imagesPerSecond: Double(n) / timing.median)
}
