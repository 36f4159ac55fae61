"""Prometheus metrics, on a registry of our own so tests and embedded uses never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
