// The memory-bandwidth row of the bench: a parallel copy of a buffer much larger than the caches,
// split into one contiguous slice per worker (`forEachTask`, as the layer kernels run). Pointer
// code, hence this file's name.
import ArcFace

/// Copies `source` into `target` (same count) on `workers` threads, one contiguous slice each.
func parallelCopy(_ source: [Float], into target: inout [Float], workers: Int) {
    precondition(source.count == target.count, "parallelCopy: \(source.count) vs \(target.count) elements")
    let count = source.count
    source.withUnsafeBufferPointer { ps in
        target.withUnsafeMutableBufferPointer { pt in
            let s = SharedConstPointer(base: ps.baseAddress!), t = SharedPointer(base: pt.baseAddress!)
            forEachTask(workers, workers: workers) { slice, _ in
                let range = (count * slice / workers)..<(count * (slice + 1) / workers)
                (t.base + range.lowerBound).update(from: s.base + range.lowerBound, count: range.count)
            }
        }
    }
}
