"""What the `pullguard explain` e2e tests (test_explain*.py) write in place of a kubelet: pods whose statuses and
events say what a kubelet says when a pull fails, written through the status subresource and the Events APIs (core
v1 and events.k8s.io/v1), and the cases, one per failure class.

The runtime texts are containerd 1.6's as tests/support/containerd.py quotes them from real `ctr` pulls, wrapped the
way the kubelet wraps CRI errors (`Failed to pull image "X": rpc error: code = ... desc = ...`). The `run_explain`
fixture is in conftest.py.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.e2e.cluster import Cluster

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


def only_container(result: Explained) -> dict[str, Any]:
    (pod,) = result.json["pods"]
    (container,) = pod["containers"]
    found: dict[str, Any] = container
    return found
