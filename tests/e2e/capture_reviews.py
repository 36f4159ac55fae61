"""Capture real AdmissionReview requests from a real kube-apiserver into tests/data/admission/.

    .venv/bin/python tests/e2e/capture_reviews.py [--out DIR]

Starts the e2e cluster (etcd + kube-apiserver built from k8s.io/kubernetes, see tests/e2e/cluster.py), a
tiny recording HTTPS webhook on 127.0.0.1 (it allows everything and keeps every request body), registers it as
a ValidatingWebhookConfiguration for every kind that makes pods, then creates, updates and deletes realistic
objects with our kubectl and writes each recorded request as pretty JSON, exactly as the apiserver sent it.

Validating webhooks see the object after defaulting and after every mutating admission plugin (the
ServiceAccount plugin's token volume, for instance), which is what pullguard's /validate sees.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e.cluster import REPO_ROOT, Cluster, ClusterError
from tests.e2e.webhook_harness import WEBHOOK_RULES

NAMESPACE = "shop"
DEFAULT_OUT = REPO_ROOT / "tests" / "data" / "admission"
IMAGE_VOLUME_GATE = "--feature-gates=ImageVolume=true"
TIMEOUT = 30.0
INDEXER_DIGEST = "sha256:0e4a5fc1b8ef0a5ee8b1b7a3ec0d1bcde4b5b45c0da4ee1c7a4c3ddf1d0c3a11"


# --------------------------------------------------------------------------- the recording webhook


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]

    @property
    def request(self) -> dict[str, Any]:
        request: dict[str, Any] = self.body.get("request") or {}
        return request

    def matches(self, path: str, kind: str, operation: str, name: str | None = None, sub_resource: str = "") -> bool:
        request = self.request
        return (
            self.path == path
            and request.get("kind", {}).get("kind") == kind
            and request.get("operation") == operation
            and (request.get("subResource") or "") == sub_resource
            and (name is None or request.get("name") == name)
            and not request.get("dryRun")
        )


@dataclass
class Recorder:
    """An HTTPS server that answers every AdmissionReview with allowed: true and remembers the bodies."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    ca_pem: bytes
    records: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def take(self) -> list[Recorded]:
        with self.lock:
            taken, self.records = self.records, []
        return taken

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@contextmanager
def recording_webhook(cluster: Cluster, workdir: Path) -> Iterator[Recorder]:
    cert_path, key_path = cluster.issue_cert(["127.0.0.1"]).write(workdir, "recorder")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    holder: list[Recorder] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            document = json.loads(self.rfile.read(length))
            recorder = holder[0]
            with recorder.lock:
                recorder.records.append(Recorded(self.path.split("?", 1)[0], document))
            answer = {
                "apiVersion": document.get("apiVersion"),
                "kind": "AdmissionReview",
                "response": {"uid": document["request"]["uid"], "allowed": True},
            }
            payload = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="recorder", daemon=True)
    recorder = Recorder(server=server, thread=thread, ca_pem=cluster.ca.cert_pem)
    holder.append(recorder)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.stop()


def capture_configuration(recorder: Recorder) -> dict[str, Any]:
    """v1 reviews of every workload kind (CREATE, UPDATE, DELETE) plus v1beta1 reviews of Deployment CREATE."""
    ca_bundle = base64.b64encode(recorder.ca_pem).decode()
    selector = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": [NAMESPACE]}]}
    v1_rules = [rule | {"operations": ["CREATE", "UPDATE", "DELETE"]} for rule in WEBHOOK_RULES]
    v1beta1_rules = [
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["deployments"],
            "scope": "Namespaced",
        }
    ]

    def webhook(name: str, path: str, rules: list[dict[str, Any]], versions: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "clientConfig": {"url": recorder.url + path, "caBundle": ca_bundle},
            "rules": rules,
            "namespaceSelector": selector,
            "sideEffects": "None",
            "admissionReviewVersions": versions,
            "timeoutSeconds": 10,
            "failurePolicy": "Fail",
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "pullguard-capture"},
        "webhooks": [
            webhook("v1.capture.pullguard.io", "/v1", v1_rules, ["v1"]),
            webhook("v1beta1.capture.pullguard.io", "/v1beta1", v1beta1_rules, ["v1beta1"]),
        ],
    }


def wait_until_recording(cluster: Cluster, recorder: Recorder) -> None:
    probe = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "probe", "image": "probe-image:1"}]},
    }
    deadline = time.monotonic() + TIMEOUT
    while not any(r.request.get("dryRun") for r in recorder.take()):
        if time.monotonic() > deadline:
            raise ClusterError(f"the recording webhook was not called within {TIMEOUT:.0f}s")
        cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False, timeout=TIMEOUT)
        time.sleep(0.3)
    recorder.take()


# --------------------------------------------------------------------------- the objects

