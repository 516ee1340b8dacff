// Parallel loops for the kernels of the sibling modules, and the switch that keeps OpenBLAS
// single-threaded while Swift workers each issue their own GEMMs: the two levels never run at full
// width together, which would put more threads than cores on the machine.
import Dispatch
import Synchronization

/// A pointer shared by the workers of one parallel kernel. Contract: each worker reads and
/// writes only the elements (rows, tasks) it was given, so writes never overlap.
package struct SharedPointer<T>: @unchecked Sendable {
    package let base: UnsafeMutablePointer<T>
    package init(base: UnsafeMutablePointer<T>) { self.base = base }
}

/// A read-only pointer shared by the workers of one parallel kernel.
package struct SharedConstPointer<T>: @unchecked Sendable {
    package let base: UnsafePointer<T>
    package init(base: UnsafePointer<T>) { self.base = base }
}

/// Bookkeeping of `withSingleThreadedBLAS`: how many callers are inside, and the configured
/// thread count (`BLAS.threadCount`) to restore when the last one leaves.
private let singleThreadedSections = Mutex<(depth: Int, configuredThreads: Int)>((0, 1))

/// `BLAS.threadCount`'s getter: OpenBLAS's count, or the configured one inside a section.
func configuredThreadCount() -> Int {
    singleThreadedSections.withLock { state in
        state.depth > 0 ? state.configuredThreads : BLAS.libraryThreadCount
    }
}

/// `BLAS.threadCount`'s setter: sets OpenBLAS's count, or, inside a section, the count restored
/// when the section ends.
func configureThreadCount(_ threads: Int) {
    singleThreadedSections.withLock { state in
        if state.depth > 0 { state.configuredThreads = threads } else { BLAS.libraryThreadCount = threads }
    }
}

/// Runs `body(workers)` with OpenBLAS limited to one thread, where `workers` is the configured
/// thread count (`BLAS.threadCount`), so `body` can run that many workers that each issue
/// single-threaded GEMMs. Nested or concurrent callers are counted: the configured count
/// (including one set meanwhile through `BLAS.threadCount`) is restored when the last one leaves.
package func withSingleThreadedBLAS<R>(_ body: (_ workers: Int) -> R) -> R {
    let workers = singleThreadedSections.withLock { state -> Int in
        if state.depth == 0 {
            state.configuredThreads = BLAS.libraryThreadCount
            if state.configuredThreads > 1 { BLAS.libraryThreadCount = 1 }
        }
        state.depth += 1
        return state.configuredThreads
    }
    defer {
        singleThreadedSections.withLock { state in
            state.depth -= 1
            if state.depth == 0 && state.configuredThreads > 1 { BLAS.libraryThreadCount = state.configuredThreads }
        }
    }
    return body(workers)
}

/// Runs `body(task, worker)` for every `task` in `0..<tasks` on up to `workers` threads. Workers
/// take the next task from a shared counter, so a worker whose core is busy with something else
/// does not hold the others up; `worker` (in `0..<workers`) identifies the calling worker, for
/// per-worker scratch. Which worker runs a task varies, so a task's result must not depend on it.
/// With one worker, or one task, it runs inline (as worker 0, tasks in order).
package func forEachTask(_ tasks: Int, workers: Int, _ body: @Sendable (_ task: Int, _ worker: Int) -> Void) {
    let workers = min(max(workers, 1), tasks)
    if workers <= 1 {
        for t in 0..<tasks { body(t, 0) }
        return
    }
    let next = Atomic<Int>(0)
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        while true {
            let t = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if t >= tasks { break }
            body(t, w)
        }
    }
}

/// The number of workers for an elementwise pass over `elements` values: `BLAS.threadCount`,
/// or 1 when the pass is too small to pay for a dispatch (≈ 10 µs).
package func elementwiseWorkers(_ elements: Int) -> Int {
    elements < 1 << 16 ? 1 : BLAS.threadCount
}
