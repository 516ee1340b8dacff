import FaceData
import Foundation
import Testing

@Suite struct PNGCodecTests {
    @Test func roundTripGreyAndRGBExactly() throws {
        let grey = FaceImage(width: 5, height: 3, pixels: (0..<15).map { Float($0 * 17) / 255 })
        #expect(try decodePNG(encodePNG(grey), path: "grey.png") == grey)
        let colour = colourPattern(width: 4, height: 3)
        let decoded = try decodePNG(encodePNG(colour), path: "rgb.png")
        #expect(decoded.channels == 3)
        #expect(decoded == colour)
    }

    @Test func sixteenBitRoundTrip() throws {
        let values: [Float] = [0, 1, 256, 4660, 65534, 65535].map { Float($0) / 65535 }
        let image = FaceImage(width: 3, height: 2, pixels: values)
        #expect(try decodePNG(encodePNG(image, bitDepth: 16), path: "g16.png") == image)
    }

    @Test func fixturesFromAnIndependentWriter() throws {
        // gray16.png: 16-bit samples [[0, 1, 256], [4660, 65534, 65535]], scaled by 1/65535.
        let gray16 = try decodePNG(fixtureBytes("gray16.png"), path: "gray16.png")
        #expect(gray16 == FaceImage(width: 3, height: 2, pixels: [0, 1, 256, 4660, 65534, 65535].map { Float($0) / 65535 }))
        // palette.png: indices 0, 1 → (255, 0, 0), (0, 128, 255); planar R, G, B.
        let palette = try decodePNG(fixtureBytes("palette.png"), path: "palette.png")
        #expect(palette == FaceImage(width: 2, height: 1, channels: 3, pixels: [255, 0, 0, 128, 0, 255].map { Float($0) / 255 }))
        // rgba.png: an opaque pixel keeps its colour; a transparent one composites to black.
        let rgba = try decodePNG(fixtureBytes("rgba.png"), path: "rgba.png")
        #expect(rgba == FaceImage(width: 2, height: 1, channels: 3, pixels: [10, 0, 20, 0, 30, 0].map { Float($0) / 255 }))
        // gray2.png: 2-bit samples 0…3 scaled up to 0, 85, 170, 255.
        let gray2 = try decodePNG(fixtureBytes("gray2.png"), path: "gray2.png")
        #expect(gray2 == FaceImage(width: 4, height: 1, pixels: [0, 85, 170, 255].map { Float($0) / 255 }))
    }

    @Test func brokenFilesAreTypedErrors() throws {
        let good = try encodePNG(colourPattern(width: 8, height: 8))
        let truncated = thrownError { () throws(ImageDecodingError) in try decodePNG(Array(good.prefix(good.count - 20)), path: "cut.png") }
        guard case .invalidPNG(let path, let reason)? = truncated else {
            Issue.record("expected .invalidPNG, got \(String(describing: truncated))")
            return
        }
        #expect(path == "cut.png" && !reason.isEmpty)
        #expect(truncated?.description.hasPrefix("cut.png: bad PNG: ") == true)
        var corrupt = good
        corrupt[20] ^= 0xFF  // inside IHDR: its CRC no longer matches
        #expect(thrownError { () throws(ImageDecodingError) in try decodePNG(corrupt, path: "crc.png") }?.path == "crc.png")
        if case .invalidPNG? = thrownError({ () throws(ImageDecodingError) in try decodePNG(Array("not a png".utf8), path: "x.png") }) {} else {
            Issue.record("a non-PNG must be .invalidPNG")
        }
        #expect(thrownError { () throws(ImageDecodingError) in try decodePNG([], path: "e.png") } == .emptyFile(path: "e.png"))
    }
}

@Suite struct JPEGCodecTests {
    @Test func colourRoundTripWithinJPEGTolerance() throws {
        let image = colourPattern(width: 16, height: 16)
        let decoded = try decodeJPEG(encodeJPEG(image, quality: 100), path: "rgb.jpg")
        #expect(decoded.channels == 3 && decoded.size == image.size)
        // Quality 100 with 4:4:4 chroma: each sample within 3/255 of the original.
        let worst = zip(decoded.pixels, image.pixels).map { abs($0 - $1) }.max() ?? 1
        #expect(worst <= 3.0 / 255, "worst |error| \(worst * 255)/255")
    }

