// The memory the machine can give a process, for checks made before large allocations.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Facts about the machine's memory.
public enum SystemMemory {
    /// The bytes of memory available to new allocations without swapping: Linux's
    /// `MemAvailable` from `/proc/meminfo`; elsewhere (or if unreadable) the physical memory
    /// (`sysconf(_SC_PHYS_PAGES) · page size`).
    public static var availableBytes: Int {
        #if os(Linux)
        if let file = fopen("/proc/meminfo", "r") {
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 256)
            while fgets(&line, Int32(line.count), file) != nil {
                let text = String(decoding: line.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if text.hasPrefix("MemAvailable:") {
                    let digits = text.dropFirst("MemAvailable:".count).filter { $0.isNumber }
                    if let kibibytes = Int(digits) { return kibibytes * 1024 }
                }
            }
        }
        #endif
        return physicalBytes
    }

    /// The physical memory in bytes (`sysconf(_SC_PHYS_PAGES) · sysconf(_SC_PAGESIZE)`).
    public static var physicalBytes: Int {
        Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
