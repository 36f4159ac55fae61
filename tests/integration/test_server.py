"""The real `pullguard serve` over TLS on loopback, fed AdmissionReviews of every kind."""

from __future__ import annotations

import base64
import copy
import json
import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.reviews import manifest, manifests, review
from tests.server import PullguardServer, start_pullguard
from tests.support.loopback import free_port
from webhook.limits import MAX_BODY_BYTES

NGINX_WARNING = 'pullguard: container "web" image "nginx" has no tag (resolves to latest): pin a version tag or digest'


def test_issue_example_deployment_nginx_warns(pullguard: PullguardServer) -> None:
    body = review(manifest("deployment.yaml"), uid="7f0c2e8a")
    response = pullguard.post("/validate", body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "7f0c2e8a"
    assert answer["response"]["allowed"] is True
    assert answer["response"]["warnings"] == [
        NGINX_WARNING,
        'pullguard: container "metrics" image "quay.example.com/prom/nginx-exporter:latest" uses the floating tag '
        '"latest": pin a version tag or digest',
    ]


@pytest.mark.parametrize(
    ("kind", "warned"),
    [
        ("StatefulSet", []),
        ("DaemonSet", ["fluent/fluent-bit"]),
        ("ReplicaSet", []),
        ("ReplicationController", ["httpd:latest"]),
        ("Job", []),
        ("CronJob", ["alpine"]),
        ("PodTemplate", ["registry.example.com/team/models"]),
    ],
)
def test_every_workload_kind(pullguard: PullguardServer, kind: str, warned: list[str]) -> None:
    answer = pullguard.admit(review(manifest("workloads.yaml", kind)))
    assert answer["allowed"] is True
    assert [w.split('image "')[1].split('"')[0] for w in answer.get("warnings", [])] == warned


def test_pod_and_v1beta1(pullguard: PullguardServer) -> None:
    body = review(manifest("pod.yaml"), api_version="admission.k8s.io/v1beta1", uid="u-beta")
    answer = pullguard.post("/validate", body).json()
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["response"]["uid"] == "u-beta"
    assert answer["response"]["warnings"] == [
        'pullguard: container "app" image "busybox" has no tag (resolves to latest): pin a version tag or digest'
    ]


def test_ephemeral_containers_subresource(pullguard: PullguardServer) -> None:
    pod = manifest("pod.yaml")
    old = copy.deepcopy(pod)
    pod["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox:latest"}]
    answer = pullguard.admit(review(pod, old=old, operation="UPDATE", sub_resource="ephemeralcontainers"))
    assert answer["warnings"] == [
        'pullguard: container "debugger" image "busybox:latest" uses the floating tag "latest": '
        "pin a version tag or digest"
    ]


def test_invalid_reference_is_denied_with_the_fix(pullguard: PullguardServer) -> None:
    answer = pullguard.admit(review(manifest("invalid-image.yaml")))
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 403
    message = answer["status"]["message"]
    assert message.startswith("pullguard denied Pod default/typo: 1 image problem")
    assert "[InvalidImageName]" in message and "must be lowercase" in message


def test_other_kinds_delete_and_connect_pass_untouched(pullguard: PullguardServer) -> None:
    for document in manifests("not-workloads.yaml"):
        answer = pullguard.admit(review(document, uid="other"))
        assert answer == {"uid": "other", "allowed": True}
    deployment = manifest("deployment.yaml")
    assert pullguard.admit(review(None, old=deployment, operation="DELETE", uid="d")) == {"uid": "d", "allowed": True}
    assert pullguard.admit(review(deployment, operation="CONNECT", uid="c")) == {"uid": "c", "allowed": True}


def test_update_checks_only_changed_images(pullguard: PullguardServer) -> None:
    old = manifest("deployment.yaml")
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 10
    assert "warnings" not in pullguard.admit(review(new, old=old, operation="UPDATE"))
    new["spec"]["template"]["spec"]["containers"][2]["image"] = "alpine"
    warnings = pullguard.admit(review(new, old=old, operation="UPDATE"))["warnings"]
    assert len(warnings) == 1 and 'image "alpine"' in warnings[0]


