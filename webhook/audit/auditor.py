"""Background audit: re-check what already runs, and publish the findings as PolicyReports.

Admission only sees what is created from now on; a tag deleted or overwritten upstream, a pull secret deleted or
rotated, a new node pool of another architecture or a registry's rate limit break pods that were admitted long
ago, on their next pull. Every `interval` seconds the `Auditor` lists every workload (Deployments, StatefulSets,
DaemonSets, CronJobs, and the ReplicaSets, Jobs and Pods no controller owns; not a Pod or Job that has finished),
runs the webhook's own facts and checks on each (`FactGatherer` with the registry client and cluster view the
webhook uses, so the registry cache and per-registry concurrency cap are shared), and writes one PolicyReport per
namespace (webhook/formats/policyreport.py). A finding that goes away leaves the report at the next round.

Bounded: registry lookups (cache misses only) start at most `rate` per second (a token bucket, burst of one
second's worth), one workload at a time. Only the replica holding the Lease (webhook/audit/lease.py) audits.

Wiring (the lead's): in `serve`, inside the event loop, `Auditor(api_client, gatherer, holder, interval, rate,
registry=metrics.registry).start()`; `await auditor.stop()` on shutdown. `run_once()` audits one round now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kubernetes import client
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as MetricCounter

from policies.config import Policy
from policies.lookup import Lookup
from policies.plan import Side, Skip
from policies.registry_facts import ImageFacts
from webhook.audit.lease import Lease
from webhook.formats.policyreport import (
    GROUP,
    MANAGED_BY,
    PLURAL,
    REPORT_NAME,
    VERSION,
    AuditedWorkload,
    report,
    same_results,
)
from webhook.registry.client import RegistryClient
from webhook.review.facts import FactGatherer
from webhook.review.review import review
from webhook.review.workloads import MalformedObjectError, extract

log = logging.getLogger("pullguard.audit")
PAGE = 500


def _finished(kind: str, item: dict[str, Any]) -> bool:
    """A pod or Job that ran to its end pulls nothing again: nothing to predict for it."""
    status = item.get("status") or {}
    if kind == "Pod":
        return status.get("phase") in ("Succeeded", "Failed")
    if kind == "Job":
        conditions = status.get("conditions") or []
        return any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in conditions
            if isinstance(c, dict)
        )
    return False


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved up (default: one second's worth, at least 1)."""

    def __init__(self, rate: float, capacity: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.capacity = rate, capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._tokens, self._at = self.capacity, clock()
        self._lock = asyncio.Lock()

    async def take(self, count: int = 1) -> None:
        async with self._lock:  # first come, first served
            for _ in range(count):
                while True:
                    now = self._clock()
                    self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
                    self._at = now
                    if self._tokens >= 1:
                        self._tokens -= 1
                        break
                    await asyncio.sleep((1 - self._tokens) / self.rate)


class _ThrottledGatherer(FactGatherer):
    """The webhook's gatherer, except that each registry lookup (a cache miss) first takes a token."""

    def __init__(self, gatherer: FactGatherer, bucket: TokenBucket) -> None:
        super().__init__(gatherer.registry, gatherer.cluster, gatherer.node)
        self._bucket = bucket

    async def _fetch(
        self, registry: RegistryClient, missing: Sequence[Lookup], policy: Policy
    ) -> dict[Lookup, ImageFacts]:
        await self._bucket.take(len(missing))  # before the review's budget starts, so waiting is no timeout
        return await super()._fetch(registry, missing, policy)


class PolicySource(Protocol):
    @property
    def policy(self) -> Policy: ...


class Auditor:
    """`policy_holder` is anything with a `.policy` (webhook.sources.policy.PolicyHolder): read at each round."""

    def __init__(
        self,
        api_client: client.ApiClient,
        gatherer: FactGatherer,
        policy_holder: PolicySource,
        interval: float,
        rate: float,
        *,
        registry: CollectorRegistry | None = None,
        lease_namespace: str | None = None,
        lease_name: str = "pullguard-audit",
        identity: str | None = None,
        lease_seconds: int = 60,
    ) -> None:
        self._api = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._bucket = TokenBucket(rate)
        self._gatherer = _ThrottledGatherer(gatherer, self._bucket)
        self.follow_policy = False  # serve sets it: the policy's `audit` section then rules (see _follow_policy)
        self._holder = policy_holder
        self.interval = interval
        identity = identity or f"{socket.gethostname()}-{os.getpid()}"
        self._lease = (
            Lease(api_client, lease_namespace, lease_name, identity, lease_seconds) if lease_namespace else None
        )
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self._findings = Gauge(
            "pullguard_audit_findings",
            "Findings of the last audit round, by namespace and check",
            ["namespace", "check"],
            registry=registry,
        )
        self._errors = MetricCounter(
            "pullguard_audit_errors",
            "Audit failures by reason: round, lease, write, foreign (a report of pullguard's name it does not own)",
            ["reason"],
            registry=registry,
        )
        self._last_run = Gauge(
            "pullguard_audit_last_run_timestamp_seconds",
            "When the last audit round finished (Unix time)",
            registry=registry,
        )

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Begin auditing in the running event loop (the webhook's, so the registry client is shared)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="pullguard-audit")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        """The Lease is kept on its own clock (every third of its duration); a round starts only when `interval`
        has passed since the last one began."""
        last_round: float | None = None
        while True:
            try:
                if self._follow_policy():
                    holding = self._lease is None or await asyncio.to_thread(self._lease.acquire)
                    due = last_round is None or time.monotonic() - last_round >= self.interval
                    if holding and due:
                        last_round = time.monotonic()
                        await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._errors.labels("round").inc()
                log.exception("audit round failed")
            await asyncio.sleep(self._next_wait(last_round))

    async def run(self) -> None:
        """The audit loop in the caller's task (serve's background jobs, which cancel it at shutdown)."""
        await self._loop()

    def _follow_policy(self) -> bool:
        """With `follow_policy`, the policy's `audit` section turns rounds on and off and sets their pace live."""
        if not self.follow_policy:
            return True
        audit = self._holder.policy.audit
        self.interval, self._bucket.rate = audit.interval_seconds, audit.lookups_per_second
        self._bucket.capacity = max(1.0, audit.lookups_per_second)
        return audit.enabled

    def _next_wait(self, last_round: float | None) -> float:
        until_due = self.interval if last_round is None else last_round + self.interval - time.monotonic()
        if self._lease is None:
            return max(1.0, until_due)
        return max(1.0, min(until_due, self._lease.duration_seconds / 3))  # keep the Lease, or stay ready to take it

    # ----------------------------------------------------------------- one round

    async def run_once(self) -> dict[str, int]:
        """Audit every workload now and write the reports. Returns the number of findings by namespace."""
        renewing = asyncio.create_task(self._keep_lease()) if self._lease is not None else None
        try:
            return await self._round()
        finally:
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing

    async def _keep_lease(self) -> None:
        """Renew the Lease every third of its duration while a round runs (not per workload)."""
        assert self._lease is not None
        while True:
            await asyncio.sleep(max(1.0, self._lease.duration_seconds / 3))
            try:
                await asyncio.to_thread(self._lease.acquire)
            except Exception as exc:  # the round goes on; the next renewal tries again
                self._errors.labels("lease").inc()
                log.warning("audit: lease not renewed", extra={"fields": {"error": str(exc)[:300]}})

    async def _round(self) -> dict[str, int]:
        started = time.monotonic()
        policy = self._holder.policy
        audited: dict[str, list[AuditedWorkload]] = defaultdict(list)
        for kind, obj in await asyncio.to_thread(self._workloads):
            metadata = obj.get("metadata") or {}
            namespace = str(metadata.get("namespace") or "default")
            try:
                workload = extract(kind, obj)
            except MalformedObjectError as exc:
                log.warning("audit: unreadable workload", extra={"fields": {"kind": kind, "error": str(exc)}})
                continue
            reviewed = await review(workload, policy, Side.VALIDATE, self._gatherer, coverage=True)
            if reviewed.skipped is Skip.EXCLUDED:
                continue  # an excluded namespace gets no report at all
            uid = str(metadata.get("uid") or "")
            audited[namespace].append(
                AuditedWorkload(
                    kind,
                    namespace,
                    workload.name,
                    uid,
                    len(workload.images),
                    reviewed.decision.findings,
                    reviewed.unchecked,
                )
            )
        counts = await asyncio.to_thread(self._publish, audited)
        self.rounds += 1
        self._last_run.set(time.time())
        workloads = [w for namespace in audited.values() for w in namespace]
        fields = {
            "round": self.rounds,
            "workloads": len(workloads),
            "findings": sum(len(w.findings) for w in workloads),
            "notChecked": sum(len(w.unchecked) for w in workloads),
            "namespaces": len(audited),
            "durationMs": round((time.monotonic() - started) * 1000, 1),
        }
        log.info("audit round", extra={"fields": fields})
        return counts

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        response: Any = method(*args, _preload_content=False, _request_timeout=30, **kwargs)
        try:
            data: dict[str, Any] = json.loads(response.data)
        finally:
            response.release_conn()
        return data

    def _list(self, method: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self._call(method, limit=PAGE, **({"_continue": token} if token else {}), **kwargs)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def _workloads(self) -> list[tuple[str, dict[str, Any]]]:
        """Every object that makes pods and that no controller makes (those are audited through their owner)."""
        apps, batch, core = client.AppsV1Api(self._api), client.BatchV1Api(self._api), client.CoreV1Api(self._api)
        listed = [
            ("Deployment", apps.list_deployment_for_all_namespaces),
            ("StatefulSet", apps.list_stateful_set_for_all_namespaces),
            ("DaemonSet", apps.list_daemon_set_for_all_namespaces),
            ("ReplicaSet", apps.list_replica_set_for_all_namespaces),
            ("CronJob", batch.list_cron_job_for_all_namespaces),
            ("Job", batch.list_job_for_all_namespaces),
            ("Pod", core.list_pod_for_all_namespaces),
        ]
        found = []
        for kind, method in listed:
            for item in self._list(method):
                references = (item.get("metadata") or {}).get("ownerReferences") or []
                if any(r.get("controller") for r in references if isinstance(r, dict)) or _finished(kind, item):
                    continue
                found.append((kind, item))
        return found

    def _publish(self, audited: dict[str, list[AuditedWorkload]]) -> dict[str, int]:
        seconds = int(time.time())
        selector = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
        existing = {
            str(item["metadata"]["namespace"]): item
            for item in self._list(
                self._custom.list_cluster_custom_object,
                group=GROUP,
                version=VERSION,
                plural=PLURAL,
                label_selector=selector,
            )
            if item.get("metadata", {}).get("name") == REPORT_NAME
        }
        counts: dict[str, int] = {}
        self._findings.clear()
        for namespace in sorted(set(audited) | set(existing)):
            document = report(namespace, audited.get(namespace, []), seconds)
            found = [r for r in document["results"] if r["result"] != "skip"]  # a check that did not run found nothing
            counts[namespace] = len(found)
            by_check = Counter(r["policy"] for r in found)
            for check, number in by_check.items():
                self._findings.labels(namespace=namespace, check=check).set(number)
            self._write(namespace, document, existing.get(namespace))
        return counts

    def _write(self, namespace: str, document: dict[str, Any], current: dict[str, Any] | None) -> None:
        try:
            if current is None:
                self._custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, document)
            elif not same_results(current, document):
                document["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self._custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, REPORT_NAME, document)
        except client.ApiException as exc:  # a namespace being deleted, a lost race: the next round rewrites it
            if current is None and exc.status == 409 and self._foreign(namespace):
                self._errors.labels("foreign").inc()
                log.error(
                    "audit: a PolicyReport of that name is not pullguard's: not overwritten",
                    extra={"fields": {"namespace": namespace, "name": REPORT_NAME, "missingLabel": MANAGED_BY}},
                )
                return
            self._errors.labels("write").inc()
            log.warning(
                "audit: report not written",
                extra={"fields": {"namespace": namespace, "status": exc.status, "reason": exc.reason}},
            )

    def _foreign(self, namespace: str) -> bool:
        """The report name is taken by an object without pullguard's managed-by label (another tool's)."""
        try:
            found = self._call(
                self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, REPORT_NAME
            )
        except client.ApiException:
            return False
        labels = (found.get("metadata") or {}).get("labels") or {}
        return any(labels.get(key) != value for key, value in MANAGED_BY.items())
