/// A pointer shared by the workers of one parallel kernel. Contract: each worker reads and
/// writes only the rows it was given, so writes never overlap.
package struct SharedPointer<T>: @unchecked Sendable {
    package let base: UnsafeMutablePointer<T>

    package init(base: UnsafeMutablePointer<T>) {
        self.base = base
    }
}