def test_mutate_without_mirrors_has_no_patch(pullguard: PullguardServer) -> None:
    answer = pullguard.admit(review(manifest("deployment.yaml"), uid="m"), path="/mutate")
    assert answer == {"uid": "m", "allowed": True}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not json", "body is not JSON"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request is missing"),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"kind": {"kind": "Pod"}, "operation": "CREATE", "object": {}},
                }
            ).encode(),
            "request.uid is missing",
        ),
        (
            json.dumps(review(manifest("pod.yaml"), kind="Pod") | {"kind": "Pod"}).encode(),
            "kind must be AdmissionReview",
        ),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "x", "kind": {"kind": "Pod"}, "operation": "CREATE"},
                }
            ).encode(),
            "request.object is missing",
        ),
        (
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {
                        "uid": "x",
                        "kind": {"kind": "Pod"},
                        "operation": "CREATE",
                        "object": {"spec": {"containers": "nginx"}},
                    },
                }
            ).encode(),
            "expected a list",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/validate", "/mutate"])
def test_malformed_reviews_get_400_json(pullguard: PullguardServer, path: str, content: bytes, message: str) -> None:
    """Without a uid there is nothing to answer: HTTP 400. With one, the review is answered as the policy's
    failurePolicy says (the embedded default: open), the problem in the validating side's warning."""
    response = pullguard.client().post(path, content=content, headers={"content-type": "application/json"})
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text
    if b'"uid": "' not in content:
        assert response.status_code == 400
        assert message in response.json()["error"]
        return
    assert response.status_code == 200
    answer = response.json()["response"]
    assert answer["allowed"] is True and f'"uid": "{answer["uid"]}"'.encode() in content
    if path == "/validate":
        (warning,) = answer["warnings"]
        assert message in warning and warning.endswith("allowed by failurePolicy: open")


