// libFuzzer harness: `NumPyFile.decode` on arbitrary bytes, then a re-encode round trip of
// whatever decoded. The raw pointer is libFuzzer's C ABI; it is copied into `Data` at once.
import ArcFace
import CLibFuzzer
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNumPy(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let data = Data(UnsafeRawBufferPointer(start: start, count: count))
    if let tensor = try? NumPyFile.decode(data, path: "fuzz.npy") {
        precondition(tensor.storage.count == tensor.shape.reduce(1, *), "decoded storage does not match its shape")
        let again = try? NumPyFile.decode(NumPyFile.encode(tensor), path: "again")
        precondition(again?.shape == tensor.shape, "a decoded array does not survive a round trip")
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzNumPy(data, size) })
