"""Run the real ``pullguard serve`` as the admission webhook of a test cluster.

    with pullguard_webhook(cluster, policy="mode: enforce\\n", failure_policy="Fail") as hook:
        cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
        hook.logs()          # the server's JSON log lines
        hook.stop_server()   # the apiserver now meets a closed port: failurePolicy decides

The server listens on 127.0.0.1 with a certificate it generates itself (SAN 127.0.0.1); a
``ValidatingWebhookConfiguration`` and a ``MutatingWebhookConfiguration`` point at
``https://127.0.0.1:PORT/validate`` and ``/mutate`` with that CA as ``caBundle``. Registration is not
instantaneous (the apiserver picks up webhook configurations asynchronously), so ``register()`` waits until a
server-side dry run of a probe Pod really reaches pullguard, bounded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cluster import Cluster, ClusterError
from tests.server import PullguardServer, start_pullguard

FailurePolicy = Literal["Ignore", "Fail"]

# Every kind that makes pods, in the API groups that serve it; the subresource for ephemeral containers.
WEBHOOK_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"],
        "scope": "Namespaced",
    },
    {
        "apiGroups": ["batch"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["jobs", "cronjobs"],
        "scope": "Namespaced",
    },
]

PROBE_IMAGE = "localhost/probe-image"  # no tag, so latestTag speaks; node-local, so no lookup leaves loopback
PROBE_LABEL = "pullguard.e2e/probe"
REGISTER_TIMEOUT = 30.0
SERVER_START_TIMEOUT = 30.0
KUBECTL_TIMEOUT = 30.0


def namespace_selector(exclude: Sequence[str] = (), exclude_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``namespaceSelector`` that skips the namespaces named in ``exclude`` and those carrying any of
    ``exclude_labels`` (label key -> value)."""
    expressions: list[dict[str, Any]] = []
    if exclude:
        expressions.append({"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": sorted(exclude)})
    for key, value in sorted((exclude_labels or {}).items()):
        expressions.append({"key": key, "operator": "NotIn", "values": [value]})
    return {"matchExpressions": expressions} if expressions else {}


def webhook_configurations(
    name: str,
    base_url: str,
    ca_pem: bytes,
    *,
    failure_policy: FailurePolicy = "Ignore",
    timeout_seconds: int = 10,
    selector: Mapping[str, Any] | None = None,
    rules: Sequence[Mapping[str, Any]] = WEBHOOK_RULES,
    review_versions: Sequence[str] = ("v1",),
) -> list[dict[str, Any]]:
    """The Validating- and MutatingWebhookConfiguration (admissionregistration.k8s.io/v1) for a URL webhook."""
    ca_bundle = base64.b64encode(ca_pem).decode("ascii")

    def webhook(endpoint: str) -> dict[str, Any]:
        return {
            "name": f"{endpoint}.pullguard.io",
            "clientConfig": {"url": f"{base_url}/{endpoint}", "caBundle": ca_bundle},
            "rules": [dict(rule) for rule in rules],
            "namespaceSelector": dict(selector or {}),
            "sideEffects": "None",
            "admissionReviewVersions": list(review_versions),
            "timeoutSeconds": timeout_seconds,
            "failurePolicy": failure_policy,
            "matchPolicy": "Equivalent",
        }

    mutating = webhook("mutate") | {"reinvocationPolicy": "IfNeeded"}
    meta = {"name": name, "labels": {"app.kubernetes.io/name": "pullguard", "app.kubernetes.io/part-of": "e2e"}}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": meta,
            "webhooks": [webhook("validate")],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": meta,
            "webhooks": [mutating],
        },
    ]


# --------------------------------------------------------------------------- registration


def _probe_pod(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {PROBE_LABEL: "true"}},
        "spec": {"containers": [{"name": "probe", "image": PROBE_IMAGE}]},
    }


def _reviews_for(logs: str, namespace: str) -> set[str]:
    """The endpoints (validate/mutate) whose review log lines name ``namespace``."""
    seen: set[str] = set()
    for line in logs.splitlines():
        if namespace not in line:
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("msg") == "review" and entry.get("namespace") == namespace:
                seen.add(str(entry.get("endpoint")))
    return seen


