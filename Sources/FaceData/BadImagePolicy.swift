/// What `FaceDataset.load` does with an image file that cannot be read or decoded.
public enum BadImagePolicy: String, Codable, Sendable, CaseIterable {
    /// Stop loading with `DatasetError.image` naming the file.
    case error
    /// Leave the file out and list it in the load report (`DatasetLoadReport.skippedImages`).
    case skip
}
