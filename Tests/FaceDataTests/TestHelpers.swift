import FaceData
import Foundation
import Testing

/// A fresh directory under the system temporary directory, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("FaceDataTests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Creates the folder `relative` (and parents) and returns its path.
    @discardableResult
    func makeFolder(_ relative: String) throws -> String {
        let folder = path + "/" + relative
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Writes `bytes` to `relative` (creating parent folders) and returns the file's path.
    @discardableResult
    func write(_ bytes: [UInt8], to relative: String) throws -> String {
        let file = path + "/" + relative
        let parent = (file as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: file, contents: Data(bytes)) else {
            throw CocoaError(.fileWriteUnknown)
        }
        return file
    }
}

/// The error `decodePGM` throws for `bytes`, or nil if it decodes.
func decodingError(_ bytes: [UInt8], path: String = "memory.pgm") -> ImageDecodingError? {
    do {
        _ = try decodePGM(bytes, path: path)
        return nil
    } catch {
        return error
    }
}

/// The error `FaceDataset.load` throws for `directory`, or nil if it loads.
func loadingError(_ directory: String) -> DatasetError? {
    do {
        _ = try FaceDataset.load(directory: directory)
        return nil
    } catch {
        return error
    }
}

/// `ascii` as bytes followed by `raster`.
func pgm(_ ascii: String, _ raster: [UInt8] = []) -> [UInt8] {
    Array(ascii.utf8) + raster
}

/// A `width × height` image whose pixel (y, x) is `(base + y·width + x) / 255`, so every value in
/// a small synthetic data set is distinct and names its position.
func patternImage(width: Int, height: Int, base: Int) -> FaceImage {
    FaceImage(width: width, height: height,
              pixels: (0..<(width * height)).map { Float(base + $0) / 255 })
}

/// A synthetic data set: `identityCount` identities × `imagesPerIdentity` pattern images of
/// 5×4 pixels (sample `i` has base `20·i`, so with ≤ 12 samples all values are ≤ 239/255).
func syntheticDataset(identityCount: Int = 3, imagesPerIdentity: Int = 4, width: Int = 5, height: Int = 4) -> FaceDataset {
    var images: [FaceImage] = []
    var labels: [Int] = []
    var paths: [String] = []
    for identity in 0..<identityCount {
        for image in 0..<imagesPerIdentity {
            let sample = images.count
            images.append(patternImage(width: width, height: height, base: sample * width * height))
            labels.append(identity)
            paths.append("synthetic/id\(identity)/\(image)")
        }
    }
    return FaceDataset(identities: (0..<identityCount).map { "id\($0)" }, images: images, labels: labels,
                       paths: paths)
}

// MARK: - The AT&T faces

/// The AT&T (ORL) faces: `$ARCFACE_DATA` if set, else `<repository>/../shared/data/att_faces`
/// (the Makefile's `DATA` default).
let attFacesDirectory: String = {
    if let path = ProcessInfo.processInfo.environment["ARCFACE_DATA"] { return path }
    let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return repository.deletingLastPathComponent().appendingPathComponent("shared/data/att_faces").standardized.path
}()

/// The AT&T set, loaded once for all tests (global `let`s are initialized lazily and once).
let attFaces: Result<FaceDataset, DatasetError> = Result { () throws(DatasetError) in
    try FaceDataset.load(directory: attFacesDirectory)
}

/// The AT&T set, or a recorded test failure naming the expected location.
func requireATTFaces(sourceLocation: SourceLocation = #_sourceLocation) throws -> FaceDataset {
    switch attFaces {
    case .success(let dataset):
        return dataset
    case .failure(let error):
        Issue.record("AT&T faces not loadable (set ARCFACE_DATA to override \(attFacesDirectory)): \(error)",
                     sourceLocation: sourceLocation)
        throw error
    }
}

// MARK: - Committed fixtures

/// The folder of committed fixtures (written by `Fixtures/make_fixtures.py`).
let fixturesDirectory: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path

/// The bytes of the committed fixture `name`.
func fixtureBytes(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixturesDirectory + "/" + name)))
}

/// The error `body` throws, or nil.
func thrownError<E: Error, T>(_ body: () throws(E) -> T) -> E? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// A 3-channel image whose sample (c, y, x) is `(40·c + 7·y + 3·x + base) / 255`.
func colourPattern(width: Int, height: Int, base: Int = 0) -> FaceImage {
    var pixels: [Float] = []
    for c in 0..<3 { for y in 0..<height { for x in 0..<width { pixels.append(Float(40 * c + 7 * y + 3 * x + base) / 255) } } }
    return FaceImage(width: width, height: height, channels: 3, pixels: pixels)
}
