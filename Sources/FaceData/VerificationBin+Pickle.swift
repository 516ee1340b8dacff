// Writing a verification set in the `.bin` format insightface's `eval/verification.py` loads:
// a pickle of `(bins, issame_list)`.

extension VerificationBin {
    /// The set as the bytes of a `.bin` file: a pickle (protocol 3) of the 2-tuple
    /// `(bins, issame_list)`, `bins` a list of `bytes` (the encoded images, as stored) and
    /// `issame_list` a list of `bool`, as insightface's `load_bin` unpickles it
    /// (`pickle.load(f)` or `pickle.load(f, encoding='bytes')`) and `read(path:)` reads it back.
    ///
    /// Protocol 3 rather than 2: its `bytes` opcodes (`SHORT_BINBYTES`, `BINBYTES`) unpickle as
    /// `bytes` under any `encoding`; a Python 2 `str` (protocol 2's `BINSTRING`) comes back as a
    /// `str` under the default ASCII decoding whenever every image happens to be ASCII.
    /// Opcodes: `PROTO 3`, `EMPTY_LIST`, `MARK`, one bytes opcode per image, `APPENDS`, the same
    /// for the flags with `NEWTRUE`/`NEWFALSE`, `TUPLE2`, `STOP`; no memo.
    ///
    /// - Precondition: every image is shorter than 4 GiB.
    public func pickled() -> [UInt8] {
        var out: [UInt8] = [0x80, 3, 0x5D, 0x28]  // PROTO 3, EMPTY_LIST, MARK
        out.reserveCapacity(encodedImages.reduce(64 + 2 * isSame.count) { $0 + $1.count + 5 })
        for image in encodedImages {
            precondition(image.count < 1 << 32, "VerificationBin.pickled: an image of \(image.count) bytes")
            if image.count < 256 {
                out += [0x43, UInt8(image.count)]  // SHORT_BINBYTES
            } else {
                out.append(0x42)  // BINBYTES, 4-byte little-endian length
                out += (0..<4).map { UInt8(truncatingIfNeeded: image.count >> (8 * $0)) }
            }
            out += image
        }
        out += [0x65, 0x5D, 0x28]  // APPENDS, EMPTY_LIST, MARK
        out += isSame.map { $0 ? 0x88 : 0x89 }  // NEWTRUE, NEWFALSE
        out += [0x65, 0x86, 0x2E]  // APPENDS, TUPLE2, STOP
        return out
    }
}
