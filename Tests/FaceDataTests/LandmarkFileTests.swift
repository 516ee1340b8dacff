import Foundation
import Testing
@testable import FaceData

/// Landmark files: the plain `path x1 y1 … x5 y5` layout and insightface's `.lst` layout (x's
/// then y's), and a typed error naming the file and line for every bad line.
@Suite struct LandmarkFileTests {
    let points = "38.3 51.7 73.5 51.5 56.0 71.7 41.5 92.4 70.7 92.2"
    let expected: [SIMD2<Double>] = [SIMD2(38.3, 51.7), SIMD2(73.5, 51.5), SIMD2(56.0, 71.7), SIMD2(41.5, 92.4), SIMD2(70.7, 92.2)]

    func parseError(_ text: String, format: LandmarkFileFormat? = nil) -> LandmarkFileError? {
        thrownError { () throws(LandmarkFileError) in try LandmarkFile.parse(text, path: "marks.txt", format: format) }
    }

    @Test("plain lines, space- or tab-separated; blank lines and CRLF are fine")
    func plain() throws {
        let tabbed = "my photos/b c.jpg\t" + points.split(separator: " ").joined(separator: "\t")
        let text = "a/1.jpg " + points + "\r\n\n   \n" + tabbed + "\n"
        let file = try LandmarkFile.parse(text, path: "marks.txt")
        #expect(file.format == .plain)
        #expect(file.entries.map(\.path) == ["a/1.jpg", "my photos/b c.jpg"])
        #expect(file.entries.map(\.line) == [1, 4])
        #expect(file.entries[0].landmarks == expected && file.entries[1].landmarks == expected)
    }

    @Test("a leading UTF-8 byte-order mark is not part of the first path")
    func byteOrderMark() throws {
        let file = try LandmarkFile.parse("\u{FEFF}a/1.jpg " + points + "\r\n", path: "marks.txt")
        #expect(file.entries.map(\.path) == ["a/1.jpg"])
        #expect(file.entries[0].landmarks == expected)
    }

    @Test("coordinates whose spread overflows are refused as too large, not as one point")
    func overflowingCoordinates() throws {
        let error = try #require(parseError("a.jpg 1e300 1e300 -1e300 1e300 1e300 -1e300 0 0 1 1\n"))
        guard case .degenerateLandmarks(_, 1, let spread) = error else { Issue.record("\(error)"); return }
        #expect(!spread.isFinite)
        #expect(error.description == "marks.txt:1: the landmark coordinates are too large to align (their spread overflows a Double)")
    }

    @Test("insightface .lst lines: aligned, path, label, bounding box, x1…x5, y1…y5")
    func insightfaceList() throws {
        let xs = "38.3\t73.5\t56.0\t41.5\t70.7", ys = "51.7\t51.5\t71.7\t92.4\t92.2"
        let text = "0\tid1/img 1.jpg\t7\t10\t20\t110\t130\t\(xs)\t\(ys)\n1\tid2/x.png\t8\t0\t0\t5\t5\t\(xs)\t\(ys)\n"
        let file = try LandmarkFile.parse(text, path: "train.lst")
        #expect(file.format == .insightfaceList)
        #expect(file.entries.map(\.path) == ["id1/img 1.jpg", "id2/x.png"])
        #expect(file.entries[0].landmarks == expected)
        // Forced plain, the same line is 17 fields, not 11.
        #expect(parseError(text, format: .plain) == .wrongFieldCount(path: "marks.txt", line: 1, format: .plain, found: 17))
    }

    @Test("each bad line is a typed error naming the file and the line")
    func badLines() {
        let good = "a.jpg " + points + "\n"
        #expect(parseError(good + "b.jpg 1 2 3\n") == .wrongFieldCount(path: "marks.txt", line: 2, format: .plain, found: 4))
        #expect(parseError(good + "b.jpg\n") == .wrongFieldCount(path: "marks.txt", line: 2, format: .plain, found: 1))
        #expect(parseError(good + "\nb.jpg " + points.replacingOccurrences(of: "56.0", with: "5x6") + "\n")
                == .badNumber(path: "marks.txt", line: 3, field: 6, found: "5x6"))
        #expect(parseError(good + "b.jpg " + points.replacingOccurrences(of: "92.2", with: "nan") + "\n")
                == .badNumber(path: "marks.txt", line: 2, field: 11, found: "nan"))
        #expect(parseError(good + "c.jpg 5 5 5 5 5 5 5 5 5 5\n") == .degenerateLandmarks(path: "marks.txt", line: 2, spread: 0))
        #expect(parseError(good + "d.jpg 0 0 0 0 0 0 0 0 0 0\n") == .degenerateLandmarks(path: "marks.txt", line: 2, spread: 0))
        #expect(parseError(good + "../up.jpg " + points + "\n") == .badImagePath(path: "marks.txt", line: 2, imagePath: "../up.jpg"))
        #expect(parseError(good + "x\t" + points.split(separator: " ").joined(separator: "\t") + "\n \t" + points.split(separator: " ").joined(separator: "\t"))
                == .badImagePath(path: "marks.txt", line: 3, imagePath: ""))
        #expect(parseError(good + good) == .duplicateImage(path: "marks.txt", line: 2, firstLine: 1, imagePath: "a.jpg"))
        #expect(parseError("\n\n") == .noEntries(path: "marks.txt"))
        let lst = "0\tid/a.jpg\t3\n"
        #expect(parseError(lst) == .missingLandmarks(path: "marks.txt", line: 1, found: 3))
        #expect(parseError("0\tid/a.jpg\t3\t1\t2\t3\t4\n") == .missingLandmarks(path: "marks.txt", line: 1, found: 7))
        let xs = "1\t2\t3\t4\t5", ys = "6\t7\t8\t9\t10"
        #expect(parseError("z\tid/a.jpg\t3\t1\t2\t3\t4\t\(xs)\t\(ys)\n") == .badNumber(path: "marks.txt", line: 1, field: 1, found: "z"))
        #expect(parseError("0\tid/a.jpg\t3\t1\t2\t3\t4\t\(xs)\t\(ys)\n0\tid/b.jpg\t3\t1\t2\t3\n")
                == .wrongFieldCount(path: "marks.txt", line: 2, format: .insightfaceList, found: 6))
    }

    @Test("descriptions name file:line and what was expected")
    func descriptions() {
        let error = parseError("a.jpg " + points + "\nb.jpg 1 2\n")
        #expect(error?.description.hasPrefix("marks.txt:2: 3 fields, expected 11 fields: path x1 y1") == true, "\(String(describing: error))")
        let degenerate = parseError("a.jpg 3 3 3 3 3 3 3 3 3 3\n")
        #expect(degenerate?.description.contains("marks.txt:1: the five landmarks are all at one point") == true)
    }

    @Test("read: a missing file is unreadableFile naming it")
    func missingFile() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/none.txt"
        let error = thrownError { () throws(LandmarkFileError) in try LandmarkFile.read(path: path) }
        guard case .unreadableFile(let named, _)? = error else {
            Issue.record("expected unreadableFile, got \(String(describing: error))")
            return
        }
        #expect(named == path)
    }
}
