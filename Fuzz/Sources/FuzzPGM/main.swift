// libFuzzer harness: `decodePGM` on arbitrary bytes. The raw pointer is libFuzzer's C ABI; it is
// copied into an array at once.
import ArcFace
import CLibFuzzer
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPGM(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = [UInt8](UnsafeRawBufferPointer(start: start, count: count))
    if let image = try? decodePGM(bytes, path: "fuzz.pgm") {
        // A decoded image must be consistent and re-encodable.
        precondition(image.pixels.count == image.width * image.height)
        if image.pixels.allSatisfy({ $0.isFinite }) { _ = encodePGM(image) }
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzPGM(data, size) })
