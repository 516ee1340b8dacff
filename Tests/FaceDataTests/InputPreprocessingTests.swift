import Foundation
import Testing
@testable import FaceData

@Suite struct InputPreprocessingTests {
    @Test("the description names C×H×W, colour and the normalization")
    func descriptions() {
        #expect(InputPreprocessing(channels: 3, height: 112, width: 112).description == "3×112×112 RGB, (x − 127.5)/127.5")
        #expect(InputPreprocessing(channels: 1, height: 112, width: 92).description == "1×112×92 grey, (x − 127.5)/127.5")
        #expect(InputPreprocessing(channels: 3, height: 112, width: 112, channelOrder: .bgr, mean: 0, standardDeviation: 1).description
                == "3×112×112 BGR, (x − 0)/1")
    }

    @Test("only RGB (or grey) with (x − 127.5)/127.5 can be fed; anything else says why")
    func supported() {
        #expect(InputPreprocessing(channels: 3, height: 112, width: 112).unsupportedReason == nil)
        #expect(InputPreprocessing(channels: 1, height: 8, width: 8, channelOrder: .bgr).unsupportedReason == nil)
        #expect(InputPreprocessing(channels: 3, height: 112, width: 112, channelOrder: .bgr).unsupportedReason?.contains("BGR") == true)
        #expect(InputPreprocessing(channels: 3, height: 112, width: 112, mean: 127.5, standardDeviation: 128)
                    .unsupportedReason?.contains("(x − 127.5)/128") == true)
        #expect(InputPreprocessing(channels: 2, height: 112, width: 112).unsupportedReason?.contains("2 input channels") == true)
    }

    @Test("the metadata JSON is compact with sorted keys and reads back")
    func json() throws {
        let p = InputPreprocessing(channels: 3, height: 112, width: 112)
        #expect(p.json == #"{"channelOrder":"rgb","channels":3,"height":112,"mean":127.5,"standardDeviation":127.5,"width":112}"#)
        #expect(InputPreprocessing(json: p.json) == p)
        #expect(InputPreprocessing(json: #"{"channels":3}"#) == nil)
        #expect(InputPreprocessing(json: "not json") == nil)
    }

    @Test("grey images for a colour model and other sizes are counted in the warnings")
    func mismatchWarnings() {
        var tally = InputSourceTally()
        for _ in 0..<3 { tally.record(FaceImage(width: 112, height: 112, channels: 1)) }
        tally.record(FaceImage(width: 112, height: 112, channels: 3))
        tally.record(FaceImage(width: 250, height: 250, channels: 3))
        #expect(tally.imageCount == 5)
        let rgb = InputPreprocessing(channels: 3, height: 112, width: 112)
        let warnings = tally.mismatchWarnings(against: rgb)
        #expect(warnings.count == 2)
        #expect(warnings[0].hasPrefix("3 of 5 images are grey but the model was trained on colour (3×112×112 RGB"))
        #expect(warnings[1].hasPrefix("1 of 5 images are not 112×112 (250×250, width×height)"))
        let grey = InputPreprocessing(channels: 1, height: 112, width: 112)
        let greyWarnings = tally.mismatchWarnings(against: grey)
        #expect(greyWarnings[0].hasPrefix("2 of 5 images are colour but the model was trained on grey"))
        var matching = InputSourceTally()
        matching.record(FaceImage(width: 92, height: 112, channels: 1))
        #expect(matching.mismatchWarnings(against: InputPreprocessing(channels: 1, height: 112, width: 92)).isEmpty)
    }

    @Test("the first difference of one image is named: channels before size")
    func singleMismatch() {
        let rgb = InputPreprocessing(channels: 3, height: 112, width: 112)
        #expect(InputSourceTally.mismatch(of: FaceImage(width: 112, height: 112, channels: 3), against: rgb) == nil)
        #expect(InputSourceTally.mismatch(of: FaceImage(width: 90, height: 112, channels: 1), against: rgb)
                == "the image is grey, 90×112 pixels (width×height), but the model takes colour, 112×112 (input C×H×W 3×112×112 RGB, (x − 127.5)/127.5)")
        // A grey model of another width: both sizes are given width×height.
        #expect(InputSourceTally.mismatch(of: FaceImage(width: 100, height: 120, channels: 3),
                                          against: InputPreprocessing(channels: 1, height: 112, width: 92))
                == "the image is colour, 100×120 pixels (width×height), but the model takes grey, 92×112 (input C×H×W 1×112×92 grey, (x − 127.5)/127.5)")
        #expect(InputSourceTally.mismatch(of: FaceImage(width: 90, height: 112, channels: 3), against: rgb)
                == "the image is 90×112 pixels (width×height) but the model takes 112×112")
    }

    @Test("a folder load counts the images as decoded, before conversion and resizing")
    func loadReportCountsSources() throws {
        let directory = try TemporaryDirectory()
        for (identity, size) in [("a", 6), ("b", 8)] {
            let folder = directory.path + "/" + identity
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for index in 0..<2 {
                try Data(encodePGM(FaceImage(width: size, height: size, repeating: 0.5))).write(to: URL(fileURLWithPath: "\(folder)/\(index).pgm"))
            }
        }
        let (dataset, report) = try FaceDataset.load(directory: directory.path, imageSize: ImageSize(width: 8, height: 8),
                                                     colorMode: .rgb, onBadImage: .error)
        #expect(dataset.channelCount == 3)
        #expect(report.sources.counts == [SourceFormat(channels: 1, width: 6, height: 6): 2,
                                          SourceFormat(channels: 1, width: 8, height: 8): 2])
        let warnings = report.sources.mismatchWarnings(against: InputPreprocessing(channels: 3, height: 8, width: 8))
        #expect(warnings.count == 2)
        #expect(warnings[0].hasPrefix("4 of 4 images are grey"))
        #expect(warnings[1].hasPrefix("2 of 4 images are not 8×8 (6×6"))
    }
}
