// A minimal reader for the one pickle shape InsightFace's verification sets use. It interprets a
// short list of opcodes as data and refuses every other opcode with a typed error: nothing in the
// file is ever executed, imported or called.
//
// Opcode reference: CPython's Lib/pickletools.py (protocols 2–5, PEP 307, PEP 3154, PEP 574).

/// A value the reader can build.
enum PickleValue {
    case bytes([UInt8])
    case bool(Bool)
    case text(String)
    case list([PickleValue])
    case tuple([PickleValue])
    /// The global `_codecs.encode`: Python 3 at protocol 2 writes `bytes` as
    /// `_codecs.encode(str, "latin1")`. The reader recognizes that one call as data.
    case latin1Encoder
    case mark

    var kind: String {
        switch self {
        case .bytes: return "bytes"
        case .bool: return "bool"
        case .text: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .latin1Encoder: return "_codecs.encode"
        case .mark: return "MARK"
        }
    }
}

/// Runs the opcodes of `bytes` and returns the value `STOP` pops.
///
/// Accepted: `PROTO` (2–5), `FRAME`, `STOP`, `MARK`, `EMPTY_LIST`, `APPEND`, `APPENDS`, `TUPLE`,
/// `TUPLE1`–`TUPLE3`, `EMPTY_TUPLE`, `NEWTRUE`, `NEWFALSE`, `SHORT_BINBYTES`, `BINBYTES`,
/// `BINBYTES8`, `SHORT_BINSTRING`, `BINSTRING` (Python 2 `str`, read as bytes), `BINUNICODE`,
/// `SHORT_BINUNICODE`, `BINUNICODE8`, the memo opcodes `BINPUT`, `LONG_BINPUT`, `MEMOIZE`,
/// `BINGET`, `LONG_BINGET` (of scalars only), and `GLOBAL '_codecs encode'` followed by `REDUCE`
/// on `(str, "latin1")`, which yields the bytes of the string's code points.
///
/// - Throws: `VerificationSetError.truncated`, `.unsupportedOpcode`, `.unsupportedProtocol` or
///   `.unexpectedStructure`, each with the byte offset of the opcode.
func readPickle(_ bytes: [UInt8], path: String) throws(VerificationSetError) -> PickleValue {
    var stack: [PickleValue] = []
    var memo: [Int: PickleValue] = [:]
    var position = 0

    func take(_ count: Int, at opcodeOffset: Int) throws(VerificationSetError) -> Range<Int> {
        guard count >= 0, count <= bytes.count - position else {
            throw .truncated(path: path, offset: opcodeOffset, needed: count, available: bytes.count - position)
        }
        defer { position += count }
        return position..<(position + count)
    }
    func littleEndian(_ count: Int, at offset: Int) throws(VerificationSetError) -> Int {
        let range = try take(count, at: offset)
        var value: UInt64 = 0
        for (shift, index) in range.enumerated() { value |= UInt64(bytes[index]) << (8 * UInt64(shift)) }
        guard value <= UInt64(Int.max) else {
            throw .unexpectedStructure(path: path, offset: offset, reason: "length \(value) too large")
        }
        return Int(value)
    }
    func pop(at offset: Int, _ what: String) throws(VerificationSetError) -> PickleValue {
        guard let value = stack.popLast(), !isMark(value) else {
            throw .unexpectedStructure(path: path, offset: offset, reason: "\(what) needs a value on the stack")
        }
        return value
    }
    func popToMark(at offset: Int) throws(VerificationSetError) -> [PickleValue] {
        guard let mark = stack.lastIndex(where: isMark) else {
            throw .unexpectedStructure(path: path, offset: offset, reason: "no MARK on the stack")
        }
        let items = Array(stack[(mark + 1)...])
        stack.removeSubrange(mark...)
        return items
    }
    func utf8Text(_ range: Range<Int>, at offset: Int) throws(VerificationSetError) -> String {
        guard let text = String(validating: bytes[range], as: UTF8.self) else {
            throw .unexpectedStructure(path: path, offset: offset, reason: "invalid UTF-8 in a str")
        }
        return text
    }

    while true {
        let offset = position
        guard position < bytes.count else {
            throw .truncated(path: path, offset: offset, needed: 1, available: 0)
        }
        let opcode = bytes[position]
        position += 1
        switch opcode {
        case 0x80:  // PROTO
            let version = Int(bytes[try take(1, at: offset)].first ?? 0)
            guard (2...5).contains(version) else { throw .unsupportedProtocol(path: path, offset: offset, version: version) }
        case 0x95:  // FRAME: an 8-byte length; frames only group opcodes
            _ = try littleEndian(8, at: offset)
        case 0x2E:  // STOP
            let result = try pop(at: offset, "STOP")
            guard stack.isEmpty else {
                throw .unexpectedStructure(path: path, offset: offset, reason: "\(stack.count) values left on the stack at STOP")
            }
            return result
        case 0x28: stack.append(.mark)  // MARK
        case 0x5D: stack.append(.list([]))  // EMPTY_LIST
        case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
        case 0x61, 0x65:  // APPEND, APPENDS
            let items = opcode == 0x61 ? [try pop(at: offset, "APPEND")] : try popToMark(at: offset)
            guard case .list(var list)? = stack.popLast() else {
                throw .unexpectedStructure(path: path, offset: offset, reason: "APPEND(S) without a list below")
            }
            list.append(contentsOf: items)
            stack.append(.list(list))
        case 0x74: stack.append(.tuple(try popToMark(at: offset)))  // TUPLE
        case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
            var items: [PickleValue] = []
            for _ in 0...(Int(opcode) - 0x85) { items.insert(try pop(at: offset, "TUPLEn"), at: 0) }
            stack.append(.tuple(items))
        case 0x88: stack.append(.bool(true))  // NEWTRUE
        case 0x89: stack.append(.bool(false))  // NEWFALSE
        case 0x43, 0x55:  // SHORT_BINBYTES, SHORT_BINSTRING (Python 2 str = bytes)
            let length = try littleEndian(1, at: offset)
            stack.append(.bytes(Array(bytes[try take(length, at: offset)])))
        case 0x42, 0x54:  // BINBYTES, BINSTRING (4-byte length; BINSTRING's is signed)
            let length = try littleEndian(4, at: offset)
            guard length < 1 << 31 else { throw .unexpectedStructure(path: path, offset: offset, reason: "negative length") }
            stack.append(.bytes(Array(bytes[try take(length, at: offset)])))
        case 0x8E:  // BINBYTES8
            let length = try littleEndian(8, at: offset)
            stack.append(.bytes(Array(bytes[try take(length, at: offset)])))
        case 0x58, 0x8C, 0x8D:  // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
            let length = try littleEndian(opcode == 0x58 ? 4 : opcode == 0x8C ? 1 : 8, at: offset)
            stack.append(.text(try utf8Text(try take(length, at: offset), at: offset)))
        case 0x71, 0x72, 0x94:  // BINPUT, LONG_BINPUT, MEMOIZE
            let key = opcode == 0x94 ? memo.count : try littleEndian(opcode == 0x71 ? 1 : 4, at: offset)
            guard let top = stack.last, !isMark(top) else {
                throw .unexpectedStructure(path: path, offset: offset, reason: "memo store with an empty stack")
            }
            // Containers are values here; a later GET of one could not see its appends, so
            // only scalars are kept (the shape read here never GETs a container).
            switch top {
            case .list, .tuple: memo[key] = .mark
            default: memo[key] = top
            }
        case 0x68, 0x6A:  // BINGET, LONG_BINGET
            let key = try littleEndian(opcode == 0x68 ? 1 : 4, at: offset)
            guard let value = memo[key], !isMark(value) else {
                throw .unexpectedStructure(path: path, offset: offset,
                                           reason: "memo get \(key) of a missing or shared container value")
            }
            stack.append(value)
        case 0x63:  // GLOBAL "module\nname\n": only _codecs.encode is recognized
            var lines: [String] = []
            while lines.count < 2 {
                guard let end = bytes[position...].firstIndex(of: 0x0A) else {
                    throw .truncated(path: path, offset: offset, needed: 1, available: 0)
                }
                lines.append(String(decoding: bytes[position..<end], as: UTF8.self))
                position = end + 1
            }
            guard lines == ["_codecs", "encode"] else {
                throw .unexpectedStructure(path: path, offset: offset,
                                           reason: "refusing global \(lines.joined(separator: ".")); only _codecs.encode (bytes at protocol 2) is read")
            }
            stack.append(.latin1Encoder)
        case 0x52:  // REDUCE: only _codecs.encode(str, "latin1")
            let arguments = try pop(at: offset, "REDUCE")
            let callable = try pop(at: offset, "REDUCE")
            guard case .latin1Encoder = callable, case .tuple(let items) = arguments, items.count == 2,
                  case .text(let text) = items[0], case .text(let encoding) = items[1], encoding == "latin1" else {
                throw .unexpectedStructure(path: path, offset: offset,
                                           reason: "REDUCE of \(callable.kind) is not _codecs.encode(str, \"latin1\")")
            }
            var result: [UInt8] = []
            result.reserveCapacity(text.unicodeScalars.count)
            for scalar in text.unicodeScalars {
                guard scalar.value < 256 else {
                    throw .unexpectedStructure(path: path, offset: offset, reason: "latin1 text holds U+\(String(scalar.value, radix: 16))")
                }
                result.append(UInt8(scalar.value))
            }
            stack.append(.bytes(result))
        default:
            throw .unsupportedOpcode(path: path, offset: offset, opcode: opcode)
        }
    }
}

private func isMark(_ value: PickleValue) -> Bool {
    if case .mark = value { return true }
    return false
}
