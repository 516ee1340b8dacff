import FaceData
import Foundation
import Testing

/// A pairs file of 2 folds × 2 pairs per class over people A, B, C (tabs, as LFW's file).
private let smallPairs = """
2\t2
A\t1\t2
B\t1\t3
A\t1\tB\t2
C\t1\tA\t2
A\t2\t3
B\t2\t3
B\t1\tC\t1
C\t1\tA\t3

"""

/// The error `LFWPairs.parse` throws for `text`, or nil.
private func pairsError(_ text: String) -> VerificationSetError? {
    thrownError { () throws(VerificationSetError) in try LFWPairs.parse(text, path: "pairs.txt") }
}

@Suite struct LFWPairsTests {
    @Test func parsesFoldsAndBlocks() throws {
        let pairs = try LFWPairs.parse(smallPairs, path: "pairs.txt")
        #expect(pairs.foldCount == 2 && pairs.pairsPerClass == 2 && pairs.pairs.count == 8)
        #expect(pairs.pairs.map(\.isSame) == [true, true, false, false, true, true, false, false])
        #expect(pairs.pairs.map(\.fold) == [0, 0, 0, 0, 1, 1, 1, 1])
        #expect(pairs.pairs[3] == LFWPair(firstName: "C", firstNumber: 1, secondName: "A", secondNumber: 2,
                                          isSame: false, fold: 0, line: 5))
        #expect(pairs.pairs[1] == LFWPair(firstName: "B", firstNumber: 1, secondName: "B", secondNumber: 3,
                                          isSame: true, fold: 0, line: 3))
        // View 1 files have a one-number header: one fold.
        let view1 = try LFWPairs.parse("1\nA 1 2\nA 1 B 1\n", path: "pairsDevTest.txt")
        #expect(view1.foldCount == 1 && view1.pairs.count == 2)
    }

    /// Regression (found with the Fuzz/ LFWPairs seed corpus): CRLF line breaks, whose "\r\n"
    /// is a single Swift Character, made the whole file one bad header line.
    @Test func acceptsCRLFLineBreaks() throws {
        let pairs = try LFWPairs.parse(smallPairs.replacingOccurrences(of: "\n", with: "\r\n"), path: "pairs.txt")
        #expect(pairs.foldCount == 2 && pairs.pairs.count == 8)
        #expect(pairs.pairs[3] == LFWPair(firstName: "C", firstNumber: 1, secondName: "A", secondNumber: 2,
                                          isSame: false, fold: 0, line: 5))
        #expect(try LFWPairs.parse("1\r\nA 1 2\r\nA 1 B 1\r\n\r\n", path: "pairsDevTest.txt").pairs.count == 2)
    }

    @Test func imagePathsFollowTheLFWLayout() {
        #expect(LFWPairs.imagePath(root: "/data/lfw", name: "Aaron_Peirsol", number: 1)
                == "/data/lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg")
        #expect(LFWPairs.imagePath(root: "/data/lfw/", name: "X", number: 12345, fileExtension: "png")
                == "/data/lfw/X/X_12345.png")
        // `--image-extension .pgm` used to give `P1_0001..pgm`.
        #expect(LFWPairs.imagePath(root: "/d", name: "P1", number: 1, fileExtension: ".pgm") == "/d/P1/P1_0001.pgm")
    }

    @Test func resolvesImagesOnceAndReportsMissingOnes() throws {
        let root = try TemporaryDirectory()
        let image = try encodeJPEG(FaceImage(width: 4, height: 4, repeating: 0.5))
        for (name, number) in [("A", 1), ("A", 2), ("A", 3), ("B", 1), ("B", 2), ("B", 3), ("C", 1)] {
            try root.write(image, to: "\(name)/\(name)_000\(number).jpg")
        }
        let pairs = try LFWPairs.parse(smallPairs, path: "pairs.txt")
        let (paths, resolved) = try pairs.resolve(root: root.path)
        #expect(paths.count == 7)
        #expect(paths[0] == root.path + "/A/A_0001.jpg" && paths[1] == root.path + "/A/A_0002.jpg")
        #expect(resolved.map { [$0.first, $0.second] } == [[0, 1], [2, 3], [0, 4], [5, 1], [1, 6], [4, 3], [2, 5], [5, 6]])
        #expect(resolved.map(\.fold) == pairs.pairs.map(\.fold))
        try FileManager.default.removeItem(atPath: root.path + "/C/C_0001.jpg")
        let error = thrownError { () throws(VerificationSetError) in try pairs.resolve(root: root.path) }
        #expect(error == .missingImage(path: "pairs.txt", line: 5, imagePath: root.path + "/C/C_0001.jpg"))
        #expect(error?.description.hasPrefix("pairs.txt:5: ") == true)
    }

    @Test func malformedFilesNameTheLine() {
        func line(_ error: VerificationSetError?) -> Int? {
            if case .badPairsLine(_, let line, _)? = error { return line }
            return nil
        }
        #expect(line(pairsError("ten 300\n")) == 1)
        #expect(line(pairsError("")) == 1)
        #expect(line(pairsError("9999999999 9999999999\n")) == 1)  // no overflow
        #expect(line(pairsError("2 2\nA 1 2\n")) == 3)  // ends early
        // A mismatched line where a matched one belongs (line 3), and the reverse (line 4).
        #expect(line(pairsError(smallPairs.replacingOccurrences(of: "B\t1\t3", with: "B\t1\tA\t3"))) == 3)
        #expect(line(pairsError(smallPairs.replacingOccurrences(of: "A\t1\tB\t2", with: "A\t1\t2"))) == 4)
        #expect(line(pairsError(smallPairs.replacingOccurrences(of: "A\t2\t3", with: "A\t2\tx"))) == 6)
        #expect(line(pairsError(smallPairs.replacingOccurrences(of: "A\t2\t3", with: "A\t2\t2"))) == 6)
        #expect(line(pairsError(smallPairs.replacingOccurrences(of: "B\t1\tC\t1", with: "B\t1\tB\t2"))) == 8)
        #expect(line(pairsError(smallPairs + "D 1 2\n")) == 10)  // extra line
        #expect(pairsError("ten 300\n")?.description.hasPrefix("pairs.txt:1: bad header") == true)
    }
}