POD = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: checkout
  namespace: {NAMESPACE}
  labels: {{app: checkout, tier: backend}}
spec:
  serviceAccountName: default
  imagePullSecrets:
    - name: regcred
  nodeSelector:
    kubernetes.io/os: linux
  initContainers:
    - name: migrate
      image: registry.example.com/shop/checkout-migrations:2.4.1
      command: [/bin/migrate, up]
    - name: wait-for-db
      image: busybox:1.36.1
      command: [sh, -c, "until nc -z postgres 5432; do sleep 1; done"]
  containers:
    - name: checkout
      image: registry.example.com/shop/checkout:2.4.1
      imagePullPolicy: IfNotPresent
      ports:
        - containerPort: 8080
      volumeMounts:
        - {{name: model, mountPath: /models, readOnly: true}}
    - name: envoy
      image: docker.io/envoyproxy/envoy:v1.31.2
  volumes:
    - name: model
      image:
        reference: registry.example.com/shop/fraud-model:2024.11
        pullPolicy: IfNotPresent
"""

POD_GENERATE_NAME = f"""\
apiVersion: v1
kind: Pod
metadata:
  generateName: worker-
  namespace: {NAMESPACE}
  labels: {{app: worker}}
spec:
  containers:
    - name: worker
      image: ghcr.io/example/batch-worker:0.9.3
"""

DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: storefront
  namespace: {NAMESPACE}
  labels: {{app: storefront}}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: storefront}}
  template:
    metadata:
      labels: {{app: storefront}}
    spec:
      imagePullSecrets:
        - name: regcred
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - {{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}}
      containers:
        - name: web
          image: nginx:1.27.3
          ports:
            - containerPort: 80
        - name: app
          image: registry.example.com/shop/storefront:3.2.0
          imagePullPolicy: Always
        - name: metrics
          image: quay.io/prometheuscommunity/postgres-exporter:v0.15.0
"""

UNTAGGED = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {NAMESPACE}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: nginx
          ports:
            - containerPort: 80
"""

STATEFULSET = f"""\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: postgres
  namespace: {NAMESPACE}
spec:
  serviceName: postgres
  replicas: 1
  selector:
    matchLabels: {{app: postgres}}
  template:
    metadata:
      labels: {{app: postgres}}
    spec:
      initContainers:
        - name: init-permissions
          image: busybox:1.36.1
          command: [sh, -c, "chown -R 999:999 /var/lib/postgresql/data"]
          volumeMounts:
            - {{name: data, mountPath: /var/lib/postgresql/data}}
      containers:
        - name: postgres
          image: postgres:16.4
          volumeMounts:
            - {{name: data, mountPath: /var/lib/postgresql/data}}
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: [ReadWriteOnce]
        resources:
          requests:
            storage: 1Gi
"""

DAEMONSET = f"""\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-exporter
  namespace: {NAMESPACE}
spec:
  selector:
    matchLabels: {{app: node-exporter}}
  template:
    metadata:
      labels: {{app: node-exporter}}
    spec:
      hostNetwork: true
      tolerations:
        - operator: Exists
      containers:
        - name: node-exporter
          image: quay.io/prometheus/node-exporter:v1.8.2
          args: [--path.rootfs=/host]
"""

REPLICASET = f"""\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: cache
  namespace: {NAMESPACE}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: cache}}
  template:
    metadata:
      labels: {{app: cache}}
    spec:
      containers:
        - name: redis
          image: redis:7.2.4
"""

REPLICATIONCONTROLLER = f"""\
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy-api
  namespace: {NAMESPACE}
spec:
  replicas: 1
  selector:
    app: legacy-api
  template:
    metadata:
      labels: {{app: legacy-api}}
    spec:
      containers:
        - name: api
          image: registry.example.com:5000/shop/legacy-api:1.0.9
"""

JOB = f"""\
apiVersion: batch/v1
kind: Job
metadata:
  name: reindex
  namespace: {NAMESPACE}
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: fetch
          image: curlimages/curl:8.10.1
          args: [-fsSLo, /work/dump.sql, "https://backup.example.com/dump.sql"]
      containers:
        - name: reindex
          image: registry.example.com/shop/search-indexer@{INDEXER_DIGEST}
"""

CRONJOB = f"""\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly-report
  namespace: {NAMESPACE}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: report
              image: registry.example.com/shop/reports:1.12.0
            - name: uploader
              image: amazon/aws-cli:2.17.0
"""

PODTEMPLATE = f"""\
apiVersion: v1
kind: PodTemplate
metadata:
  name: batch-worker
  namespace: {NAMESPACE}
template:
  metadata:
    labels: {{app: batch-worker}}
  spec:
    containers:
      - name: worker
        image: ghcr.io/example/batch-worker:0.9.3
"""


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
