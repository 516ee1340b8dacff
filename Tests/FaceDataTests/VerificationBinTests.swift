import FaceData
import Foundation
import Testing

/// The error `VerificationBin.parse` throws for `bytes`, or nil.
private func parseError(_ bytes: [UInt8], path: String = "bad.bin") -> VerificationSetError? {
    thrownError { () throws(VerificationSetError) in try VerificationBin.parse(bytes, path: path) }
}

@Suite struct VerificationBinTests {
    /// Every fixture holds 4 PNG images (2×2 grey, image k = (10k, 10k+10, 10k+20, 10k+30)/255)
    /// and issame = [true, false] (see Fixtures/make_fixtures.py).
    @Test(arguments: ["tiny_p2.bin", "tiny_p3.bin", "tiny_p4.bin", "tiny_p5.bin", "tiny_py2.bin"])
    func readsEveryProtocol(name: String) throws {
        let set = try VerificationBin.read(path: fixturesDirectory + "/" + name)
        #expect(set.pairCount == 2 && set.encodedImages.count == 4)
        #expect(set.isSame == [true, false])
        #expect(set.pairs.map { [$0.first, $0.second] } == [[0, 1], [2, 3]])
        for k in 0..<4 {
            let image = try set.image(at: k)
            #expect(image == FaceImage(width: 2, height: 2, pixels: (0..<4).map { Float(10 * (k + $0)) / 255 }))
        }
    }

    @Test func samePayloadAcrossProtocols() throws {
        let reference = try VerificationBin.read(path: fixturesDirectory + "/tiny_p4.bin")
        for name in ["tiny_p2.bin", "tiny_p3.bin", "tiny_p5.bin", "tiny_py2.bin"] {
            #expect(try VerificationBin.read(path: fixturesDirectory + "/" + name).encodedImages == reference.encodedImages)
        }
    }

    @Test func longStringsAndBytes() throws {
        // BINSTRING (Python 2 str ≥ 256 bytes) and BINBYTES8, hand-assembled: ([a, b], [True]).
        let a = [UInt8](repeating: 7, count: 300), b: [UInt8] = [1, 2, 3]
        var pickle: [UInt8] = [0x80, 0x02, 0x5D, 0x28, 0x54, 0x2C, 0x01, 0x00, 0x00] + a
        pickle += [0x8E, 3, 0, 0, 0, 0, 0, 0, 0] + b + [0x65, 0x5D, 0x88, 0x61, 0x86, 0x2E]
        let set = try VerificationBin.parse(pickle, path: "long.bin")
        #expect(set.encodedImages == [a, b] && set.isSame == [true])
    }

    @Test func longMemoOpcodes() throws {
        // Python 2 switches to LONG_BINPUT after 256 memo entries (lfw.bin has 12,000 images):
        // ([b"ab", b"ab"], [False]): the image stored with LONG_BINPUT 300 and repeated with
        // LONG_BINGET 300 (Python's pickler memoizes identical objects that way).
        let pickle: [UInt8] = [0x80, 0x02, 0x5D, 0x28, 0x55, 0x02, 0x61, 0x62, 0x72, 0x2C, 0x01, 0x00, 0x00,
                               0x6A, 0x2C, 0x01, 0x00, 0x00, 0x65, 0x5D, 0x89, 0x61, 0x86, 0x2E]
        let set = try VerificationBin.parse(pickle, path: "long_memo.bin")
        #expect(set.encodedImages == [Array("ab".utf8), Array("ab".utf8)])
        #expect(set.isSame == [false])
        // EMPTY_LIST, BINPUT 0, BINGET 0: a shared reference to a container is refused.
        let shared: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x68, 0x00, 0x86, 0x2E]
        guard case .unexpectedStructure(_, let offset, _)? = parseError(shared) else {
            Issue.record("a memo get of a list must be refused")
            return
        }
        #expect(offset == 5)
    }

    @Test func anotherShapeIsRefused() throws {
        // A dict: EMPTY_DICT at byte 11 (after PROTO 4 and FRAME) is not an accepted opcode.
        let error = parseError(try fixtureBytes("other_shape.bin"), path: "other_shape.bin")
        #expect(error == .unsupportedOpcode(path: "other_shape.bin", offset: 11, opcode: 0x7D))
        #expect(error?.description.contains("other_shape.bin") == true && error?.description.contains("byte 11") == true)
        // A well-formed pickle of ([b"x"], [True], [True]): a 3-tuple, not a pair.
        let triple: [UInt8] = [0x80, 0x04, 0x5D, 0x43, 0x01, 0x78, 0x61, 0x5D, 0x88, 0x61, 0x5D, 0x88, 0x61, 0x87, 0x2E]
        guard case .unexpectedStructure(_, let offset, _)? = parseError(triple) else {
            Issue.record("a 3-tuple must be .unexpectedStructure")
            return
        }
        #expect(offset == triple.count - 1)
        // Flags that are not bools (BININT1 is not accepted at all).
        let ints: [UInt8] = [0x80, 0x04, 0x5D, 0x43, 0x01, 0x78, 0x61, 0x5D, 0x4B, 0x01, 0x61, 0x86, 0x2E]
        #expect(parseError(ints) == .unsupportedOpcode(path: "bad.bin", offset: 8, opcode: 0x4B))
        // One image for one flag.
        let odd: [UInt8] = [0x80, 0x04, 0x5D, 0x43, 0x01, 0x78, 0x61, 0x5D, 0x88, 0x61, 0x86, 0x2E]
        #expect(parseError(odd) == .pairCountMismatch(path: "bad.bin", imageCount: 1, pairCount: 1))
    }

    @Test func nothingIsExecuted() {
        // GLOBAL 'os system' + REDUCE: refused at the GLOBAL opcode, never resolved.
        let evil: [UInt8] = [0x80, 0x02, 0x63] + Array("os\nsystem\n".utf8) + [0x58, 2, 0, 0, 0] + Array("ls".utf8)
            + [0x85, 0x52, 0x2E]
        guard case .unexpectedStructure(_, let offset, let reason)? = parseError(evil) else {
            Issue.record("a foreign global must be refused")
            return
        }
        #expect(offset == 2 && reason.contains("os.system"))
        #expect(parseError([0x80, 0x01, 0x2E]) == .unsupportedProtocol(path: "bad.bin", offset: 0, version: 1))
    }

    @Test func truncatedFilesNameTheOffset() throws {
        let bytes = try fixtureBytes("tiny_p4.bin")
        // Cut inside the first SHORT_BINBYTES (opcode at 14, 1 length byte, 71 data bytes).
        #expect(parseError(Array(bytes.prefix(40)), path: "cut.bin")
                == .truncated(path: "cut.bin", offset: 14, needed: 71, available: 24))
        // Every proper prefix fails with a typed error (never a crash).
        for length in 0..<bytes.count {
            #expect(parseError(Array(bytes.prefix(length))) != nil, "prefix \(length)")
        }
        #expect(parseError(Array(bytes.dropLast()))?.description.contains("truncated") == true)
    }

    @Test func missingFile() {
        let error = thrownError { () throws(VerificationSetError) in try VerificationBin.read(path: "/nonexistent/lfw.bin") }
        #expect(error == .unreadableFile(path: "/nonexistent/lfw.bin", reason: "no such file"))
    }
}
