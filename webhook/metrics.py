"""Prometheus metrics, on a registry of our own so tests and embedded uses never collide.

Besides pullguard's own series: `pullguard_build_info` (version, Python), the process (`process_*`: CPU, memory,
open files, start time), platform (`python_info`) and garbage collector (`python_gc_*`) collectors, and no
`*_created` twin for counters and histograms (they double the series and no dashboard reads them).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from webhook.version import version

# A process-wide switch of prometheus_client: every registry, ours included, stops exposing `_created` series.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        if GC_COLLECTOR is not None:
            GCCollector(registry=self.registry)
        self.build_info = Gauge(
            "pullguard_build_info",
            "Always 1: the pullguard version and the Python it runs on, as labels.",
            ("version", "python"),
            registry=self.registry,
        )
        self.build_info.labels(version(), platform.python_version()).set(1)
        self._readiness = _Readiness()
        self.registry.register(self._readiness)
        labels = ("endpoint", "kind", "decision")
        self.requests = Counter(
            "pullguard_admission_requests", "Admission reviews answered.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "pullguard_admission_duration_seconds",
            "Time to answer an admission review.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.findings = Counter(
            "pullguard_findings",
            "Findings reported, by check, reason and mode.",
            ("check", "reason", "mode"),
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "pullguard_policy_reloads", "Policy loads by outcome (ok, error).", ("result",), registry=self.registry
        )
        self.policy_valid = Gauge(
            "pullguard_policy_valid",
            "1 when the last policy read was valid, 0 when the last good one is kept.",
            registry=self.registry,
        )
        self.tls_reloads = Counter(
            "pullguard_tls_reloads",
            "Serving certificate reloads by outcome (ok, error).",
            ("result",),
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "pullguard_certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires (Unix time).",
            registry=self.registry,
        )

        self.registry_lookups = Counter(
            "pullguard_registry_lookups", "Upstream registry lookups by outcome.", ("status",), registry=self.registry
        )
        self.registry_cache = Counter(
            "pullguard_registry_cache",
            "Registry lookups by cache result (hit, miss, coalesced).",
            ("result",),
            registry=self.registry,
        )
        self.registry_latency = Histogram(
            "pullguard_registry_request_duration_seconds",
            "Upstream registry request latency.",
            ("method",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.mirror_rewrites = Counter(
            "pullguard_mirror_rewrites",
            "Images a mirror rule applies to, by mirror and outcome (rewritten, or the reason the image was kept).",
            ("mirror", "outcome"),
            registry=self.registry,
        )
        # labels() looks children up under a lock on every call; reviews reuse a handful of label sets.
        self._review_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._finding_children: dict[tuple[str, str, str], Any] = {}
        self._cache_children: dict[str, Any] = {}
        self._mirror_children: dict[tuple[str, str], Any] = {}

    def track_readiness(self, probe: Callable[[], list[str]]) -> None:
        """Export `pullguard_ready` (1 ready, 0 not) from `probe`, which names what keeps the service from being
        ready (as /readyz does; an empty list: ready). Until a probe is given the series is absent, never a
        false 0."""
        self._readiness.probe = probe

    def observe_review(self, endpoint: str, kind: str, decision: str, seconds: float) -> None:
        key = (endpoint, kind, decision)
        children = self._review_children.get(key)
        if children is None:
            children = self._review_children[key] = (self.requests.labels(*key), self.latency.labels(*key))
        children[0].inc()
        children[1].observe(seconds)

    def count_cache(self, result: str, times: int = 1) -> None:
        child = self._cache_children.get(result)
        if child is None:
            child = self._cache_children[result] = self.registry_cache.labels(result)
        child.inc(times)

    def count_mirror(self, mirror: str, outcome: str) -> None:
        key = (mirror, outcome)  # mirrors are the policy's few; outcomes a fixed set
        child = self._mirror_children.get(key)
        if child is None:
            child = self._mirror_children[key] = self.mirror_rewrites.labels(*key)
        child.inc()

    def count_finding(self, check: str, reason: str, mode: str) -> None:
        key = (check, reason, mode)
        child = self._finding_children.get(key)
        if child is None:
            child = self._finding_children[key] = self.findings.labels(*key)
        child.inc()


class _Readiness(Collector):
    """`pullguard_ready`, read from the probe at scrape time (the same answer /readyz gives at that moment)."""

    def __init__(self) -> None:
        self.probe: Callable[[], list[str]] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # no fixed description: the series exists only once a probe is set

    def collect(self) -> Iterator[GaugeMetricFamily]:
        probe = self.probe
        if probe is None:
            return
        try:
            ready = not probe()
        except Exception:
            ready = False
        family = GaugeMetricFamily("pullguard_ready", "1 when /readyz answers ready, 0 when it does not.")
        family.add_metric([], 1.0 if ready else 0.0)
        yield family
