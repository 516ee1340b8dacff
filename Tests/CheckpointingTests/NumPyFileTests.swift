import Foundation
import Testing
import TensorCore
import Checkpointing
import _TestSupport

/// Reference files written by numpy 1.26 (`numpy.save` / `numpy.lib.format.write_array`) for
/// `a = (numpy.arange(6, dtype='<f4').reshape(2, 3) * 0.5 - 1)` = [[-1, -0.5, 0], [0.5, 1, 1.5]].
enum NumPyReference {
    /// `numpy.save(f, a)`: version 1.0, 128-byte preamble + header, 24 data bytes.
    static let version1 = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAIC/AAAAvwAAAAAAAAA/AACAPwAAwD8="
    /// `write_array(f, a, version=(2, 0))`: a 4-byte header length.
    static let version2 = "k05VTVBZAgB0AAAAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAIC/AAAAvwAAAAAAAAA/AACAPwAAwD8="
    /// `numpy.save(f, a.astype('<f8'))`.
    static let float64 = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAADwvwAAAAAAAOC/AAAAAAAAAAAAAAAAAADgPwAAAAAAAPA/AAAAAAAA+D8="
    /// `numpy.save(f, numpy.asfortranarray(a))`.
    static let fortran = "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAIC/AAAAPwAAAL8AAIA/AAAAAAAAwD8="
    static let tensor = Tensor(shape: [2, 3], storage: [-1, -0.5, 0, 0.5, 1, 1.5])

    static func bytes(_ base64: String) -> Data { Data(base64Encoded: base64)! }
}

@Suite struct NumPyFileTests {
    @Test("encode gives exactly numpy.save's bytes")
    func matchesNumPy() {
        let data = NumPyFile.encode(NumPyReference.tensor)
        #expect(data == NumPyReference.bytes(NumPyReference.version1))
        // Preamble + header is a multiple of 64 and ends with a newline.
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        #expect(data[10 + headerLength - 1] == 0x0A)
    }

    @Test("numpy's version 1.0 and 2.0 files decode to the same array")
    func decodesNumPy() throws {
        #expect(try NumPyFile.decode(NumPyReference.bytes(NumPyReference.version1), path: "v1.npy") == NumPyReference.tensor)
        #expect(try NumPyFile.decode(NumPyReference.bytes(NumPyReference.version2), path: "v2.npy") == NumPyReference.tensor)
    }

    @Test("write → read is exact for several ranks, including empty and 0-d arrays",
          arguments: [[3, 4], [7], [], [0, 5], [2, 1, 3]])
    func roundTrip(shape: [Int]) throws {
        let count = shape.reduce(1, *)
        let tensor = Tensor(shape: shape, storage: (0..<count).map { Float($0) * 0.37 - 1 + (.ulpOfOne * Float($0)) })
        let directory = TemporaryDirectory()
        let path = directory.path + "/a.npy"
        try NumPyFile.write(tensor, to: path)
        #expect(try NumPyFile.read(path: path) == tensor)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect((data.count - count * 4) % 64 == 0)
    }

    @Test("headers numpy could write with other spacing, key order or a Python 2 long suffix are read")
    func flexibleHeader() throws {
        for header in ["{\"shape\":(2,3),\"fortran_order\":False,\"descr\":\"<f4\"}",
                       "{'descr':'<f4','fortran_order':False,'shape':(2L, 3L)}   "] {
            var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
            let text = Array((header + "\n").utf8)
            data.append(contentsOf: [UInt8(text.count & 0xFF), UInt8(text.count >> 8)] + text)
            data.append(contentsOf: littleEndianBytes(of: NumPyReference.tensor.storage))
            #expect(try NumPyFile.decode(data, path: "h.npy") == NumPyReference.tensor)
        }
    }

    @Test("other element types, Fortran order, bad magic, versions, truncation and trailing bytes are typed errors")
    func errors() throws {
        let good = NumPyReference.bytes(NumPyReference.version1)
        func error(_ data: Data) -> NumPyFileError? {
            do { _ = try NumPyFile.decode(data, path: "x.npy"); return nil } catch { return error }
        }
        #expect(error(NumPyReference.bytes(NumPyReference.float64)) == .unsupportedDataType(path: "x.npy", descr: "<f8"))
        #expect(error(NumPyReference.bytes(NumPyReference.fortran)) == .fortranOrder(path: "x.npy"))
        #expect(error(Data("PK\u{3}\u{4}0123456789".utf8)) == .notNumPy(path: "x.npy", firstBytes: Array("PK\u{3}\u{4}01".utf8)))
        #expect(error(Data()) == .notNumPy(path: "x.npy", firstBytes: []))
        var version = good
        version[6] = 9
        #expect(error(version) == .unsupportedVersion(path: "x.npy", major: 9, minor: 0))
        #expect(error(good.dropLast(1)) == .sizeMismatch(path: "x.npy", shape: [2, 3], expectedBytes: 24, foundBytes: 23))
        #expect(error(good + Data([0, 0, 0, 0])) == .sizeMismatch(path: "x.npy", shape: [2, 3], expectedBytes: 24, foundBytes: 28))
        guard case .malformedHeader? = error(good.prefix(60)) else { Issue.record("cut header accepted"); return }
        var noShape = good
        noShape.replaceSubrange(52..<57, with: Data("shapx".utf8))  // the key 'shape' becomes 'shapx'
        guard case .malformedHeader(_, let reason)? = error(noShape) else { Issue.record("header without shape accepted"); return }
        #expect(reason.contains("'shape' is missing"))
    }

    @Test("a missing file and an unwritable path are typed errors naming the file")
    func fileErrors() {
        do { _ = try NumPyFile.read(path: "/nonexistent/a.npy"); Issue.record("read a missing file") }
        catch { guard case .unreadable(let path, _) = error else { Issue.record("\(error)"); return }; #expect(path == "/nonexistent/a.npy") }
        do { try NumPyFile.write(NumPyReference.tensor, to: "/nonexistent/dir/a.npy"); Issue.record("wrote into a missing folder") }
        catch { guard case .writeFailed(let path, _) = error else { Issue.record("\(error)"); return }; #expect(path == "/nonexistent/dir/a.npy") }
    }
}
