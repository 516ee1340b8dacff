import Synchronization

/// A request to stop training, safe to set from any thread (a signal handler's queue) and
/// polled by `Trainer` between steps: the current step finishes, a checkpoint is written and
/// `Trainer.run` returns `.stopped`.
public final class StopRequest: Sendable {
    /// 0: not requested; otherwise the signal number that asked (or −1 for a request without one).
    private let state = Atomic<Int32>(0)

    public init() {}

    /// Asks training to stop after its current step.
    ///
    /// - Parameter signal: the signal that asked (e.g. `SIGINT`), for the exit status; nil otherwise.
    /// - Returns: whether a stop had already been requested (a second request: the caller may
    ///   exit at once).
    @discardableResult
    public func request(signal: Int32? = nil) -> Bool {
        let (exchanged, _) = state.compareExchange(expected: 0, desired: signal ?? -1, ordering: .sequentiallyConsistent)
        return !exchanged
    }

    /// Whether a stop has been requested.
    public var isRequested: Bool { state.load(ordering: .sequentiallyConsistent) != 0 }

    /// The signal of the first request, if it came from one.
    public var signal: Int32? {
        let value = state.load(ordering: .sequentiallyConsistent)
        return value > 0 ? value : nil
    }
}
