/// How `MarginHead` lays out one batch: classes per memory chunk and per cache tile, and the
/// extra memory.
public struct HeadPlan: Sendable, Equatable, CustomStringConvertible {
    /// Classes per chunk `C` (`C = K`: one chunk, the logits buffer is reused in place for the
    /// gradient; `C < K`: online log-sum-exp over chunks, logits recomputed for the backward).
    public var chunkSize: Int
    /// `⌈K / C⌉`.
    public var chunkCount: Int
    /// Classes per cache tile `T ≤ C`: the `∂W` GEMM and its correction pass run tile by tile
    /// (and, with Partial FC sampling, every pass: the tile's rows are gathered).
    public var tileSize: Int
    /// Classes per pass `P` (`T ≤ P ≤ C`): the forward GEMM, the row passes and the `∂ê` GEMM
    /// each run once per pass (fewer, larger GEMM calls and thread hand-offs than per tile),
    /// the `∂W` GEMM tile by tile within it. Default: `defaultPassTiles` tiles (≈ 16 MiB of
    /// centers, so a pass's centers stay in a shared L3 between its norms and its GEMM, and
    /// between its `∂ê` GEMM and its `∂W` corrections), balanced over the chunk.
    public var passTileSize: Int

    /// Tiles per default pass.
    public static let defaultPassTiles = 4
    /// The bytes the head allocates beyond its parameters and their gradient for this batch
    /// (logits chunk, inverse norms, tile buffers, embedding-sized buffers).
    public var extraBytes: Int

    /// The default tile: about 4 MiB of centers (`2²⁰/D` rows, at least one class).
    public static func defaultTileSize(subcenters k: Int, embeddingDimension d: Int) -> Int {
        max(1, (1 << 20) / max(d, 1) / max(k, 1))
    }

    /// The plan for a batch.
    ///
    /// - Parameters:
    ///   - batchSize: `N`.
    ///   - classCount: `K` (the classes in play: all, or the sampled ones).
    ///   - subcenters: `k ≥ 1` centers per class.
    ///   - embeddingDimension: `D`.
    ///   - memoryBudgetBytes: the most extra memory a batch may take; ignored when `chunkSize`
    ///     is given.
    ///   - chunkSize: an explicit `C` (clamped to `K`), or nil for the fewest chunks that fit the
    ///     budget, of equal size `⌈K / count⌉`.
    ///   - tileSize: an explicit `T` (clamped to `C`), or nil for `defaultTileSize`.
    /// - Throws: `HeadMemoryError.budgetTooSmall` when not even one class per chunk fits.
    public init(batchSize n: Int, classCount k: Int, subcenters: Int, embeddingDimension d: Int,
                memoryBudgetBytes: Int, chunkSize: Int?, tileSize: Int? = nil,
                passTileSize: Int? = nil) throws(HeadMemoryError) {
        precondition(tileSize.map { $0 >= 1 } ?? true, "HeadPlan: tileSize must be ≥ 1: \(tileSize ?? 0)")
        precondition(passTileSize.map { $0 >= 1 } ?? true, "HeadPlan: passTileSize must be ≥ 1: \(passTileSize ?? 0)")
        let tile = min(tileSize ?? HeadPlan.defaultTileSize(subcenters: subcenters, embeddingDimension: d), k)
        if let chunkSize {
            precondition(chunkSize >= 1, "HeadPlan: chunkSize must be ≥ 1: \(chunkSize)")
            self.chunkSize = min(chunkSize, k)
        } else {
            let fixed = HeadPlan.fixedBytes(batchSize: n, classCount: k, subcenters: subcenters, embeddingDimension: d,
                                            tileSize: tile, chunkSize: k)
            let perClass = HeadPlan.bytesPerClass(batchSize: n, subcenters: subcenters)
            let fitting = (memoryBudgetBytes - fixed) / perClass
            guard fitting >= 1 else {
                throw .budgetTooSmall(budgetBytes: memoryBudgetBytes, neededBytes: fixed + perClass)
            }
            // As few chunks as fit, of equal size (the last one, kept from the forward, is not
            // recomputed; equal chunks recompute the fewest classes for that count).
            let count = (k + fitting - 1) / fitting
            self.chunkSize = (k + count - 1) / count
        }
        self.chunkCount = (k + self.chunkSize - 1) / self.chunkSize
        self.tileSize = min(tile, self.chunkSize)
        if let passTileSize {
            self.passTileSize = min(max(passTileSize, self.tileSize), self.chunkSize)
        } else {
            let passes = (self.chunkSize + HeadPlan.defaultPassTiles * self.tileSize - 1) / (HeadPlan.defaultPassTiles * self.tileSize)
            self.passTileSize = max((self.chunkSize + passes - 1) / passes, self.tileSize)
        }
        self.extraBytes = HeadPlan.fixedBytes(batchSize: n, classCount: k, subcenters: subcenters, embeddingDimension: d,
                                              tileSize: self.tileSize, chunkSize: self.chunkSize)
            + self.chunkSize * HeadPlan.bytesPerClass(batchSize: n, subcenters: subcenters)
    }

