public import MedSegData
public import Prometheus
import Synchronization

/// The Prometheus registry behind `/metrics`. Request counts and latencies come through
/// swift-metrics (Hummingbird's MetricsMiddleware and medsegd's own counters, when the process
/// bootstraps `PrometheusMetricsFactory` with this registry); catalog and cache figures are read
/// at scrape time.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// What each cache had counted at the last scrape: counters grow by the difference.
    private let reported = Mutex<[ObjectIdentifier: ResponseCache.Statistics]>([:])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        // Alerts need the series before the first reload: both results exist from the start, at 0.
        for ok in [true, false] { _ = reloads(ok: ok) }
    }

    /// Counts one reload (`medsegd_reloads_total{result="ok"|"failed"}`).
    public func reloaded(ok: Bool) {
        reloads(ok: ok).increment()
    }

    private func reloads(ok: Bool) -> Prometheus.Counter {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "medsegd", metricName: "reloads", unitName: "total",
                helpText: "Configuration reloads (SIGHUP) by result; failed: the previous catalog kept serving"),
            labels: [("result", ok ? "ok" : "failed")])
    }

    /// The exposition text, with catalog and cache figures brought up to date.
    public func render(catalog: Catalog?, cache: ResponseCache) -> [UInt8] {
        gauge("catalog_ready", "", "1 once the catalog is loaded").set(catalog == nil ? 0.0 : 1.0)
        if let catalog {
            gauge("catalog_datasets", "", "Registered datasets").set(Double(catalog.names.count))
            for name in catalog.names {
                gauge("catalog_items", "", "Items per dataset", labels: [("dataset", name)]).set(Double(catalog[name]?.dicts.count ?? 0))
            }
            gauge("catalog_problems", "", "Data problems found at the last load").set(Double(catalog.problems.count))
        }
        let now = cache.statistics
        let before = reported.withLock { previous in
            defer { previous[ObjectIdentifier(cache)] = now }
            return previous[ObjectIdentifier(cache)] ?? ResponseCache.Statistics()
        }
        counter("cache_hits", "Tensor responses served from the cache").increment(by: Int64(max(0, now.hits - before.hits)))
        counter("cache_misses", "Tensor responses not found in the cache").increment(by: Int64(max(0, now.misses - before.misses)))
        counter("cache_evictions", "Cache entries evicted").increment(by: Int64(max(0, now.evictions - before.evictions)))
        gauge("cache", "bytes", "Bytes held by the tensor cache").set(Double(now.bytes))
        gauge("cache_budget", "bytes", "server.cache_bytes").set(Double(cache.budget))
        gauge("cache_entries", "", "Responses held by the tensor cache").set(Double(now.entries))
        let memory = ProcessMemory.now()
        gauge("resident_memory", "bytes", "Resident set size of the process").set(Double(memory.residentBytes))
        gauge("heap", "bytes", "malloc's heap: bytes in use, and free bytes it keeps", labels: [("state", "in_use")]).set(
            Double(memory.heapInUseBytes))
        gauge("heap", "bytes", "malloc's heap: bytes in use, and free bytes it keeps", labels: [("state", "free")]).set(Double(memory.heapFreeBytes))
        return registry.emitToBuffer()
    }

    private func gauge(_ name: String, _ unit: String, _ help: String, labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "medsegd", metricName: name, unitName: unit, helpText: help), labels: labels)
    }

    private func counter(_ name: String, _ help: String) -> Prometheus.Counter {
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "medsegd", metricName: name, unitName: "total", helpText: help))
    }
}
