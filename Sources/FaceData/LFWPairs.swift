#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One pair of LFW's `pairs.txt`: two images named by person and 1-based image number.
public struct LFWPair: Sendable, Equatable, Hashable {
    /// The first person's folder name (e.g. `Aaron_Peirsol`).
    public var firstName: String
    /// The first image's number, ≥ 1 (`Aaron_Peirsol_0001.jpg` is number 1).
    public var firstNumber: Int
    /// The second person's folder name (equal to `firstName` for a matched pair).
    public var secondName: String
    /// The second image's number, ≥ 1.
    public var secondNumber: Int
    /// `true` for a matched (same person) pair.
    public var isSame: Bool
    /// The fold the pair belongs to, `0..<foldCount`.
    public var fold: Int
    /// The 1-based line of `pairs.txt` the pair was read from.
    public var line: Int

    public init(firstName: String, firstNumber: Int, secondName: String, secondNumber: Int, isSame: Bool,
                fold: Int, line: Int) {
        self.firstName = firstName
        self.firstNumber = firstNumber
        self.secondName = secondName
        self.secondNumber = secondNumber
        self.isSame = isSame
        self.fold = fold
        self.line = line
    }
}

/// LFW's verification protocol file (`pairs.txt`, View 2; also `pairsDevTrain.txt`/`pairsDevTest.txt`,
/// View 1), from Huang et al., "Labeled Faces in the Wild", UMass TR 07-49, 2007.
///
/// Layout: a header line `folds pairsPerClass` (`10 300`; View 1 files have only `pairsPerClass`,
/// one fold), then for each fold `pairsPerClass` matched lines `name n1 n2` followed by
/// `pairsPerClass` mismatched lines `name1 n1 name2 n2` (fields separated by tabs or spaces).
/// Image `n` of `name` is `<root>/name/name_000n.jpg` (4-digit zero-padded number).
public struct LFWPairs: Sendable {
    /// The file the pairs were read from (used in error descriptions).
    public var path: String
    /// The number of folds (10 in View 2).
    public var foldCount: Int
    /// Matched (and mismatched) pairs per fold (300 in View 2).
    public var pairsPerClass: Int
    /// All pairs in file order, `[foldCount · 2 · pairsPerClass]`.
    public var pairs: [LFWPair]

