import Testing
import FaceData

@Suite struct PGMTruncationCountTests {
    @Test("truncation errors count the bytes after the header and the samples actually present")
    func counts() {
        // "P5 92 112 255\n" is 14 bytes; 486 raster bytes follow of the 10,304 needed.
        let header = Array("P5 92 112 255\n".utf8)
        let p5 = header + [UInt8](repeating: 7, count: 486)
        #expect(throws: ImageDecodingError.truncatedPixelData(path: "a.pgm", expectedBytes: 10_304, availableBytes: 486)) {
            try decodePGM(p5, path: "a.pgm")
        }
        // A P2 header claiming 1,000,000 samples with 3 present (too few bytes to hold them).
        let p2 = Array("P2 1000 1000 255\n1 2 3\n".utf8)
        #expect(throws: ImageDecodingError.truncatedSamples(path: "b.pgm", expected: 1_000_000, found: 3)) {
            try decodePGM(p2, path: "b.pgm")
        }
        // A P2 file with room for its samples counts them as it reads.
        let short = Array("P2 2 2 255\n1 2 3\n".utf8)
        #expect(throws: ImageDecodingError.truncatedSamples(path: "c.pgm", expected: 4, found: 3)) {
            try decodePGM(short, path: "c.pgm")
        }
    }
}
