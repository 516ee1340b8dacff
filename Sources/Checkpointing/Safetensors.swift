import Foundation
import TensorCore

/// Reading and writing the safetensors format (Hugging Face), fp32 tensors only.
///
/// Layout: an 8-byte little-endian `UInt64` header length `n`; `n` bytes of UTF-8 JSON mapping
/// each tensor name to `{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}` (byte
/// offsets into the data section) plus an optional `"__metadata__"` object of string values;
/// then the data section, tensors back to back, little-endian. Files written here are readable
/// by Python's `safetensors` (`safetensors.numpy.load_file`).
public enum Safetensors {
    /// The metadata key holding the CRC-32 of the data section (8 lowercase hex digits), written
    /// with `checksum: true` and verified by `decode` whenever present.
    public static let checksumKey = "dataCRC32"

    /// The encoded file for `tensors` (written in the given order) and string `metadata`.
    ///
    /// - Parameter checksum: also store the CRC-32 of the data section (all tensor bytes) under
    ///   `checksumKey`, so that `decode` detects a flipped bit or overwritten bytes.
    public static func encode(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
                              checksum: Bool = false) -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for (name, tensor) in tensors {
            precondition(header[name] == nil && name != "__metadata__", "safetensors: duplicate or reserved tensor name '\(name)'")
            let byteCount = tensor.count * 4
            header[name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + byteCount]] as [String: Any]
            offset += byteCount
        }
        var metadata = metadata
        if checksum {
            let crc = tensors.reduce(UInt32(0)) { CRC32.checksum(littleEndianBytes(of: $1.tensor.storage), continuing: $0) }
            metadata[checksumKey] = hex(crc)
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while json.count % 8 != 0 { json.append(0x20) }  // pad with spaces so the data is 8-byte aligned
        var data = Data()
        data.reserveCapacity(8 + json.count + offset)
        let headerLength = UInt64(json.count)
        data.append(contentsOf: (0..<8).map { UInt8(truncatingIfNeeded: headerLength >> (8 * UInt64($0))) })
        data.append(json)
        for (_, tensor) in tensors { data.append(contentsOf: littleEndianBytes(of: tensor.storage)) }
        return data
    }

    /// Writes `tensors` atomically (`DurableFileWriter`: temporary file in the same folder,
    /// fsync, rename over `path`), so a failure (full disk, no permission) leaves any previous
    /// file intact.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
                             checksum: Bool = false, to path: String) throws(CheckpointError) {
        try DurableFileWriter().write(encode(tensors, metadata: metadata, checksum: checksum), to: path)
    }

    /// `crc` as 8 lowercase hex digits.
    package static func hex(_ crc: UInt32) -> String {
        let digits = String(crc, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// The tensors (by name) and metadata of a safetensors file's bytes. PyTorch's BatchNorm
    /// counters (`….num_batches_tracked`, any integer dtype or F32) are checked like any tensor
    /// and left out of the result, so a state_dict exported from PyTorch reads as the model's tensors.
    ///
    /// - Throws: `CheckpointError.malformed` naming the file and what is wrong (short file,
    ///   header length past the end, invalid JSON, non-F32 dtype, offsets outside the data or
    ///   not matching the shape, a `checksumKey` CRC-32 that does not match the data).
    public static func decode(_ data: Data, path: String) throws(CheckpointError) -> (tensors: [String: Tensor], metadata: [String: String]) {
        let bytes = [UInt8](data)
        guard bytes.count >= 8 else {
            throw .malformed(path: path, reason: "file is \(bytes.count) bytes, shorter than the 8-byte header length")
        }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw .malformed(path: path, reason: "header length \(headerLength) exceeds the \(bytes.count - 8) bytes after it (truncated file?)")
        }
        let dataStart = 8 + Int(headerLength)
        let headerObject = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
        guard let header = headerObject as? [String: Any] else {
            throw .malformed(path: path, reason: "header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var tensors: [String: Tensor] = [:]
        var extents: [(begin: Int, end: Int, name: String)] = []
        let dataLength = bytes.count - dataStart
        for (name, value) in header {
            if name == "__metadata__" {
                guard let object = value as? [String: Any] else {
                    throw .malformed(path: path, reason: "__metadata__ is not an object")
                }
                for (k, v) in object {
                    guard let s = v as? String else { throw .malformed(path: path, reason: "metadata '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = (entry["shape"] as? [Any])?.compactMap(exactInteger),
                  let offsets = (entry["data_offsets"] as? [Any])?.compactMap(exactInteger),
                  offsets.count == 2, (entry["data_offsets"] as? [Any])?.count == 2,
                  shape.count == (entry["shape"] as? [Any])?.count else {
                throw .malformed(path: path, reason: "tensor '\(name)' has no valid dtype/shape/data_offsets")
            }
            // PyTorch's BatchNorm counter (an integer scalar) is accepted and skipped: nothing here uses it.
            let skipped = isBatchCounter(name), elementSize = skipped ? integerByteWidths[dtype] : 4
            guard dtype == "F32" || (skipped && elementSize != nil), let elementSize else {
                throw .malformed(path: path, reason: "tensor '\(name)' has dtype \(dtype); only F32 is supported"
                                 + (skipped ? " (or an integer dtype for a num_batches_tracked counter)" : ""))
            }
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw .malformed(path: path, reason: "tensor '\(name)' has a negative dimension \(shape)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            let (byteCount, overflow) = shape.reduce((elementSize, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d); return (p, acc.1 || o)
            }
            guard !overflow, begin >= 0, begin <= end, end <= dataLength, end - begin == byteCount else {
                throw .malformed(path: path, reason: "tensor '\(name)' shape \(shape) does not match data_offsets [\(begin), \(end)] in \(dataLength) data bytes")
            }
            extents.append((begin, end, name))
            if skipped { continue }
            tensors[name] = Tensor(shape: shape, storage: floats(fromLittleEndian: bytes, range: (dataStart + begin)..<(dataStart + end)))
        }
        // As the format requires: tensors back to back, no overlap, no gap, no trailing bytes.
        var position = 0
        for extent in extents.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard extent.begin == position else {
                throw .malformed(path: path, reason: "tensor '\(extent.name)' starts at byte \(extent.begin), expected \(position) (overlapping or gapped data_offsets)")
            }
            position = extent.end
        }
        guard position == dataLength else {
            throw .malformed(path: path, reason: "\(dataLength - position) bytes after the last tensor")
        }
        if let stored = metadata[checksumKey] {
            let computed = hex(CRC32.checksum(bytes[dataStart...]))
            guard stored == computed else {
                throw .malformed(path: path, reason: "the tensor data's CRC-32 is \(computed), the header says \(stored) (corrupt file)")
            }
        }
        return (tensors, metadata)
    }

    /// Reads and decodes a safetensors file.
    public static func read(path: String) throws(CheckpointError) -> (tensors: [String: Tensor], metadata: [String: String]) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) }
        catch { throw .unreadable(path: path, reason: error.localizedDescription) }
        return try decode(data, path: path)
    }
}

/// Whether `name` is a PyTorch BatchNorm's `num_batches_tracked` counter (read and dropped).
private func isBatchCounter(_ name: String) -> Bool {
    name == "num_batches_tracked" || name.hasSuffix(".num_batches_tracked")
}

/// The byte width of safetensors' integer dtypes (a `num_batches_tracked` counter is `I64`).
private let integerByteWidths = ["I64": 8, "U64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2, "I8": 1, "U8": 1]

/// A JSON number that is an exact non-negative integer, else nil (rejects 1.5 and 1e30).
private func exactInteger(_ value: Any) -> Int? {
    guard let number = value as? NSNumber else { return nil }
    let double = number.doubleValue
    guard double >= 0, double < 9.0e15, double == double.rounded() else { return nil }
    return Int(double)
}
