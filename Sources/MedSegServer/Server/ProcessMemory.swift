import CMalloc
import Glibc

/// The process's memory as the kernel and glibc's allocator see it: what `/metrics` reports, and
/// what tells a leak (memory in use grows) from fragmentation (free heap memory grows).
struct ProcessMemory: Sendable {
    /// Resident set size (`/proc/self/statm`), bytes.
    var residentBytes: Int
    /// Bytes handed out by malloc and not yet freed (heap and mmapped blocks).
    var heapInUseBytes: Int
    /// Free bytes malloc keeps in its heaps: fragmentation, or room kept for reuse.
    var heapFreeBytes: Int

    static func now() -> ProcessMemory {
        let info = mallinfo2()
        return ProcessMemory(
            residentBytes: residentPages() * Int(sysconf(Int32(_SC_PAGESIZE))),
            heapInUseBytes: Int(info.uordblks) + Int(info.hblkhd),
            heapFreeBytes: Int(info.fordblks))
    }

    private static func residentPages() -> Int {
        guard let file = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(file) }
        var size = 0
        var resident = 0
        guard
            withUnsafeMutablePointer(
                to: &size,
                { size in
                    withUnsafeMutablePointer(to: &resident) { resident in withVaList([size, resident]) { vfscanf(file, "%ld %ld", $0) } }
                }) == 2
        else { return 0 }
        return resident
    }
}