    @Test func greyJPEGGivesOneChannel() throws {
        let grey = FaceImage(width: 8, height: 8, pixels: (0..<64).map { Float($0 * 4) / 255 })
        let decoded = try decodeJPEG(encodeJPEG(grey, quality: 95), path: "grey.jpg")
        #expect(decoded.channels == 1 && decoded.size == grey.size)
        let worst = zip(decoded.pixels, grey.pixels).map { abs($0 - $1) }.max() ?? 1
        #expect(worst <= 4.0 / 255, "worst |error| \(worst * 255)/255")
    }

    @Test func brokenFilesAreTypedErrors() throws {
        let good = try encodeJPEG(colourPattern(width: 32, height: 32), quality: 90)
        for (name, bytes) in [("cut.jpg", Array(good.prefix(good.count / 2))),
                              ("header.jpg", Array(good.prefix(4))),
                              ("garbage.jpg", [0xFF, 0xD8, 0xFF] + [UInt8](repeating: 0x42, count: 64))] {
            let error = thrownError { () throws(ImageDecodingError) in try decodeJPEG(bytes, path: name) }
            guard case .invalidJPEG(let path, let reason)? = error else {
                Issue.record("\(name): expected .invalidJPEG, got \(String(describing: error))")
                continue
            }
            #expect(path == name && !reason.isEmpty)
            #expect(error?.description.hasPrefix("\(name): bad JPEG: ") == true)
        }
    }
}

@Suite struct ImageFormatTests {
    @Test func decodeImageDispatchesOnContent() throws {
        let image = FaceImage(width: 3, height: 2, pixels: [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(try decodeImage(encodePNG(image), path: "a.jpg") == image)  // content wins over name
        #expect(try decodeImage(encodePGM(image), path: "a.png") == image)
        #expect(try decodeImage(encodeJPEG(image), path: "a.pgm").channels == 1)
        let gif = Array("GIF89a\u{1}\u{0}".utf8)
        #expect(thrownError { () throws(ImageDecodingError) in try decodeImage(gif, path: "x.gif") }
                == .unsupportedFormat(path: "x.gif", found: gif))
    }

    @Test func loadImageFallsBackToTheExtensionsDecoder() throws {
        let root = try TemporaryDirectory()
        let pgmPath = try root.write(Array("GIF89a".utf8), to: "a.pgm")
        #expect(thrownError { () throws(ImageDecodingError) in try loadImage(path: pgmPath) }
                == .wrongMagic(path: pgmPath, found: Array("GI".utf8)))
        let jpgPath = try root.write(Array("GIF89a".utf8), to: "a.JPG")
        if case .invalidJPEG(let path, _)? = thrownError({ () throws(ImageDecodingError) in try loadImage(path: jpgPath) }) {
            #expect(path == jpgPath)
        } else { Issue.record("a non-JPEG .JPG must be .invalidJPEG") }
    }
}

@Suite struct FaceImageTransformTests {
    @Test func bilinearMatchesPyTorch() {
        // torch.nn.functional.interpolate([[0, 1], [2, 3]], size=(4, 4), mode="bilinear",
        // align_corners=False) = rows [0, .25, .75, 1], [.5, .75, 1.25, 1.5], [1.5, 1.75, 2.25, 2.5], [2, 2.25, 2.75, 3].
        let image = FaceImage(width: 2, height: 2, pixels: [0, 1, 2, 3])
        let expected: [Float] = [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]
        #expect(image.resizedBilinear(to: ImageSize(width: 4, height: 4)).pixels == expected)
        // Halving 4 → 2 averages neighbouring pairs (sample points fall midway).
        let row = FaceImage(width: 4, height: 1, pixels: [0, 2, 4, 6])
        #expect(row.resizedBilinear(to: ImageSize(width: 2, height: 1)).pixels == [1, 5])
    }

