// libFuzzer harness: `decodeImage` (PGM, JPEG or PNG by content) on arbitrary bytes. The raw
// pointer is libFuzzer's C ABI; it is copied into an array at once.
import ArcFace
import CLibFuzzer
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = [UInt8](UnsafeRawBufferPointer(start: start, count: count))
    if let image = try? decodeImage(bytes, path: "fuzz.image") {
        // A decoded image must be consistent: [C, H, W] samples, C = 1 or 3.
        precondition(image.channels == 1 || image.channels == 3)
        precondition(image.pixels.count == image.channels * image.width * image.height)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzImage(data, size) })