    /// The largest batch size `N` whose plan fits `memoryBudgetBytes` with the default tile
    /// (at least one class per chunk), or 0 when not even `N = 1` does. The plan's bytes grow
    /// with `N`, so this is the boundary: `N` fits, `N + 1` throws `.budgetTooSmall`.
    public static func largestBatchSize(classCount k: Int, subcenters: Int, embeddingDimension d: Int,
                                        memoryBudgetBytes: Int) -> Int {
        func fits(_ n: Int) -> Bool {
            (try? HeadPlan(batchSize: n, classCount: k, subcenters: subcenters, embeddingDimension: d,
                           memoryBudgetBytes: memoryBudgetBytes, chunkSize: nil)) != nil
        }
        guard fits(1) else { return 0 }
        // Every sample takes at least 4·(3·D + 16) bytes (`fixedBytes`), so no larger N fits.
        var (low, high) = (1, memoryBudgetBytes / (4 * (3 * max(d, 1) + 16)) + 1)   // fits(low), !fits(high)
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if fits(middle) { low = middle } else { high = middle }
        }
        return low
    }

    /// Bytes per class of a chunk: logits `N·k` (+ `2·N` maxima and choices with sub-centers),
    /// 4-byte elements.
    static func bytesPerClass(batchSize n: Int, subcenters k: Int) -> Int {
        4 * (n * k + (k > 1 ? 2 * n : 0))
    }

    /// Bytes independent of the chunk: `ê`, `∂ê` and `∂e` (`3·N·D`), per-row statistics
    /// (`16·N`), the inverse norms of all rows in play (`K·k`), one tile's gathered centers and
    /// its `G'ᵀ·ê` (`2·T·k·D`), and the resident chunk's per-tile row maxima (`N·⌈C/T⌉`).
    static func fixedBytes(batchSize n: Int, classCount: Int, subcenters k: Int, embeddingDimension d: Int,
                           tileSize t: Int, chunkSize c: Int) -> Int {
        4 * (3 * n * d + 16 * n + classCount * k + 2 * t * k * d + n * ((c + t - 1) / t))
    }

    public var description: String {
        chunkCount == 1 ? "unchunked (C = K = \(chunkSize), tiles of \(tileSize)), extra \(extraBytes) bytes"
            : "\(chunkCount) chunks of \(chunkSize) classes (tiles of \(tileSize)), extra \(extraBytes) bytes"
    }
}

/// A head configuration that cannot fit in memory; thrown before anything large is allocated.
public enum HeadMemoryError: Error, CustomStringConvertible, Equatable {
    /// The centers, their gradient and their momentum buffer (`3·K·k·D·4` bytes) plus one
    /// batch's extra memory exceed what the machine has available.
    case stateDoesNotFit(neededBytes: Int, availableBytes: Int, classCount: Int, subcenters: Int, embeddingDimension: Int)
    /// The memory budget cannot hold even a chunk of one class.
    case budgetTooSmall(budgetBytes: Int, neededBytes: Int)

    public var description: String {
        switch self {
        case let .stateDoesNotFit(needed, available, k, sub, d):
            return "the margin head needs \(needed) bytes (\(gibibytes(needed)) GiB: centers, gradient and momentum "
                + "3·\(k)·\(sub)·\(d)·4 bytes plus one batch) but \(available) bytes (\(gibibytes(available)) GiB) "
                + "are available; HINT: use Partial FC sampling, fewer classes or a smaller embedding dimension"
        case let .budgetTooSmall(budget, needed):
            return "the head's memory budget of \(budget) bytes cannot hold one class per chunk (\(needed) bytes); "
                + "HINT: raise memoryBudgetBytes or lower the batch size"
        }
    }
}

private func gibibytes(_ bytes: Int) -> String {
    let value = Double(bytes) / Double(1 << 30)
    return String(Double(Int(value * 100)) / 100)
}
