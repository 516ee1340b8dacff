import FaceData
import Foundation
import Testing

// Raster used by several tests: 3 × 2 pixels with values 0, 51, 102, 153, 204, 255, which are
// k·51 = k·255/5, so the decoded pixels are exactly the floats nearest 0, 0.2, 0.4, 0.6, 0.8, 1
// (Float division is correctly rounded and k/5 is the exact quotient).
private let ramp: [UInt8] = [0, 51, 102, 153, 204, 255]
private let rampPixels: [Float] = [0, 0.2, 0.4, 0.6, 0.8, 1]

@Suite struct PGMDecodingTests {
    @Test func headerOnOneLine() throws {
        let image = try decodePGM(pgm("P5 3 2 255\n", ramp), path: "one-line.pgm")
        #expect(image.width == 3)
        #expect(image.height == 2)
        #expect(image.pixels == rampPixels)
    }

    @Test func oneTokenPerLine() throws {
        let image = try decodePGM(pgm("P5\n3\n2\n255\n", ramp), path: "per-line.pgm")
        #expect(image == FaceImage(width: 3, height: 2, pixels: rampPixels))
    }

    @Test func otherWhitespaceBetweenTokens() throws {
        // Tabs, CR LF, VT and FF are all netpbm whitespace between header tokens.
        let image = try decodePGM(pgm("P5\t3\r\n\u{0B}2\u{0C} 255\n", ramp), path: "ws.pgm")
        #expect(image.pixels == rampPixels)
    }

    @Test func commentsInSeveralPlaces() throws {
        // Comments right after the magic, on a line of their own, after a token and after maxval
        // (where the newline ending the comment is the single raster delimiter). The raster starts
        // with bytes that look like header syntax ('#' = 35, LF = 10, space = 32, TAB = 9,
        // CR = 13): a decoder that skipped more than one byte after maxval would misread them.
        let header = "P5# right after the magic\n# a full line\n3 # width\n# before height\n2\n255# after maxval\n"
        let raster: [UInt8] = [35, 10, 32, 9, 13, 255]
        let image = try decodePGM(pgm(header, raster), path: "comments.pgm")
        #expect(image.width == 3 && image.height == 2)
        #expect(image.pixels == raster.map { Float($0) / 255 })
        #expect(image.pixels[0] == Float(35) / 255)
    }

    @Test func exactlyOneWhitespaceByteAfterMaxValue() throws {
        // "255\n\n": the second LF (10) is the first sample, and the raster's last byte is 7.
        let image = try decodePGM(pgm("P5 2 1 255\n\n", [7]), path: "delimiter.pgm")
        #expect(image.pixels == [Float(10) / 255, Float(7) / 255])
    }

    @Test func trailingBytesAreIgnored() throws {
        let image = try decodePGM(pgm("P5 3 2 255\n", ramp + [1, 2, 3]), path: "trailing.pgm")
        #expect(image.pixels == rampPixels)
    }

    @Test func plainASCII() throws {
        // maxval 15: samples 0, 3, 5, 15, 9, 12 → k/15, e.g. 3/15 = 0.2, 9/15 = 0.6.
        let text = "P2\n# plain PGM\n3 2\n15\n0  3\t5\n# a comment between samples\n15\n9 12\n"
        let image = try decodePGM(pgm(text), path: "plain.pgm")
        #expect(image.width == 3 && image.height == 2)
        #expect(image.pixels == [0, 0.2, Float(5) / 15, 1, 0.6, 0.8])
    }

    @Test func sixteenBitBigEndian() throws {
        // Samples (big-endian): 0x0000 = 0, 0x0102 = 258 (513 if read little-endian),
        // 0x8000 = 32768, 0xFFFF = 65535; pixel = value/65535:
        // 258/65535 = 0.0039368276…, 32768/65535 = 0.5000076295…
        let bytes = pgm("P5 2 2 65535\n", [0x00, 0x00, 0x01, 0x02, 0x80, 0x00, 0xFF, 0xFF])
        let image = try decodePGM(bytes, path: "deep.pgm")
        #expect(image.pixels == [0, Float(258) / 65535, Float(32768) / 65535, 1])
        #expect(abs(image.pixels[1] - 0.003_936_827_6) < 1e-9)
        #expect(abs(image.pixels[2] - 0.500_007_629_5) < 1e-7)
    }

