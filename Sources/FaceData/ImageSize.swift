/// The size of an image in pixels, printed as `W×H` (e.g. `92×112`).
public struct ImageSize: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Columns (pixels).
    public var width: Int
    /// Rows (pixels).
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    public var description: String { "\(width)×\(height)" }
}
