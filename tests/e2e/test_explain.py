"""`pullguard explain` against a real kube-apiserver: pods whose statuses and events say what a kubelet says when a
pull fails (there is no kubelet here: the test writes `status` through the status subresource and the kubelet's
Events through the API, core v1 and events.k8s.io/v1), workloads that own them through ownerReferences, and a real
registry on loopback (mapped by hosts.toml) against which pullguard confirms the cause.

The runtime texts are containerd 1.6's as tests/support/containerd.py quotes them from real `ctr` pulls, wrapped the
way the kubelet wraps CRI errors (`Failed to pull image "X": rpc error: code = ... desc = ...`).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.cluster_scenarios import map_host, policy_text
from tests.support import fixtures
from tests.support.images import LINUX_AMD64
from tests.support.pushers import push_multiarch_index, push_single_arch
from tests.support.registry import RegistryServer, start_plain_registry
from webhook import explain
from webhook.explain_verdict import DIFFERS

pytestmark = [pytest.mark.timeout(180)]

NODE = "worker-7"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pulled(ref: str, code: str, cause: str) -> str:
    """The kubelet's `Failed to pull image` event text around a containerd resolve failure."""
    return (
        f'Failed to pull image "{ref}": rpc error: code = {code} desc = failed to pull and unpack image "{ref}": '
        f'failed to resolve reference "{ref}": {cause}'
    )


def head(ref: str) -> str:
    host, _, rest = ref.partition("/")
    repository, _, tag = rest.rpartition(":")
    return f'failed to do request: Head "https://{host}/v2/{repository}/manifests/{tag}": '


@dataclass(frozen=True)
class Case:
    name: str
    image: str
    reason: str  # the container's waiting reason
    text: str  # the event's message (or, for exec format error, the last termination's)
    klass: str


REF = "registry.example.test/shop/web:2.1"
CASES = [
    Case("notfound", REF, "ErrImagePull", pulled(REF, "NotFound", f"{REF}: not found"), "notFound"),
    Case(
        "unauthorized",
        REF,
        "ImagePullBackOff",
        pulled(REF, "Unknown", "failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized"),
        "unauthorized",
    ),
    Case(
        "denied",
        REF,
        "ErrImagePull",
        pulled(
            REF,
            "Unknown",
            "pull access denied, repository does not exist or may require authorization: server message: "
            "insufficient_scope: authorization failed",
        ),
        "denied",
    ),
    Case(
        "dns",
        REF,
        "ErrImagePull",
        pulled(REF, "Unknown", head(REF) + "dial tcp: lookup registry.example.test on 10.96.0.10:53: no such host"),
        "dns",
    ),
    Case(
        "timeout",
        REF,
        "ErrImagePull",
        pulled(REF, "DeadlineExceeded", head(REF) + "dial tcp 203.0.113.9:443: i/o timeout"),
        "timeout",
    ),
    Case(
        "refused",
        REF,
        "ErrImagePull",
        pulled(REF, "Unknown", head(REF) + "dial tcp 203.0.113.9:443: connect: connection refused"),
        "refused",
    ),
    Case(
        "x509-ca",
        REF,
        "ErrImagePull",
        pulled(
            REF,
            "Unknown",
            head(REF) + "tls: failed to verify certificate: x509: certificate signed by unknown authority",
        ),
        "tlsUnknownAuthority",
    ),
    Case(
        "x509-expired",
        REF,
        "ErrImagePull",
        pulled(
            REF,
            "Unknown",
            head(REF) + "tls: failed to verify certificate: x509: certificate has expired or is not yet valid: "
            "current time 2026-11-26T10:00:00Z is after 2026-11-01T00:00:00Z",
        ),
        "tlsExpired",
    ),
    Case(
        "x509-name",
        REF,
        "ErrImagePull",
        pulled(
            REF,
            "Unknown",
            head(REF) + "tls: failed to verify certificate: x509: certificate is valid for proxy.corp.test, "
            "not registry.example.test",
        ),
        "tlsNameMismatch",
    ),
    Case(
        "ratelimit",
        "docker.io/library/nginx:1.27",
        "ErrImagePull",
        'Failed to pull image "nginx:1.27": rpc error: code = Unknown desc = failed to pull and unpack image '
        '"docker.io/library/nginx:1.27": failed to copy: httpReadSeeker: failed open: unexpected status code '
        "https://registry-1.docker.io/v2/library/nginx/manifests/sha256:0a1b: 429 Too Many Requests - Server "
        "message: toomanyrequests: You have reached your pull rate limit.",
        "rateLimited",
    ),
    Case(
        "platform",
        REF,
        "ErrImagePull",
        f'Failed to pull image "{REF}": rpc error: code = NotFound desc = failed to pull and unpack image "{REF}": '
        "no match for platform in manifest: not found",
        "noMatchingPlatform",
    ),
    Case(
        "nospace",
        REF,
        "ErrImagePull",
        f'Failed to pull image "{REF}": rpc error: code = Unknown desc = failed to pull and unpack image "{REF}": '
        "failed to extract layer sha256:5dac: write /var/lib/containerd/tmpmounts/m1/usr/lib/libc.so: "
        "no space left on device: unknown",
        "noSpaceLeft",
    ),
    Case("exec", REF, "CrashLoopBackOff", "exec /usr/local/bin/web: exec format error", "execFormatError"),
    Case(
        "invalid",
        "registry.example.test/Shop/web:2.1",
        "InvalidImageName",
        'Failed to apply default image tag "registry.example.test/Shop/web:2.1": couldn\'t parse image name '
        '"registry.example.test/Shop/web:2.1": invalid reference format: repository name must be lowercase',
        "invalidImageName",
    ),
    Case(
        "never",
        REF,
        "ErrImageNeverPull",
        f'Container image "{REF}" is not present with pull policy of Never',
        "neverPull",
    ),
]


