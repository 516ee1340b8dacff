import FaceData
import Foundation
import Testing

/// `VerificationBin.pickled()`: what it writes reads back through `VerificationBin.parse` (the
/// reader insightface's format needs); Python's `pickle.load` of it is checked by
/// `scripts/check_verification_bin.py`, outside the suite.
@Suite struct VerificationBinWriterTests {
    @Test("round trip: short and long images, both flags, the fixtures' payload")
    func roundTrip() throws {
        let short: [UInt8] = [1, 2, 3], long = [UInt8]((0..<300).map { UInt8($0 % 251) }), empty: [UInt8] = []
        let boundary = [UInt8](repeating: 0xFF, count: 255), justLong = [UInt8](repeating: 0x80, count: 256)
        let set = VerificationBin(path: "w.bin", encodedImages: [short, long, empty, boundary, justLong, short],
                                  isSame: [true, false, true])
        let read = try VerificationBin.parse(set.pickled(), path: "w.bin")
        #expect(read.encodedImages == set.encodedImages)
        #expect(read.isSame == set.isSame)
        // The images of a fixture written by Python decode the same after our writer.
        let fixture = try VerificationBin.read(path: fixturesDirectory + "/tiny_p3.bin")
        let again = try VerificationBin.parse(fixture.pickled(), path: "again.bin")
        #expect(again.encodedImages == fixture.encodedImages && again.isSame == fixture.isSame)
        #expect(try again.image(at: 3) == fixture.image(at: 3))
    }

    @Test("the opcodes: PROTO 3, SHORT_BINBYTES below 256 bytes, BINBYTES from 256, NEWTRUE/NEWFALSE, TUPLE2, STOP")
    func opcodes() {
        let bytes = VerificationBin(path: "o.bin", encodedImages: [[9], [UInt8](repeating: 0, count: 256)], isSame: [false]).pickled()
        #expect(Array(bytes.prefix(7)) == [0x80, 3, 0x5D, 0x28, 0x43, 1, 9])
        #expect(Array(bytes[7..<12]) == [0x42, 0x00, 0x01, 0x00, 0x00])
        #expect(Array(bytes.suffix(7)) == [0x65, 0x5D, 0x28, 0x89, 0x65, 0x86, 0x2E])
        #expect(bytes.count == 4 + 3 + 5 + 256 + 3 + 1 + 3)
    }
}