    @Test func cropAndCoverResize() {
        let image = FaceImage(width: 4, height: 2, pixels: [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(image.centerCropped(to: ImageSize(width: 2, height: 2)).pixels == [1, 2, 5, 6])
        // 4×2 → 2×2: scale max(2/4, 2/2) = 1 keeps the size, then the centre columns.
        #expect(image.resizedAndCropped(to: ImageSize(width: 2, height: 2)).pixels == [1, 2, 5, 6])
        // 4×2 → 2×1: scale 0.5 gives 2×1 directly (pairs averaged, rows blended).
        #expect(image.resizedAndCropped(to: ImageSize(width: 2, height: 1)).pixels == [2.5, 4.5])
        let colour = colourPattern(width: 6, height: 4)
        let cropped = colour.centerCropped(to: ImageSize(width: 2, height: 2))
        #expect(cropped.channels == 3 && cropped[2, 0, 0] == colour[2, 1, 2])
    }

    @Test func channelConversions() {
        let colour = FaceImage(width: 1, height: 1, channels: 3, pixels: [1, 0.5, 0])
        // BT.601 luma: 0.299·1 + 0.587·0.5 + 0.114·0 = 0.5925.
        let grey = colour.converted(to: .grayscale)
        #expect(grey.channels == 1 && abs(grey.pixels[0] - 0.5925) < 1e-6)
        #expect(grey.converted(to: .rgb).pixels == [grey.pixels[0], grey.pixels[0], grey.pixels[0]])
        #expect(colour.converted(to: .asStored) == colour && colour.converted(to: .rgb) == colour)
    }
}

@Suite struct MultiFormatDatasetTests {
    @Test func foldersOfJPEGAndPNGLoadResizedWithChannels() throws {
        let root = try TemporaryDirectory()
        try root.write(encodePNG(colourPattern(width: 8, height: 6)), to: "Alice/Alice_0001.png")
        try root.write(encodeJPEG(colourPattern(width: 8, height: 6, base: 20), quality: 100), to: "Alice/Alice_0002.jpg")
        try root.write(encodePNG(colourPattern(width: 12, height: 6, base: 40)), to: "Bob/Bob_0001.PNG")
        try root.write(encodeJPEG(colourPattern(width: 4, height: 3, base: 60), quality: 100), to: "Bob/Bob_0002.jpeg")
        // Without a size the 12×6 image does not fit; with one, everything becomes 4×4.
        #expect(loadingError(root.path) == .inconsistentImageSize(path: root.path + "/Bob/Bob_0001.PNG",
                                                                  expected: ImageSize(width: 8, height: 6),
                                                                  found: ImageSize(width: 12, height: 6)))
        let dataset = try FaceDataset.load(directory: root.path, imageSize: ImageSize(width: 4, height: 4))
        #expect(dataset.identities == ["Alice", "Bob"] && dataset.labels == [0, 0, 1, 1])
        #expect(dataset.channelCount == 3 && dataset.imageSize == ImageSize(width: 4, height: 4))
        // The PNG, resized 8×6 → 5×4 (cover) and centre-cropped: equal to doing that by hand.
        let expected = colourPattern(width: 8, height: 6).resizedBilinear(to: ImageSize(width: 5, height: 4))
            .centerCropped(to: ImageSize(width: 4, height: 4))
        #expect(dataset.images[0] == expected)
        let batch = dataset.makeBatch(indices: [0, 3], transforms: [.identity, SampleTransform(isFlipped: true)])
        #expect(batch.images.shape == [2, 3, 4, 4])
        #expect(Array(batch.images.storage.prefix(48)) == expected.pixels.map { $0 * 2 - 1 })
        // The flip mirrors every channel plane: sample 1, channel 2, row 1, column 0 ← column 3.
        #expect(batch.images.storage[48 + 2 * 16 + 4] == dataset.images[3][2, 1, 3] * 2 - 1)

        let grey = try FaceDataset.load(directory: root.path, imageSize: ImageSize(width: 4, height: 4), colorMode: .grayscale)
        #expect(grey.channelCount == 1)
        #expect(grey.makeTensor(indices: [0, 1, 2]).shape == [3, 1, 4, 4])
    }

    @Test func mixedGreyAndColourNeedAColorMode() throws {
        let root = try TemporaryDirectory()
        try root.write(encodePNG(FaceImage(width: 4, height: 4, repeating: 51.0 / 255)), to: "a/1.png")
        let colourPath = try root.write(encodePNG(colourPattern(width: 4, height: 4)), to: "b/1.png")
        #expect(loadingError(root.path) == .inconsistentChannelCount(path: colourPath, expected: 1, found: 3))
        let rgb = try FaceDataset.load(directory: root.path, colorMode: .rgb)
        #expect(rgb.channelCount == 3 && rgb.images[0].pixels == [Float](repeating: 51.0 / 255, count: 48))
    }
}
