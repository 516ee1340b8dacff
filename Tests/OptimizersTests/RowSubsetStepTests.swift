import Testing
import TensorCore
import _TestSupport
import Optimizers

@Suite struct RowSubsetStepTests {
    @Test("SGD step updating only some rows: listed rows move exactly as in a full step; the others keep value and momentum",
          arguments: [false, true])
    func updatingOnlySomeRows(decoupled: Bool) {
        let rows = 5, columns = 3
        let start = randomArray(rows * columns, seed: 1)
        let configuration = SGDConfiguration(momentum: 0.9, nesterov: true, weightDecay: 0.01,
                                             decoupledWeightDecay: decoupled)
        let full = Parameter(name: "w", value: Tensor(shape: [rows, columns], storage: start))
        let sparse = Parameter(name: "w", value: Tensor(shape: [rows, columns], storage: start))
        let fullSGD = SGD(parameters: [full], configuration: configuration)
        let sparseSGD = SGD(parameters: [sparse], configuration: configuration)
        // Step 1: everything active in both (momentum buffers become non-zero everywhere).
        for (p, o) in [(full, fullSGD), (sparse, sparseSGD)] {
            o.zeroGradients()
            p.gradient.storage = randomArray(rows * columns, seed: 2)
            o.step(learningRate: 0.1)
        }
        let valueBefore = sparse.value.storage, bufferBefore = sparseSGD.momentumBuffers[0].storage
        // Step 2: only rows 1 and 3 may change for `sparse`; their gradient is the same as `full`'s.
        let gradient = randomArray(rows * columns, seed: 3)
        fullSGD.zeroGradients(); full.gradient.storage = gradient; fullSGD.step(learningRate: 0.1)
        sparseSGD.zeroGradients()
        var masked = [Float](repeating: 0, count: rows * columns)
        for r in [1, 3] { for c in 0..<columns { masked[r * columns + c] = gradient[r * columns + c] } }
        sparse.gradient.storage = masked
        sparseSGD.step(learningRate: 0.1, updatingOnly: [ParameterRows(parameter: sparse, rows: [1, 3])])
        for r in 0..<rows {
            let range = (r * columns)..<((r + 1) * columns)
            if r == 1 || r == 3 {
                #expect(Array(sparse.value.storage[range]) == Array(full.value.storage[range]), "row \(r)")
                #expect(Array(sparseSGD.momentumBuffers[0].storage[range]) == Array(fullSGD.momentumBuffers[0].storage[range]))
            } else {
                #expect(Array(sparse.value.storage[range]) == Array(valueBefore[range]), "row \(r) moved")
                #expect(Array(sparseSGD.momentumBuffers[0].storage[range]) == Array(bufferBefore[range]), "row \(r) momentum")
            }
        }
    }
}