# --------------------------------------------------------------------------- writing what a kubelet would write


def create_pod(
    cluster: Cluster,
    namespace: str,
    name: str,
    image: str,
    *,
    labels: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
    pull_secrets: list[str] | None = None,
    pull_policy: str | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {"app": name}}
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    spec: dict[str, Any] = {"nodeName": NODE, "containers": [container]}
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    cluster.kubectl(
        "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    )
    pod: dict[str, Any] = cluster.kubectl_json("get", "pod", name, "-n", namespace)
    return pod


def write_status(
    cluster: Cluster,
    pod: dict[str, Any],
    state: dict[str, Any],
    *,
    last: dict[str, Any] | None = None,
    phase: str = "Pending",
) -> None:
    container = pod["spec"]["containers"][0]
    status: dict[str, Any] = {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": False,
        "restartCount": 3 if last else 0,
        "started": False,
        "state": state,
    }
    if last is not None:
        status["lastState"] = last
    patch = {"status": {"phase": phase, "containerStatuses": [status]}}
    metadata = pod["metadata"]
    cluster.kubectl(
        "patch",
        "pod",
        metadata["name"],
        "-n",
        metadata["namespace"],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )


def waiting(cluster: Cluster, pod: dict[str, Any], reason: str, message: str) -> None:
    write_status(cluster, pod, {"waiting": {"reason": reason, "message": message}})


def core_event(
    cluster: Cluster, pod: dict[str, Any], reason: str, message: str, field_path: str | None = "spec.containers{app}"
) -> None:
    metadata = pod["metadata"]
    involved = {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": metadata["namespace"],
        "name": metadata["name"],
        "uid": metadata["uid"],
    }
    if field_path:
        involved["fieldPath"] = field_path
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{metadata['name']}.{uuid.uuid4().hex[:12]}", "namespace": metadata["namespace"]},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": "Warning",
        "source": {"component": "kubelet", "host": NODE},
        "firstTimestamp": _now(),
        "lastTimestamp": _now(),
        "count": 1,
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(event))