    /// Reads and parses the file at `path` (see `parse(_:path:)`).
    public static func read(path: String) throws(VerificationSetError) -> LFWPairs {
        let bytes: [UInt8]
        do { bytes = try readFileBytes(path: path) } catch {
            if case .unreadableFile(_, let reason) = error { throw .unreadableFile(path: path, reason: reason) }
            throw .unreadableFile(path: path, reason: error.description)
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    /// Parses the text of a pairs file.
    ///
    /// - Throws: `VerificationSetError.badPairsLine` with the 1-based line number: a bad header,
    ///   a line with the wrong number of fields for its place (3 in the matched block, 4 in the
    ///   mismatched block), an image number that is not a positive integer, a matched line
    ///   whose numbers are equal, a mismatched line naming one person twice, missing lines or
    ///   extra non-empty lines.
    public static func parse(_ text: String, path: String) throws(VerificationSetError) -> LFWPairs {
        // "\r\n" is one Character in Swift, so CRLF files need it named as a line break.
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map {
            $0.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        }
        while let last = lines.last, last.isEmpty { lines.removeLast() }  // trailing blank lines
        guard let header = lines.first, (1...2).contains(header.count),
              let numbers = Optional(header.compactMap { Int($0) }), numbers.count == header.count,
              numbers.allSatisfy({ $0 >= 1 && $0 <= 1_000_000 }) else {
            throw .badPairsLine(path: path, line: 1,
                                reason: "bad header \"\(lines.first?.joined(separator: " ") ?? "")\": expected \"folds pairsPerClass\" (e.g. \"10 300\") or \"pairsPerClass\"")
        }
        let foldCount = numbers.count == 2 ? numbers[0] : 1
        let pairsPerClass = numbers.last ?? 0
        let expectedLines = 1 + foldCount * 2 * pairsPerClass
        guard lines.count >= expectedLines else {
            throw .badPairsLine(path: path, line: lines.count + 1,
                                reason: "file ends after \(lines.count) lines; the header \"\(header.joined(separator: " "))\" needs \(expectedLines)")
        }
        guard lines.count == expectedLines else {
            throw .badPairsLine(path: path, line: expectedLines + 1,
                                reason: "extra line after the \(foldCount * 2 * pairsPerClass) pairs the header announces")
        }
        func number(_ field: String, line: Int) throws(VerificationSetError) -> Int {
            guard let value = Int(field), value >= 1 else {
                throw .badPairsLine(path: path, line: line, reason: "image number \"\(field)\" is not a positive integer")
            }
            return value
        }
        var pairs: [LFWPair] = []
        pairs.reserveCapacity(expectedLines - 1)
        for index in 1..<expectedLines {
            let fields = lines[index], line = index + 1
            let fold = (index - 1) / (2 * pairsPerClass)
            let matched = (index - 1) % (2 * pairsPerClass) < pairsPerClass
            if matched {
                guard fields.count == 3 else {
                    throw .badPairsLine(path: path, line: line,
                                        reason: "expected a matched pair \"name n1 n2\" (fold \(fold + 1)), found \(fields.count) fields")
                }
                let (a, b) = (try number(fields[1], line: line), try number(fields[2], line: line))
                guard a != b else { throw .badPairsLine(path: path, line: line, reason: "a matched pair names image \(a) twice") }
                pairs.append(LFWPair(firstName: fields[0], firstNumber: a, secondName: fields[0], secondNumber: b,
                                     isSame: true, fold: fold, line: line))
            } else {
                guard fields.count == 4 else {
                    throw .badPairsLine(path: path, line: line,
                                        reason: "expected a mismatched pair \"name1 n1 name2 n2\" (fold \(fold + 1)), found \(fields.count) fields")
                }
                guard fields[0] != fields[2] else {
                    throw .badPairsLine(path: path, line: line, reason: "a mismatched pair names \(fields[0]) twice")
                }
                pairs.append(LFWPair(firstName: fields[0], firstNumber: try number(fields[1], line: line),
                                     secondName: fields[2], secondNumber: try number(fields[3], line: line),
                                     isSame: false, fold: fold, line: line))
            }
        }
        return LFWPairs(path: path, foldCount: foldCount, pairsPerClass: pairsPerClass, pairs: pairs)
    }

    /// The path of image `number` of `name` under `root`: `root/name/name_000n.<fileExtension>`.
    /// `fileExtension` may be given with or without its leading dot (`jpg` or `.jpg`).
    public static func imagePath(root: String, name: String, number: Int, fileExtension: String = "jpg") -> String {
        let digits = String(number)
        let padded = String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        let bare = fileExtension.hasPrefix(".") ? String(fileExtension.dropFirst()) : fileExtension
        return joined(joined(root, name), "\(name)_\(padded).\(bare)")
    }

    /// The images the pairs use, each once (in order of first use), and each pair as indices into
    /// that list, checking that every file exists.
    ///
    /// - Parameters:
    ///   - root: the LFW image folder (`lfw/` or an aligned copy with the same layout).
    ///   - fileExtension: the images' extension (`jpg`; aligned copies are often `png`).
    /// - Returns: `imagePaths` `[M]` and `pairs` `[P]` (indices into `imagePaths`, flag, fold).
    /// - Throws: `VerificationSetError.missingImage` naming the pairs line and the missing file.
    public func resolve(root: String, fileExtension: String = "jpg") throws(VerificationSetError)
        -> (imagePaths: [String], pairs: [(first: Int, second: Int, isSame: Bool, fold: Int)])
    {
        var indexOf: [String: Int] = [:]
        var imagePaths: [String] = []
        var resolved: [(first: Int, second: Int, isSame: Bool, fold: Int)] = []
        func index(_ name: String, _ number: Int, line: Int) throws(VerificationSetError) -> Int {
            let path = LFWPairs.imagePath(root: root, name: name, number: number, fileExtension: fileExtension)
            if let known = indexOf[path] { return known }
            guard FileManager.default.fileExists(atPath: path) else {
                throw .missingImage(path: self.path, line: line, imagePath: path)
            }
            indexOf[path] = imagePaths.count
            imagePaths.append(path)
            return imagePaths.count - 1
        }
        for pair in pairs {
            let first = try index(pair.firstName, pair.firstNumber, line: pair.line)
            let second = try index(pair.secondName, pair.secondNumber, line: pair.line)
            resolved.append((first, second, pair.isSame, pair.fold))
        }
        return (imagePaths, resolved)
    }
}
