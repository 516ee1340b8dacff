// libFuzzer harness: `LFWPairs.parse` on arbitrary bytes read as UTF-8 (invalid sequences become
// U+FFFD, as in `LFWPairs.read`). The raw pointer is libFuzzer's C ABI; it is copied at once.
import ArcFace
import CLibFuzzer
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLFWPairs(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    if let pairs = try? LFWPairs.parse(text, path: "fuzz.txt") {
        // A parsed file must hold exactly foldCount · 2 · pairsPerClass pairs.
        precondition(pairs.pairs.count == pairs.foldCount * 2 * pairs.pairsPerClass)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzLFWPairs(data, size) })