    @Test func sixteenBitAboveByteRange() throws {
        // maxval 1000 > 255 also means two bytes per sample: 0x03E8 = 1000 → 1, 0x01F4 = 500 → 0.5.
        let image = try decodePGM(pgm("P5 2 1 1000\n", [0x03, 0xE8, 0x01, 0xF4]), path: "k.pgm")
        #expect(image.pixels == [1, 0.5])
    }

    @Test(arguments: [255, 65535, 1000, 7])
    func encodeThenDecodeRoundTrips(maxValue: Int) throws {
        // Pixels on the maxValue grid survive exactly: encode rounds x·maxValue, decode divides.
        let values = [0, 1, maxValue / 3, maxValue / 2, maxValue - 1, maxValue]
        let original = FaceImage(width: 3, height: 2, pixels: values.map { Float($0) / Float(maxValue) })
        let bytes = encodePGM(original, maxValue: maxValue)
        let header = "P5\n3 2\n\(maxValue)\n"
        #expect(Array(bytes.prefix(header.utf8.count)) == Array(header.utf8))
        #expect(bytes.count == header.utf8.count + 6 * (maxValue > 255 ? 2 : 1))
        #expect(try decodePGM(bytes, path: "round-trip.pgm") == original)
    }

    @Test func encodeClampsAndRounds() {
        // −0.5 → 0, 0.5·255 = 127.5 → 128 (rounds half away from zero), 2 → 255.
        let bytes = encodePGM(FaceImage(width: 3, height: 1, pixels: [-0.5, 0.5, 2]))
        #expect(Array(bytes.suffix(3)) == [0, 128, 255])
    }
}

@Suite struct PGMErrorTests {
    @Test func wrongMagic() {
        let error = decodingError(pgm("P6 3 2 255\n", ramp + ramp + ramp), path: "colour.ppm")
        #expect(error == .wrongMagic(path: "colour.ppm", found: Array("P6".utf8)))
        #expect(error?.description.contains("colour.ppm") == true)
        #expect(error?.description.contains("\"P6\"") == true)
        #expect(decodingError([0x89, 0x50, 0x4E, 0x47], path: "x.png") == .wrongMagic(path: "x.png", found: [0x89, 0x50]))
        #expect(decodingError([0x50], path: "p.pgm") == .wrongMagic(path: "p.pgm", found: [0x50]))
    }

    @Test func zeroSize() {
        let error = decodingError([], path: "empty.pgm")
        #expect(error == .emptyFile(path: "empty.pgm"))
        #expect(error?.description.contains("empty.pgm") == true)
    }

