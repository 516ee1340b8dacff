// Runs P simulated ranks of a distributed computation as threads of the test process, one
// `InProcessCommunicator` each.
import Collectives
import Dispatch
import Foundation

/// A value handed to another thread without a `Sendable` check: the caller promises that only
/// one thread uses it at a time (each rank's own head, say).
public final class Unchecked<Value>: @unchecked Sendable {
    public var value: Value
    public init(_ value: Value) { self.value = value }
}

/// Runs `body(communicator)` for every rank of a new `InProcessCommunicator` group of `size`
/// on its own thread (a real thread each, so that ranks waiting for each other never starve one
/// another) and returns each rank's result, index = rank.
public func runRanks<R>(_ size: Int, timeout: Duration = .seconds(60),
                        _ body: @escaping @Sendable (InProcessCommunicator) throws -> R) -> [Result<R, any Error>] {
    let communicators = InProcessCommunicator.group(size: size, timeout: timeout)
    let results = Unchecked([Result<R, any Error>?](repeating: nil, count: size))
    let lock = NSLock()
    let done = DispatchSemaphore(value: 0)
    for communicator in communicators {
        let box = Unchecked(communicator)
        let thread = Thread {
            let result = Result { try body(box.value) }
            lock.lock()
            results.value[box.value.rank] = result
            lock.unlock()
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    for _ in 0..<size { done.wait() }
    return results.value.map { $0! }
}
