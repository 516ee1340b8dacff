// Conversion between `Float` arrays and little-endian IEEE-754 bytes (checkpoint and fixture I/O).

/// The little-endian bytes of `values` (4 bytes each).
package func littleEndianBytes(of values: [Float]) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: values.count * 4)
    bytes.withUnsafeMutableBytes { raw in
        for (i, v) in values.enumerated() {
            raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
        }
    }
    return bytes
}

/// The `Float` values stored as little-endian bytes in `bytes[range]`.
///
/// - Precondition: `range` lies inside `bytes` and its length is a multiple of 4.
package func floats<Bytes: RandomAccessCollection>(fromLittleEndian bytes: Bytes, range: Range<Int>) -> [Float]
    where Bytes.Element == UInt8, Bytes.Index == Int {
    precondition(range.lowerBound >= bytes.startIndex && range.upperBound <= bytes.endIndex && range.count % 4 == 0,
                 "floats(fromLittleEndian:): range \(range) invalid for \(bytes.count) bytes")
    let count = range.count / 4
    var result = [Float](repeating: 0, count: count)
    var index = range.lowerBound
    for i in 0..<count {
        let b0 = UInt32(bytes[index]), b1 = UInt32(bytes[index + 1])
        let b2 = UInt32(bytes[index + 2]), b3 = UInt32(bytes[index + 3])
        result[i] = Float(bitPattern: b0 | (b1 << 8) | (b2 << 16) | (b3 << 24))
        index += 4
    }
    return result
}