    @Test func truncatedBinaryData() {
        // 3 × 2 × 1 byte = 6 expected, 5 present.
        let error = decodingError(pgm("P5 3 2 255\n", Array(ramp.prefix(5))), path: "short.pgm")
        #expect(error == .truncatedPixelData(path: "short.pgm", expectedBytes: 6, availableBytes: 5))
        #expect(error?.description.contains("short.pgm") == true)
        // 2 × 2 × 2 bytes = 8 expected, 7 present.
        #expect(decodingError(pgm("P5 2 2 65535\n", [0, 0, 1, 2, 3, 4, 5]), path: "d.pgm")
                == .truncatedPixelData(path: "d.pgm", expectedBytes: 8, availableBytes: 7))
        // Header ends right after maxval: no delimiter, no raster.
        #expect(decodingError(pgm("P5 3 2 255"), path: "h.pgm")
                == .truncatedPixelData(path: "h.pgm", expectedBytes: 6, availableBytes: 0))
    }

    @Test(arguments: [0, 70000])
    func maxValueOutOfRange(maxValue: Int) {
        let path = "maxval-\(maxValue).pgm"
        let error = decodingError(pgm("P5 3 2 \(maxValue)\n", ramp + ramp), path: path)
        #expect(error == .maxValueOutOfRange(path: path, found: maxValue))
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("\(maxValue)") == true)
    }

    @Test func nonNumericTokens() {
        let height = decodingError(pgm("P5\n92 abc\n255\n", ramp), path: "faces/s1/bad.pgm")
        #expect(height == .badHeaderToken(path: "faces/s1/bad.pgm", field: "height", found: "abc"))
        #expect(height?.description.contains("faces/s1/bad.pgm") == true)
        #expect(height?.description.contains("abc") == true)
        #expect(decodingError(pgm("P5 -3 2 255\n", ramp), path: "w.pgm")
                == .badHeaderToken(path: "w.pgm", field: "width", found: "-3"))
        #expect(decodingError(pgm("P5 3 2 2x5\n", ramp), path: "m.pgm")
                == .badHeaderToken(path: "m.pgm", field: "maxval", found: "2x5"))
        #expect(decodingError(pgm("P5 0 2 255\n", ramp), path: "z.pgm")
                == .badHeaderToken(path: "z.pgm", field: "width", found: "0"))
        // The header ends before the height: found "" (described as end of file).
        let early = decodingError(pgm("P5 3 # only a width\n"), path: "e.pgm")
        #expect(early == .badHeaderToken(path: "e.pgm", field: "height", found: ""))
        #expect(early?.description.contains("end of file") == true)
    }

    @Test func plainSampleErrors() {
        let tooLarge = decodingError(pgm("P2 2 2 15\n0 7\n16 3\n"), path: "p2.pgm")
        #expect(tooLarge == .sampleExceedsMaxValue(path: "p2.pgm", sampleIndex: 2, value: 16, maxValue: 15))
        #expect(tooLarge?.description.contains("p2.pgm") == true)
        #expect(decodingError(pgm("P2 2 2 15\n0 7\n1.5 3\n"), path: "f.pgm")
                == .badSampleToken(path: "f.pgm", sampleIndex: 2, found: "1.5"))
        #expect(decodingError(pgm("P2 2 2 15\n0 7 1\n"), path: "t.pgm")
                == .truncatedSamples(path: "t.pgm", expected: 4, found: 3))
    }

    @Test func binarySampleAboveMaxValue() {
        // maxval 100: byte 101 at index 1 is invalid; 16-bit 0x03E9 = 1001 > 1000 at index 0.
        #expect(decodingError(pgm("P5 2 1 100\n", [100, 101]), path: "a.pgm")
                == .sampleExceedsMaxValue(path: "a.pgm", sampleIndex: 1, value: 101, maxValue: 100))
        #expect(decodingError(pgm("P5 1 1 1000\n", [0x03, 0xE9]), path: "b.pgm")
                == .sampleExceedsMaxValue(path: "b.pgm", sampleIndex: 0, value: 1001, maxValue: 1000))
    }

    @Test func loadReportsFileErrors() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.path + "/missing.pgm"
        #expect(throws: ImageDecodingError.unreadableFile(path: missing, reason: "no such file")) {
            try loadPGM(path: missing)
        }
        #expect(throws: ImageDecodingError.unreadableFile(path: directory.path, reason: "not a regular file (a directory)")) {
            try loadPGM(path: directory.path)
        }
        let empty = try directory.write([], to: "empty.pgm")
        #expect(throws: ImageDecodingError.emptyFile(path: empty)) { try loadPGM(path: empty) }
        let short = try directory.write(pgm("P5 3 2 255\n", [1, 2]), to: "short.pgm")
        do {
            _ = try loadPGM(path: short)
            Issue.record("truncated file decoded")
        } catch {
            #expect(error == .truncatedPixelData(path: short, expectedBytes: 6, availableBytes: 2))
            #expect(error.description.hasPrefix(short))
        }
        let good = try directory.write(pgm("P5\n3 2\n255\n", ramp), to: "good.pgm")
        #expect(try loadPGM(path: good).pixels == rampPixels)
    }
}

@Suite struct RealPGMTests {
    @Test func knownPixelsOfARealFile() throws {
        // s1/1.pgm begins "P5\n92 112\n255\n" followed by the raster "01-/19…" (bytes 0x30 = 48,
        // 0x31 = 49, …; seen with xxd). The raster is the last 92·112 = 10304 bytes of the file,
        // read here independently of the decoder.
        let path = attFacesDirectory + "/s1/1.pgm"
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let raster = Array(bytes.suffix(92 * 112))
        #expect(raster.count == 10304)
        #expect(raster[0] == 48 && raster[1] == 49)

        let image = try loadPGM(path: path)
        #expect(image.width == 92 && image.height == 112)
        #expect(image.pixels[0] == Float(48) / 255)
        #expect(image.pixels[1] == Float(49) / 255)
        for (y, x) in [(0, 0), (56, 46), (111, 91), (17, 80)] {
            #expect(image[y, x] == Float(raster[y * 92 + x]) / 255, "pixel (\(y), \(x))")
        }
        #expect(image.pixels == raster.map { Float($0) / 255 })
    }
}