def new_event(cluster: Cluster, pod: dict[str, Any], reason: str, note: str) -> None:
    """The same through events.k8s.io/v1, as newer kubelets write them."""
    metadata = pod["metadata"]
    event = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"{metadata['name']}.{uuid.uuid4().hex[:12]}", "namespace": metadata["namespace"]},
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": "kubelet",
        "reportingInstance": NODE,
        "action": "Pulling",
        "reason": reason,
        "note": note,
        "type": "Warning",
        "regarding": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": metadata["namespace"],
            "name": metadata["name"],
            "uid": metadata["uid"],
            "fieldPath": "spec.containers{app}",
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(event))


def failing_pod(cluster: Cluster, namespace: str, case: Case, **kwargs: Any) -> dict[str, Any]:
    """A pod in the state the kubelet leaves it in for `case`: the waiting reason, and the event or termination."""
    pod = create_pod(
        cluster, namespace, case.name, case.image, pull_policy="Never" if case.klass == "neverPull" else None, **kwargs
    )
    if case.klass == "execFormatError":
        last = {
            "terminated": {
                "exitCode": 255,
                "reason": "Error",
                "message": case.text,
                "startedAt": _now(),
                "finishedAt": _now(),
            }
        }
        write_status(
            cluster,
            pod,
            {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=app"}},
            last=last,
            phase="Running",
        )
        return pod
    if case.reason == "ImagePullBackOff":
        waiting(cluster, pod, case.reason, f'Back-off pulling image "{case.image}"')
    else:
        waiting(cluster, pod, case.reason, case.text if case.klass in ("invalidImageName", "neverPull") else "")
    reason = {"neverPull": "ErrImageNeverPull", "invalidImageName": "InspectFailed"}.get(case.klass, "Failed")
    core_event(cluster, pod, reason, case.text)
    core_event(cluster, pod, "Failed", f"Error: {case.reason}")
    return pod


# --------------------------------------------------------------------------- running explain


@dataclass(frozen=True)
class Explained:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.out)
        return document


