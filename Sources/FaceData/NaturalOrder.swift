/// Whether `lhs` sorts before `rhs` in natural (numeric-aware) order: runs of ASCII digits compare
/// by their numeric value, everything else byte by byte, so `s2 < s10` and `9.pgm < 10.pgm`.
/// Names that compare equal that way (`s01`, `s1`) fall back to plain byte order, so the order
/// is total and deterministic.
public func naturalOrderPrecedes(_ lhs: String, _ rhs: String) -> Bool {
    let a = Array(lhs.utf8), b = Array(rhs.utf8)
    var i = 0, j = 0
    while i < a.count && j < b.count {
        if isDigit(a[i]) && isDigit(b[j]) {
            let aEnd = endOfDigits(a, from: i), bEnd = endOfDigits(b, from: j)
            let aStart = startAfterLeadingZeros(a, i, aEnd), bStart = startAfterLeadingZeros(b, j, bEnd)
            let aLength = aEnd - aStart, bLength = bEnd - bStart
            if aLength != bLength { return aLength < bLength }  // more significant digits: larger
            for k in 0..<aLength where a[aStart + k] != b[bStart + k] {
                return a[aStart + k] < b[bStart + k]
            }
            i = aEnd
            j = bEnd
        } else {
            if a[i] != b[j] { return a[i] < b[j] }
            i += 1
            j += 1
        }
    }
    if i == a.count && j == b.count { return a.lexicographicallyPrecedes(b) }
    return i == a.count
}

private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

private func endOfDigits(_ bytes: [UInt8], from start: Int) -> Int {
    var end = start
    while end < bytes.count && isDigit(bytes[end]) { end += 1 }
    return end
}

/// The first index of the digit run `start..<end` after its leading zeros (keeps one digit).
private func startAfterLeadingZeros(_ bytes: [UInt8], _ start: Int, _ end: Int) -> Int {
    var index = start
    while index < end - 1 && bytes[index] == 0x30 { index += 1 }
    return index
}
