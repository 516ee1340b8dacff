// What the layer kernels (`…+Kernels.swift` in this module) share: output buffers written without
// a zero-fill pass, the `[outer, C, inner]` view check, the pointer box their parallel workers
// write through, and a Float→Double widening that compiles to packed conversions.
//
// Legend: a tensor viewed as `[outer, C, inner]` row-major has channel `c` at
// `x[(o·C + c)·inner + i]`; an NCHW batch is `outer = N`, `inner = H·W`; an `[N, C]` matrix is
// `outer = N`, `inner = 1`. Every kernel checks its sizes with a precondition before borrowing
// pointers, so the layers that call them stay in safe Swift.

/// A new array of `count` elements written entirely by `body` (no zero-fill pass first).
@inline(__always)
func makeArray(count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { body(buffer.baseAddress!) }
        initialized = count
    }
}

/// Gives `buffer` exactly `count` elements whose values the caller then overwrites; an array of
/// the right size is reused (copy-on-write still protects any other owner of its storage).
@inline(__always)
func prepare(_ buffer: inout [Float], count: Int) {
    if buffer.count != count { buffer = makeArray(count: count) { _ in } }
}

/// Checks that `count` elements form the view `[outer, C, inner]`.
@inline(__always)
func checkView(_ label: StaticString, _ count: Int, outer: Int, channels: Int, inner: Int) {
    precondition(outer >= 0 && channels >= 0 && inner >= 0,
                 "\(label): negative view [\(outer), \(channels), \(inner)]")
    precondition(count == outer * channels * inner,
                 "\(label): \(count) elements do not match the view [outer \(outer), C \(channels), inner \(inner)]")
}

/// `SIMD8<Double>(v)` written lane by lane, so that it inlines to packed conversions (the
/// generic initializer stays a call per vector in release builds).
@inline(__always)
func widened(_ v: SIMD8<Float>) -> SIMD8<Double> {
    SIMD8<Double>(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]),
                  Double(v[4]), Double(v[5]), Double(v[6]), Double(v[7]))
}

/// Calls `body(c, offset)` for every channel slice of an `[outer, C, inner]` view in storage order
/// (`o` outermost, then `c`), `offset = (o·C + c)·inner` being the index of the slice's first element.
@inline(__always)
func forEachChannelSlice(outer: Int, channels: Int, inner: Int, _ body: (_ channel: Int, _ offset: Int) -> Void) {
    for o in 0..<outer {
        for c in 0..<channels { body(c, (o * channels + c) * inner) }
    }
}