@pytest.fixture
def run_explain(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Explained:
        capsys.readouterr()
        code = explain.main(["--kubeconfig", str(cluster.kubeconfig), *args])
        captured = capsys.readouterr()
        return Explained(code, captured.out, captured.err)

    return run


def only_container(result: Explained) -> dict[str, Any]:
    (pod,) = result.json["pods"]
    (container,) = pod["containers"]
    found: dict[str, Any] = container
    return found


# --------------------------------------------------------------------------- 1. every class, from the evidence


def test_each_class_from_statuses_and_events(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    for case in CASES:
        failing_pod(cluster, namespace, case)
    for case in CASES:
        result = run_explain(f"pod/{case.name}", "-n", namespace, "--offline", "--format", "json")
        assert result.code == 1, (case, result)
        container = only_container(result)
        assert container["class"] == case.klass, (case.name, container)
        assert container["reason"] == case.reason
        assert container["verdict"] == ("node" if case.klass == "noSpaceLeft" else "notChecked"), container
        assert container["fix"]
        assert result.json["pods"][0]["node"] == NODE
    text = run_explain("pod/x509-ca", "-n", namespace, "--offline")
    assert text.code == 1
    assert "kubelet:  ErrImagePull" in text.out
    assert "event:    Failed to pull image" in text.out
    assert "tlsUnknownAuthority" in text.out
    assert (
        "fix:      install the registry's CA on every node: /etc/containerd/certs.d/registry.example.test/ca.crt"
        in text.out
    )
    space = only_container(run_explain("pod/nospace", "-n", namespace, "--offline", "--format", "json"))
    assert f"free disk space on node {NODE}" in space["fix"]
    rate = only_container(run_explain("pod/ratelimit", "-n", namespace, "--offline", "--format", "json"))
    assert "pull-through mirror for docker.io in hosts.toml" in rate["fix"]


def test_events_k8s_io_and_the_sandbox_image(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    pod = create_pod(cluster, namespace, "newer", REF)
    waiting(cluster, pod, "ErrImagePull", "")
    new_event(cluster, pod, "Failed", pulled(REF, "NotFound", f"{REF}: not found"))
    newer = only_container(run_explain("pod/newer", "-n", namespace, "--offline", "--format", "json"))
    assert newer["class"] == "notFound" and newer["event"].startswith("Failed to pull image")

    sandbox = create_pod(cluster, namespace, "sandboxed", "registry.example.test/shop/web:2.1")
    pause = "registry.k8s.io/pause:3.10"
    core_event(
        cluster,
        sandbox,
        "FailedCreatePodSandBox",
        f'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox image "{pause}": '
        f'failed to pull image "{pause}": failed to pull and unpack image "{pause}": failed to resolve reference '
        f'"{pause}": failed to do request: Head "https://registry.k8s.io/v2/pause/manifests/3.10": dial tcp '
        "34.96.108.209:443: i/o timeout",
        field_path=None,
    )
    found = only_container(run_explain("pod/sandboxed", "-n", namespace, "--offline", "--format", "json"))
    assert found["kind"] == "sandbox" and found["sandboxImage"] == pause and found["class"] == "timeout"
    assert "sandbox_image" in found["fix"]


# --------------------------------------------------------------------------- 2. workloads and -A


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
    }


def test_deployment_explains_its_newest_failing_pod(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    labels = {"app": "web"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": REF}]}}
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}, "template": template},
        }
    )
    deployment = cluster.kubectl_json("get", "deployment", "web", "-n", namespace)
    cluster.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "web-5d9c", "namespace": namespace, "ownerReferences": [_owner(deployment)]},
                "spec": {"selector": {"matchLabels": labels}, "template": template},
            }
        ),
    )
    replicaset = cluster.kubectl_json("get", "replicaset", "web-5d9c", "-n", namespace)

    assert run_explain("deployment/web", "-n", namespace, "--offline").code == 0  # no pods yet: nothing failing

    old = create_pod(cluster, namespace, "web-5d9c-old", REF, labels=labels, owner=_owner(replicaset))
    waiting(cluster, old, "ErrImagePull", "")
    core_event(cluster, old, "Failed", pulled(REF, "NotFound", f"{REF}: not found"))
    time.sleep(1.1)  # creationTimestamp has a resolution of one second
    new = create_pod(cluster, namespace, "web-5d9c-new", REF, labels=labels, owner=_owner(replicaset))
    waiting(cluster, new, "ImagePullBackOff", f'Back-off pulling image "{REF}"')
    core_event(cluster, new, "Failed", pulled(REF, "Unknown", head(REF) + "dial tcp 203.0.113.9:443: i/o timeout"))
    healthy = create_pod(cluster, namespace, "web-5d9c-ok", REF, labels=labels, owner=_owner(replicaset))
    write_status(cluster, healthy, {"running": {"startedAt": _now()}}, phase="Running")
    time.sleep(1.1)
    stranger = create_pod(cluster, namespace, "web-lookalike", REF, labels=labels)  # same labels, not owned
    waiting(cluster, stranger, "ErrImagePull", "")

    result = run_explain("deploy/web", "-n", namespace, "--offline", "--format", "json")
    assert result.code == 1, result
    (pod,) = result.json["pods"]
    assert pod["name"] == "web-5d9c-new" and pod["owner"] == "ReplicaSet/web-5d9c"
    assert pod["containers"][0]["class"] == "timeout"
    assert (
        run_explain("replicaset/web-5d9c", "-n", namespace, "--offline", "--format", "json").json["pods"][0]["name"]
        == "web-5d9c-new"
    )


