import CMalloc
import Glibc

/// Process-wide settings a file-serving daemon wants, applied once at `serve` start.
enum ProcessTuning {
    static func apply() {
        // Tensor buffers are hundreds of kilobytes: glibc would mmap and unmap each one, and the
        // page faults cost more than the copy. Keep them in the heap, reused across requests, and
        // give memory back only past 128 MiB free at the top of a heap (measured: 64 MiB doubles
        // the cost of a cold item). Free pages inside the heaps are returned by `HeapTrimmer`.
        _ = mallopt(M_MMAP_THRESHOLD, 64 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 128 << 20)
        // One arena per thread (glibc's default, up to 8 per core) fragments a long-running
        // server's heap; a few arenas keep its RSS flat.
        _ = mallopt(M_ARENA_MAX, Int32(max(2, 2 * sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        // A 2D scan volume reads one file per slice (each opened only while it is read); keep
        // room for many concurrent requests.
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
    }
}
