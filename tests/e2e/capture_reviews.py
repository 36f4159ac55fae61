"""Capture real AdmissionReview requests from a real kube-apiserver into tests/data/admission/.

    .venv/bin/python -m tests.e2e.capture_reviews [--out DIR]

Starts the e2e cluster (etcd + kube-apiserver built from k8s.io/kubernetes, see tests/e2e/cluster.py), a
tiny recording HTTPS webhook on 127.0.0.1 (it allows everything and keeps every request body), registers it as
a ValidatingWebhookConfiguration for every kind that makes pods, then creates, updates and deletes realistic
objects with our kubectl and writes each recorded request as pretty JSON, exactly as the apiserver sent it.

Validating webhooks see the object after defaulting and after every mutating admission plugin (the
ServiceAccount plugin's token volume, for instance), which is what pullguard's /validate sees.

The recording webhook is in capture_recorder.py, the objects in capture_objects.py; this module runs the steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.capture_objects import (
    CRONJOB,
    DAEMONSET,
    DEPLOYMENT,
    JOB,
    NAMESPACE,
    POD,
    POD_GENERATE_NAME,
    PODTEMPLATE,
    REPLICASET,
    REPLICATIONCONTROLLER,
    STATEFULSET,
    UNTAGGED,
)
from tests.e2e.capture_recorder import (
    TIMEOUT,
    Recorded,
    capture_configuration,
    recording_webhook,
    wait_until_recording,
)
from tests.e2e.cluster import REPO_ROOT, Cluster, ClusterError

DEFAULT_OUT = REPO_ROOT / "tests" / "data" / "admission"
IMAGE_VOLUME_GATE = "--feature-gates=ImageVolume=true"


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Step:
    """One kubectl action and the recorded request(s) it must produce, saved as ``file``."""

    file: str
    action: Callable[[Cluster], object]
    path: str
    kind: str
    operation: str
    name: str | None  # None: any (a generated name)
    sub_resource: str = ""


def apply(text: str) -> Callable[[Cluster], object]:
    return lambda cluster: cluster.kubectl("apply", "-f", "-", input=text, timeout=TIMEOUT)


def create(text: str) -> Callable[[Cluster], object]:
    return lambda cluster: cluster.kubectl("create", "-f", "-", input=text, timeout=TIMEOUT)


def set_image(cluster: Cluster) -> object:
    """A Pod's images are the one part of its spec an UPDATE may change."""
    return cluster.kubectl(
        "set", "image", "-n", NAMESPACE, "pod/checkout", "envoy=docker.io/envoyproxy/envoy:v1.31.3", timeout=TIMEOUT
    )


def debug(cluster: Cluster) -> object:
    """``kubectl debug`` adds an ephemeral container through the pods/ephemeralcontainers subresource."""
    return cluster.kubectl(
        "debug",
        "-n",
        NAMESPACE,
        "pod/checkout",
        "--image=busybox:1.36.1",
        "--container=debugger",
        "--target=checkout",
        "--profile=general",
        timeout=TIMEOUT,
    )


def steps(updated_deployment: str) -> list[Step]:
    return [
        Step("pod-create.json", apply(POD), "/v1", "Pod", "CREATE", "checkout"),
        Step("deployment-create.json", apply(DEPLOYMENT), "/v1", "Deployment", "CREATE", "storefront"),
        Step("deployment-create-v1beta1.json", lambda c: None, "/v1beta1", "Deployment", "CREATE", "storefront"),
        Step("deployment-nginx-untagged.json", apply(UNTAGGED), "/v1", "Deployment", "CREATE", "web"),
        Step("statefulset-create.json", apply(STATEFULSET), "/v1", "StatefulSet", "CREATE", "postgres"),
        Step("daemonset-create.json", apply(DAEMONSET), "/v1", "DaemonSet", "CREATE", "node-exporter"),
        Step("replicaset-create.json", apply(REPLICASET), "/v1", "ReplicaSet", "CREATE", "cache"),
        Step(
            "replicationcontroller-create.json",
            apply(REPLICATIONCONTROLLER),
            "/v1",
            "ReplicationController",
            "CREATE",
            "legacy-api",
        ),
        Step("job-create.json", apply(JOB), "/v1", "Job", "CREATE", "reindex"),
        Step("cronjob-create.json", apply(CRONJOB), "/v1", "CronJob", "CREATE", "nightly-report"),
        Step("podtemplate-create.json", apply(PODTEMPLATE), "/v1", "PodTemplate", "CREATE", "batch-worker"),
        Step("deployment-update.json", apply(updated_deployment), "/v1", "Deployment", "UPDATE", "storefront"),
        Step(
            "deployment-delete.json",
            lambda c: c.kubectl("delete", "-n", NAMESPACE, "deployment/storefront", "--wait=false", timeout=TIMEOUT),
            "/v1",
            "Deployment",
            "DELETE",
            "storefront",
        ),
        Step("pod-generatename-create.json", create(POD_GENERATE_NAME), "/v1", "Pod", "CREATE", None),
        Step("pod-update.json", set_image, "/v1", "Pod", "UPDATE", "checkout"),
        Step(
            "pod-ephemeralcontainers-update.json",
            debug,
            "/v1",
            "Pod",
            "UPDATE",
            "checkout",
            sub_resource="ephemeralcontainers",
        ),
    ]


def start_cluster(workdir: Path) -> tuple[Cluster, bool]:
    """The cluster with the ImageVolume feature gate on, or without the flag if this apiserver rejects it."""
    try:
        return Cluster.start(workdir=workdir / "gated", apiserver_args=[IMAGE_VOLUME_GATE]), True
    except ClusterError as exc:
        if "feature gate" not in str(exc).lower() and "feature-gates" not in str(exc).split("(all flags:")[0]:
            raise
        print(f"apiserver rejected {IMAGE_VOLUME_GATE}; starting without it", file=sys.stderr)
    return Cluster.start(workdir=workdir / "plain"), False


def capture(out: Path) -> list[str]:
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pullguard-capture-") as tmp:
        cluster, gate = start_cluster(Path(tmp))
        with cluster:
            version = cluster.kubectl_json("version", timeout=TIMEOUT)["serverVersion"]["gitVersion"]
            print(f"kube-apiserver {version} (ImageVolume gate flag: {gate})", file=sys.stderr)
            cluster.create_namespace(NAMESPACE)
            with recording_webhook(cluster, Path(tmp)) as recorder:
                cluster.apply(capture_configuration(recorder))
                wait_until_recording(cluster, recorder)
                updated = DEPLOYMENT.replace("image: nginx:1.27.3", "image: nginx:1.27.4")
                pending: list[Recorded] = []
                for step in steps(updated):
                    step.action(cluster)
                    pending += recorder.take()
                    found = [
                        r
                        for r in pending
                        if r.matches(step.path, step.kind, step.operation, step.name, step.sub_resource)
                    ]
                    if len(found) != 1:
                        summary = [(r.path, r.request.get("kind"), r.request.get("operation")) for r in pending]
                        raise ClusterError(f"{step.file}: expected one matching request, got {len(found)}: {summary}")
                    pending.remove(found[0])
                    target = out / step.file
                    target.write_text(json.dumps(found[0].body, indent=2) + "\n")
                    written.append(step.file)
                    print(f"wrote {target}", file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    capture(args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["capture", "capture_configuration", "recording_webhook"]