@dataclass
class PullguardWebhook:
    """A running pullguard registered as the webhook of ``cluster``; see :func:`pullguard_webhook`."""

    cluster: Cluster
    server: PullguardServer
    name: str
    probe_namespace: str
    failure_policy: FailurePolicy
    timeout_seconds: int
    selector: dict[str, Any]
    validating: bool = True
    mutating: bool = True
    registered: bool = field(default=False, init=False)
    last_probe: str = field(default="", init=False)

    # ----------------------------------------------------------------- what tests use

    @property
    def server_url(self) -> str:
        return self.server.url

    @property
    def ca_file(self) -> Path:
        return self.server.ca_file

    @property
    def policy_path(self) -> Path | None:
        return self.server.policy_path

    def logs(self) -> str:
        return self.server.logs()

    def calls(self, endpoint: str, decision: str | None = None) -> float:
        """Reviews answered on ``endpoint`` so far (``pullguard_admission_requests_total``), with ``decision`` if
        given: the evidence for the mutating side without a mirror rule, which is counted, not logged."""
        text = self.server.client().get("/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "pullguard_admission_requests_total"
            and sample.labels.get("endpoint") == endpoint
            and decision in (None, sample.labels.get("decision"))
        )

    def reviews(self) -> list[dict[str, Any]]:
        """The server's ``review`` log entries, parsed."""
        entries: list[dict[str, Any]] = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("msg") == "review":
                    entries.append(entry)
        return entries

    def stop_server(self) -> None:
        """Stop pullguard but leave the configurations registered: the apiserver meets a closed port."""
        self.server.stop()

    def configurations(self) -> list[dict[str, Any]]:
        docs = webhook_configurations(
            self.name,
            self.server.url,
            self.server.ca_file.read_bytes(),
            failure_policy=self.failure_policy,
            timeout_seconds=self.timeout_seconds,
            selector=self.selector,
        )
        wanted = {"ValidatingWebhookConfiguration": self.validating, "MutatingWebhookConfiguration": self.mutating}
        return [d for d in docs if wanted[d["kind"]]]

    def register(self, timeout: float = REGISTER_TIMEOUT) -> None:
        """Apply the configurations, then wait until the apiserver really calls every registered endpoint."""
        self.cluster.apply(self.configurations())
        self.registered = True
        self.wait_until_called(timeout)

    def wait_until_called(self, timeout: float = REGISTER_TIMEOUT) -> None:
        """Dry-run a probe Pod until pullguard's log shows a review of it on each registered endpoint.

        The log is the evidence because it does not depend on the policy (a ``mode: off`` policy says nothing
        to kubectl); with logging above ``info`` the evidence is a ``pullguard`` line in kubectl's output. A
        mutating side without a mirror rule logs nothing: its evidence is its request count growing.
        """
        wanted = {e for e, on in (("validate", self.validating), ("mutate", self.mutating)) if on}
        mutated_before = self.calls("mutate") if self.mutating else 0.0
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            pod = _probe_pod(self.probe_namespace, f"probe-{attempt}")
            proc = self.cluster.kubectl(
                "apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False, timeout=KUBECTL_TIMEOUT
            )
            self.last_probe = f"exit {proc.returncode}\nstdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}"
            logs = self.logs()
            seen = _reviews_for(logs, self.probe_namespace)
            if self.mutating and "mutate" not in seen and self.calls("mutate") > mutated_before:
                seen.add("mutate")
            if wanted <= seen:
                return
            if '"msg":"review"' not in logs and "pullguard" in proc.stderr:
                return  # logging is above info: kubectl's Warning/denial line is all there is to see
            if not self.server.alive():
                raise ClusterError(f"pullguard exited while registering; log:\n{logs[-4000:]}")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the apiserver did not call pullguard ({sorted(wanted)}) within {timeout:.0f}s; "
                    f"last probe: {self.last_probe}\npullguard log tail:\n{logs[-4000:]}\n"
                    f"apiserver log tail:\n{self.cluster.apiserver_log_tail()}"
                )
            time.sleep(0.5)

    def unregister(self) -> None:
        kinds = [
            kind
            for kind, on in (
                ("validatingwebhookconfiguration", self.validating),
                ("mutatingwebhookconfiguration", self.mutating),
            )
            if on
        ]
        for kind in kinds:
            self.cluster.kubectl(
                "delete", kind, self.name, "--ignore-not-found", "--wait=false", check=False, timeout=KUBECTL_TIMEOUT
            )
        self.registered = False

    def close(self) -> None:
        """Unregister first (so a stopped server cannot fail other tests' requests), then stop the server."""
        try:
            if self.registered:
                self.unregister()
            self.cluster.kubectl(
                "delete",
                "namespace",
                self.probe_namespace,
                "--ignore-not-found",
                "--wait=false",
                check=False,
                timeout=KUBECTL_TIMEOUT,
            )
        finally:
            self.server.stop()


@contextlib.contextmanager
def pullguard_webhook(
    cluster: Cluster,
    *,
    policy: str | None = None,
    failure_policy: FailurePolicy = "Ignore",
    timeout_seconds: int = 10,
    offline: bool = True,
    extra_args: Sequence[str] = (),
    log_level: str = "info",
    exclude_namespaces: Sequence[str] = ("kube-system",),
    exclude_labels: Mapping[str, str] | None = None,
    validating: bool = True,
    mutating: bool = True,
    directory: Path | None = None,
    register_timeout: float = REGISTER_TIMEOUT,
) -> Iterator[PullguardWebhook]:
    """Start pullguard, register it with ``cluster`` and wait until the apiserver calls it; undo it all after.

    ``policy``: YAML written to ``hook.policy_path`` and passed as ``--config`` (None: the embedded default).
    ``exclude_namespaces`` / ``exclude_labels``: namespaces the ``namespaceSelector`` skips (by name / by label).
    ``extra_args``: more ``serve`` flags, e.g. ``["--kubeconfig", str(cluster.kubeconfig)]``.
    """
    suffix = uuid.uuid4().hex[:8]
    directory = directory or cluster.workdir / f"pullguard-{suffix}"
    server = start_pullguard(
        directory,
        policy=policy,
        offline=offline,
        extra_args=extra_args,
        log_level=log_level,
        wait_for="/readyz",
        timeout=SERVER_START_TIMEOUT,
    )
    hook = PullguardWebhook(
        cluster=cluster,
        server=server,
        name=f"pullguard-e2e-{suffix}",
        probe_namespace=f"pullguard-probe-{suffix}",
        failure_policy=failure_policy,
        timeout_seconds=timeout_seconds,
        selector=namespace_selector(exclude_namespaces, exclude_labels),
        validating=validating,
        mutating=mutating,
    )
    try:
        cluster.create_namespace(hook.probe_namespace, labels={PROBE_LABEL: "true"})
        hook.register(register_timeout)
        yield hook
    finally:
        hook.close()


__all__ = [
    "PROBE_IMAGE",
    "WEBHOOK_RULES",
    "FailurePolicy",
    "PullguardWebhook",
    "namespace_selector",
    "pullguard_webhook",
    "webhook_configurations",
]
