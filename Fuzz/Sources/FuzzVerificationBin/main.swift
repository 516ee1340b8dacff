// libFuzzer harness: `VerificationBin.parse` (the pickled `(list of bytes, list of bool)` subset)
// on arbitrary bytes. The raw pointer is libFuzzer's C ABI; it is copied into an array at once.
import ArcFace
import CLibFuzzer
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVerificationBin(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = [UInt8](UnsafeRawBufferPointer(start: start, count: count))
    if let set = try? VerificationBin.parse(bytes, path: "fuzz.bin") {
        // A parsed set must be consistent: two images per pair, each a slice of the input.
        precondition(set.encodedImages.count == 2 * set.pairCount)
        precondition(set.encodedImages.allSatisfy { $0.count <= count })
        _ = set.pairs
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzVerificationBin(data, size) })
