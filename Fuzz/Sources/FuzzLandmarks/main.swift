// libFuzzer harness: `LandmarkFile.parse` (plain `path x1 y1 … x5 y5` lines and insightface `.lst`)
// on arbitrary bytes read as UTF-8, then the similarity transform of every parsed entry to the
// ArcFace template. The raw pointer is libFuzzer's C ABI; it is copied at once.
import ArcFace
import CLibFuzzer
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLandmarks(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    guard let file = try? LandmarkFile.parse(text, path: "fuzz.txt"), let template = ArcFaceTemplate.points(size: 112) else { return 0 }
    for entry in file.entries {
        // A parsed entry has five finite points with spread: its transform exists and is finite.
        precondition(entry.landmarks.count == 5 && entry.landmarks.allSatisfy { $0.x.isFinite && $0.y.isFinite })
        _ = SimilarityTransform.estimate(from: entry.landmarks, to: template)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzLandmarks(data, size) })