def test_all_namespaces(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    other = f"e2e-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(other)
    try:
        failing_pod(cluster, namespace, CASES[0])
        failing_pod(cluster, other, CASES[3])
        create_pod(cluster, other, "quiet", REF)  # no status at all: not failing
        result = run_explain("-A", "--offline", "--format", "json")
        assert result.code == 1
        found = {(p["namespace"], p["name"]): p["containers"][0]["class"] for p in result.json["pods"]}
        assert found[(namespace, "notfound")] == "notFound" and found[(other, "dns")] == "dns"
        assert (other, "quiet") not in found
        assert result.json["summary"]["failingPods"] == len(found) and result.json["namespace"] is None
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_nothing_failing_and_errors(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    pod = create_pod(cluster, namespace, "fine", REF)
    write_status(cluster, pod, {"running": {"startedAt": _now()}}, phase="Running")
    fine = run_explain("pod/fine", "-n", namespace)
    assert fine.code == 0 and "nothing failing: pod/fine" in fine.out, fine
    assert run_explain("pod/fine", "-n", namespace, "--format", "json").json["summary"]["exitCode"] == 0

    missing = run_explain("pod/absent", "-n", namespace)
    assert missing.code == 2 and "not found" in missing.err
    assert run_explain("service/web", "-n", namespace).code == 2
    assert run_explain("pod/fine", "-A").code == 2
    assert run_explain("-n", namespace).code == 2


# --------------------------------------------------------------------------- 3. confirmed against a real registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, Path]]:
    fixtures.require_docker_registry()
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(start_plain_registry())
        push_single_arch(plain, "app", "1.0", platform=LINUX_AMD64)
        push_multiarch_index(plain, "app", "1.1")
        workdir = tmp_path_factory.mktemp("explain")
        hosts_dir = map_host(workdir / "certs.d", plain.host, plain.url)
        policy = workdir / "policy.yaml"
        policy.write_text(policy_text(hosts_dir, "warn", timeout_seconds=5))
        yield plain, policy


@pytest.mark.registry
def test_confirmed_against_a_real_registry(
    cluster: Cluster, namespace: str, run_explain: Any, registry: tuple[RegistryServer, Path]
) -> None:
    plain, policy = registry
    missing = plain.reference("app", "1.2")
    pod = create_pod(cluster, namespace, "missing-tag", missing)
    waiting(cluster, pod, "ErrImagePull", "")
    core_event(cluster, pod, "Failed", pulled(missing, "NotFound", f"{missing}: not found"))

    result = run_explain("pod/missing-tag", "-n", namespace, "--config", str(policy), "--format", "json")
    assert result.code == 1, result
    container = only_container(result)
    assert container["verdict"] == "confirmed", container
    assert f"not found in registry {plain.host}" in container["cause"]
    assert container["fix"].startswith("existing tags closest to it: 1.1"), container
    assert any("pullguard asked registry" in e and "notFound" in e for e in container["evidence"]), container
    text = run_explain("pod/missing-tag", "-n", namespace, "--config", str(policy))
    assert "cause:    confirmed by pullguard:" in text.out and "fix:      existing tags closest to it: 1.1" in text.out

    # The node could not resolve the registry, but from here it answers: the node's DNS/hosts.toml differ.
    present = plain.reference("app", "1.1")
    fine_here = create_pod(cluster, namespace, "node-dns", present)
    waiting(cluster, fine_here, "ErrImagePull", "")
    host = plain.host.split(":")[0]
    core_event(cluster, fine_here, "Failed", pulled(present, "Unknown", f"dial tcp: lookup {host}: no such host"))
    differs = only_container(run_explain("pod/node-dns", "-n", namespace, "--config", str(policy), "--format", "json"))
    assert differs["verdict"] == "notReproduced" and differs["cause"] == DIFFERS, differs
    assert "resolv.conf" in differs["fix"]

    # The node pulled anonymously and was refused; the cause is the pull secret that does not exist.
    secretless = create_pod(cluster, namespace, "no-secret", present, pull_secrets=["regcred"])
    waiting(cluster, secretless, "ErrImagePull", "")
    core_event(
        cluster,
        secretless,
        "Failed",
        pulled(present, "Unknown", "pulling from host x failed with status code [manifests 1]: 401 Unauthorized"),
    )
    secret = only_container(run_explain("pod/no-secret", "-n", namespace, "--config", str(policy), "--format", "json"))
    assert secret["class"] == "unauthorized" and secret["verdict"] == "confirmed", secret
    assert f'imagePullSecret "regcred" does not exist in namespace {namespace}' in secret["cause"]
    assert f"kubectl create secret docker-registry regcred -n {namespace} --docker-server={plain.host}" in secret["fix"]
