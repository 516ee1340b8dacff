// libFuzzer harness: `Safetensors.decode` on arbitrary bytes, then a re-encode round trip of
// whatever decoded. The raw pointer is libFuzzer's C ABI; it is copied into `Data` at once.
import ArcFace
import CLibFuzzer
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let data = Data(UnsafeRawBufferPointer(start: start, count: count))
    if let (tensors, metadata) = try? Safetensors.decode(data, path: "fuzz.safetensors") {
        let named = tensors.keys.sorted().map { (name: $0, tensor: tensors[$0]!) }
        let again = try? Safetensors.decode(Safetensors.encode(named, metadata: metadata), path: "again")
        precondition(again?.tensors.count == tensors.count, "decoded tensors do not survive a round trip")
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzSafetensors(data, size) })