def test_oversized_body_gets_400(pullguard: PullguardServer) -> None:
    """Over the limit and without a uid in its head (see test_admission_refusals for one with a uid)."""
    big = b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}"
    response = pullguard.client().post("/validate", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "limit" in response.json()["error"]

    def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(MAX_BODY_BYTES // (1024 * 1024) + 1):
            yield b" " * (1024 * 1024)

    response = pullguard.client().post("/validate", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 400 and "limit" in response.json()["error"]


def test_health_readiness_and_metrics(pullguard: PullguardServer) -> None:
    client = pullguard.client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    pullguard.admit(review(manifest("invalid-image.yaml")))
    text = client.get("/metrics").text
    assert 'pullguard_admission_requests_total{decision="denied",endpoint="validate",kind="Pod"}' in text
    assert (
        'pullguard_admission_duration_seconds_bucket{decision="denied",endpoint="validate",kind="Pod",le="0.01"}'
        in text
    )
    assert 'pullguard_findings_total{check="reference",mode="enforce",reason="InvalidImageName"}' in text
    assert "pullguard_policy_valid 1.0" in text
    (expiry,) = [
        line for line in text.splitlines() if line.startswith("pullguard_certificate_expiry_timestamp_seconds ")
    ]
    served = x509.load_pem_x509_certificate((pullguard.cert_dir / "tls.crt").read_bytes())
    assert float(expiry.split()[1]) == served.not_valid_after_utc.timestamp()


def test_structured_review_log(pullguard: PullguardServer) -> None:
    pullguard.admit(review(manifest("deployment.yaml"), uid="log-me"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries = [json.loads(line) for line in pullguard.logs().splitlines() if line.startswith("{")]
        mine = [e for e in entries if e.get("uid") == "log-me"]
        if mine:
            break
        time.sleep(0.05)
    (entry,) = mine
    assert entry["msg"] == "review" and entry["kind"] == "Deployment" and entry["namespace"] == "shop"
    assert entry["user"] == "kubernetes-admin" and "patched" not in entry  # the review's userInfo; no rewrite
    assert entry["name"] == "web" and entry["decision"] == "warned" and entry["durationMs"] >= 0
    assert [f["check"] for f in entry["findings"]] == ["latestTag", "latestTag"]


def test_tls_only_with_our_ca(pullguard: PullguardServer) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(pullguard.url + "/healthz", verify=True, timeout=5)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(pullguard.url.replace("https", "http") + "/healthz", timeout=5)
    context = ssl.create_default_context(cafile=str(pullguard.ca_file))
    assert httpx.get(pullguard.url + "/healthz", verify=context, timeout=5).status_code == 200


def test_patch_decodes(pullguard_factory) -> None:  # type: ignore[no-untyped-def]
    server = pullguard_factory("mirrors: [{registry: docker.io, mirror: mirror.example.com, verify: false}]")
    answer = server.admit(review(manifest("deployment.yaml")), path="/mutate")
    assert answer["patchType"] == "JSONPatch"
    path = "/spec/template/spec/containers/0/image"
    patch = json.loads(base64.b64decode(answer["patch"]))
    assert patch[:2] == [
        {"op": "test", "path": path, "value": "nginx"},  # the image is still the one judged
        {"op": "replace", "path": path, "value": "mirror.example.com/library/nginx"},
    ]
    (annotation,) = patch[2:]
    assert annotation["op"] == "add" and annotation["path"].startswith("/metadata/annotations")
    original = annotation["value"]
    if annotation["path"] == "/metadata/annotations":
        original = original["pullguard.io/original-images"]
    else:
        assert annotation["path"] == "/metadata/annotations/pullguard.io~1original-images"
    assert json.loads(original) == {"spec.template.spec.containers[0]": "nginx"}
    assert "warnings" not in answer  # the exporter is kept without a warning: no rule applies to it


def test_the_review_log_names_the_user_and_each_rewrite(pullguard_factory) -> None:  # type: ignore[no-untyped-def]
    server = pullguard_factory("mirrors: [{registry: docker.io, mirror: mirror.example.com, verify: false}]")
    body = review(manifest("deployment.yaml"), uid="who-and-what")
    body["request"]["userInfo"] = {"username": "system:serviceaccount:ci:deployer", "groups": ["ci"]}
    server.admit(body, path="/mutate")
    deadline = time.monotonic() + 5
    while '"who-and-what"' not in server.logs():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (entry,) = [json.loads(line) for line in server.logs().splitlines() if '"who-and-what"' in line]
    assert entry["user"] == "system:serviceaccount:ci:deployer" and entry["decision"] == "patched"
    assert entry["patched"] == [
        {"path": "/spec/template/spec/containers/0/image", "from": "nginx", "to": "mirror.example.com/library/nginx"}
    ]


def test_readiness_is_a_metric_too(pullguard: PullguardServer) -> None:
    text = pullguard.client().get("/metrics").text
    assert "pullguard_ready 1.0" in text.splitlines()


CAPTURED = sorted((Path(__file__).parents[1] / "data" / "admission").glob("*.json"))


@pytest.mark.parametrize("path", CAPTURED, ids=[p.stem for p in CAPTURED])
def test_every_captured_review_is_answered(pullguard: PullguardServer, path: Path) -> None:
    """Real AdmissionReviews captured from kube-apiserver v1.37.2 (tests/data/README.md)."""
    document = json.loads(path.read_text())
    response = pullguard.post("/validate", document)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["apiVersion"] == document["apiVersion"]
    assert answer["response"]["uid"] == document["request"]["uid"]
    assert answer["response"]["allowed"] is True  # the captured objects have valid references
    for warning in answer["response"].get("warnings", []):
        assert warning.startswith("pullguard: ") and len(warning) <= 256 and "\n" not in warning


def test_metrics_on_a_plain_http_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    server = start_pullguard(tmp_path, extra_args=["--metrics-port", str(port), "--metrics-host", "127.0.0.1"])
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "pullguard_build_info{" in text and "pullguard_ready 1.0" in text.splitlines()
    finally:
        server.stop()
