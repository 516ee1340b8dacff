import Foundation
import Testing
import TensorCore
import Checkpointing
import _TestSupport

@Suite struct SafetensorsTests {
    @Test("encode → decode is exact, and the layout is the documented one")
    func roundTrip() throws {
        let a = Tensor(shape: [2, 3], storage: [1, -2, 3.5, .pi, 0, -0])
        let b = Tensor(shape: [1], storage: [42])
        let data = Safetensors.encode([("a", a), ("b", b)], metadata: ["k": "v"])
        let bytes = [UInt8](data)
        let headerLength = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        #expect(headerLength % 8 == 0)
        #expect(bytes.count == 8 + headerLength + 7 * 4)
        // The first data float is 1.0 = 0x3F800000, little-endian.
        #expect(Array(bytes[(8 + headerLength)..<(12 + headerLength)]) == [0x00, 0x00, 0x80, 0x3F])
        let (tensors, metadata) = try Safetensors.decode(data, path: "mem")
        #expect(tensors["a"] == a)
        #expect(tensors["b"] == b)
        #expect(metadata == ["k": "v"])
    }

    @Test("truncated and malformed files are refused with the file named")
    func malformed() {
        let good = [UInt8](Safetensors.encode([("w", Tensor(shape: [4], storage: [1, 2, 3, 4]))]))
        let cases: [[UInt8]] = [
            [],                                   // empty
            Array(good.prefix(5)),                // shorter than the length field
            Array(good.prefix(20)),               // header cut
            Array(good.dropLast(4)),              // data cut
            [16, 0, 0, 0, 0, 0, 0, 0] + Array("[1, 2, 3, 4, 5, 6]".utf8).prefix(16),  // header not an object
        ]
        for bytes in cases {
            do {
                _ = try Safetensors.decode(Data(bytes), path: "bad.safetensors")
                Issue.record("accepted \(bytes.count) bad bytes")
            } catch {
                #expect(error.description.contains("bad.safetensors"))
            }
        }
        let f16Header = #"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#
        var f16 = [UInt8](repeating: 0, count: 8)
        f16[0] = UInt8(f16Header.utf8.count)
        f16 += Array(f16Header.utf8) + [0, 0, 0, 0]
        #expect(throws: CheckpointError.self) { try Safetensors.decode(Data(f16), path: "f16") }
    }

    @Test("fuzz regression: a shape whose byte count overflows Int is refused, not a trap")
    func byteCountOverflow() {
        // Found by `make fuzz` (FuzzSafetensors): 2^62 elements × 4 bytes overflowed `Int`.
        var header = #"{"w":{"data_offsets":[0,0],"dtype":"F32","shape":[4611686018427387904]}}"#
        while header.utf8.count % 8 != 0 { header += " " }
        var bytes = [UInt8](repeating: 0, count: 8)
        bytes[0] = UInt8(header.utf8.count)
        bytes += Array(header.utf8)
        #expect(throws: CheckpointError.self) { try Safetensors.decode(Data(bytes), path: "overflow.safetensors") }
    }

    @Test("Python's safetensors reads our files", .enabled(if: pythonSafetensorsAvailable()))
    func pythonReads() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/t.safetensors"
        try Safetensors.write([("x", Tensor(shape: [2, 2], storage: [1, 2, 3, 4]))], to: path)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "from safetensors.numpy import load_file; print(load_file('\(path)')['x'].sum())"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines) == "10.0")
    }

    @Test("overlapping, gapped or oversized tensors and trailing bytes are refused")
    func strictLayout() {
        func file(_ header: String, dataBytes: Int) -> Data {
            var json = Array(header.utf8)
            while json.count % 8 != 0 { json.append(0x20) }
            let n = UInt64(json.count)
            return Data((0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + json + [UInt8](repeating: 0, count: dataBytes))
        }
        let cases = [
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 8),
            (#"{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#, 4),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4]}}"#, 4),
        ]
        for (header, count) in cases {
            #expect(throws: CheckpointError.self, "\(header)") { try Safetensors.decode(file(header, dataBytes: count), path: "x") }
        }
        // The same builder gives a valid file when the layout is right.
        #expect(throws: Never.self) { try Safetensors.decode(file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, dataBytes: 4), path: "x") }
    }

    @Test("PyTorch's num_batches_tracked counters (I64 scalars) are read past and dropped; another I64 tensor is still refused")
    func batchCounters() throws {
        func file(_ header: String, dataBytes: [UInt8]) -> Data {
            var json = Array(header.utf8)
            while json.count % 8 != 0 { json.append(0x20) }
            let n = UInt64(json.count)
            return Data((0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + json + dataBytes)
        }
        let one: [UInt8] = [0, 0, 0x80, 0x3F]   // 1.0 as little-endian F32
        let counter: [UInt8] = [7, 0, 0, 0, 0, 0, 0, 0]
        let header = #"{"bn1.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"#
            + #""bn1.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[4,12]}}"#
        let (tensors, _) = try Safetensors.decode(file(header, dataBytes: one + counter), path: "x")
        #expect(tensors.keys.sorted() == ["bn1.weight"])
        #expect(tensors["bn1.weight"]?.storage == [1])
        // Its bytes still count for the layout: a counter whose offsets are wrong is refused.
        let short = header.replacingOccurrences(of: "[4,12]", with: "[4,8]")
        #expect(throws: CheckpointError.self) { try Safetensors.decode(file(short, dataBytes: one + [7, 0, 0, 0]), path: "x") }
        let other = header.replacingOccurrences(of: "bn1.num_batches_tracked", with: "bn1.steps")
        #expect(throws: CheckpointError.self) { try Safetensors.decode(file(other, dataBytes: one + counter), path: "x") }
    }
}

func pythonSafetensorsAvailable() -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import safetensors.numpy"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    do { try process.run() } catch { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}
