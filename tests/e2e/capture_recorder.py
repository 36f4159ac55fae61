"""The recording webhook of capture_reviews.py: a tiny HTTPS server on 127.0.0.1 that allows every AdmissionReview
and keeps each request body, and the ValidatingWebhookConfiguration that sends it every kind that makes pods."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e.capture_objects import NAMESPACE
from tests.e2e.cluster import Cluster, ClusterError
from tests.e2e.webhook_harness import WEBHOOK_RULES

TIMEOUT = 30.0


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


__all__ = ["TIMEOUT", "Recorded", "Recorder", "capture_configuration", "recording_webhook", "wait_until_recording"]
