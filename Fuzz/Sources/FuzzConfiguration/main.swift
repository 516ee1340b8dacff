// libFuzzer harness: `TrainingConfiguration.decode(json:)` on arbitrary bytes; a configuration
// that decodes must be valid and round-trip through its own JSON. The raw pointer is libFuzzer's
// C ABI; it is copied into `Data` at once.
import ArcFace
import CLibFuzzer
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let data = Data(UnsafeRawBufferPointer(start: start, count: count))
    if let configuration = try? TrainingConfiguration.decode(json: data, source: "fuzz.json") {
        precondition(configuration.validationProblems().isEmpty)
        precondition((try? TrainingConfiguration.decode(json: configuration.jsonData())) == configuration,
                     "a decoded configuration does not round-trip")
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzConfiguration(data, size) })
