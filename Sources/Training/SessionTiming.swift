// Timing of resumed runs: every session's share and the totals, kept apart so that reports never
// put one session's seconds beside all sessions' images.

extension TimingBreakdown {
    /// The phase seconds and images of `self` minus those of `earlier` (the part of a run after
    /// `earlier` was taken, e.g. one session of a resumed run).
    public func subtracting(_ earlier: TimingBreakdown) -> TimingBreakdown {
        var result = TimingBreakdown()
        result.data = data - earlier.data
        result.forward = forward - earlier.forward
        result.backward = backward - earlier.backward
        result.optimizer = optimizer - earlier.optimizer
        result.images = images - earlier.images
        return result
    }
}

/// The last session of a resumed run (`RunMetrics.session`; nil for a run never resumed, whose
/// totals are its one session).
public struct SessionMetrics: Codable, Sendable, Equatable {
    /// 1-based number of the session (2 for the first resume); also the run's session count.
    public var number: Int
    /// Wall-clock seconds of training in this session (checkpoint writes and validation included).
    public var trainingSeconds: Double
    /// Training images per second in this session (data + forward + backward + optimizer).
    public var imagesPerSecond: Double
    /// Where this session's training time went.
    public var timing: TimingBreakdown

    public init(number: Int, trainingSeconds: Double, imagesPerSecond: Double, timing: TimingBreakdown) {
        self.number = number
        self.trainingSeconds = trainingSeconds
        self.imagesPerSecond = imagesPerSecond
        self.timing = timing
    }
}
