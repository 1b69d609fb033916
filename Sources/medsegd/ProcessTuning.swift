#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings a file-serving daemon wants, applied once at `serve` start.
enum ProcessTuning {
    static func apply() {
        #if canImport(Glibc)
        // Tensor buffers are hundreds of kilobytes: glibc would mmap and unmap each one, and the
        // page faults cost more than the copy. Keep them in the heap, reused across requests, and
        // give memory back only past 128 MiB free (measured: 64 MiB doubles the cost of a cold
        // item, 256 MiB lets the RSS creep up 20% in the soak run).
        _ = mallopt(mmapThreshold, 64 << 20)
        _ = mallopt(trimThreshold, 128 << 20)
        // One arena per thread (glibc's default, up to 8 per core) fragments a long-running
        // server's heap; a few arenas keep its RSS flat.
        _ = mallopt(arenaMax, Int32(max(2, 2 * sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        // A 2D scan volume holds one open file per slice while it streams.
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        #endif
    }

    #if canImport(Glibc)
    // <malloc.h> is not part of Swift's Glibc module; these are its values for glibc.
    private static let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD
    private static let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
    private static let arenaMax: Int32 = -8  // M_ARENA_MAX
    #endif
}

#if canImport(Glibc)
@_silgen_name("mallopt")
private func mallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif
