// The one file that calls zlib: CRC-32 (ISO 3309 / ITU-T V.42, the polynomial of gzip and PNG)
// for checkpoint checksums.
internal import CZlib

/// CRC-32 of byte sequences (zlib's `crc32`).
package enum CRC32 {
    /// The CRC-32 of `bytes` continued from `crc` (0 to start); e.g. `checksum("123456789".utf8)`
    /// = 0xCBF43926, the standard check value.
    package static func checksum<Bytes: Collection<UInt8>>(_ bytes: Bytes, continuing crc: UInt32 = 0) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ update(crc, $0) }) { return result }
        return Array(bytes).withUnsafeBufferPointer { update(crc, $0) }
    }

    private static func update(_ crc: UInt32, _ buffer: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var value = UInt(crc)
        var start = buffer.baseAddress
        var remaining = buffer.count
        // zlib's length is a 32-bit uInt: feed at most 1 GiB at a time.
        while remaining > 0, let pointer = start {
            let chunk = min(remaining, 1 << 30)
            value = CZlib.crc32(value, pointer, uInt(chunk))
            start = pointer + chunk
            remaining -= chunk
        }
        return UInt32(truncatingIfNeeded: value)
    }
}
