"""`pullguard check` in a pipeline: one total budget (--timeout) shared by the registry lookups, progress on stderr
only, --fail-on warn|enforce and --namespace for manifests that carry none. A real subprocess, a real registry
behind a slow proxy (loopback only; every run bounded)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.registry_helpers import map_host
from tests.reviews import DATA
from tests.support.delaying_proxy import DelayingProxy, start_delaying_proxy
from tests.support.images import build_image
from tests.support.pushers import ImagePusher
from tests.support.registry import RegistryServer

IMAGES = 40
DELAY_MS = 800  # per request, as the issue measured it
REPOSITORY = "pipeline/app"


def check(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pod(name: str, image: str, namespace: str | None = "ci", **spec: object) -> dict:
    metadata: dict[str, str] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": image}], **spec},
    }


def write(path: Path, *objects: dict) -> Path:
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def pushed_tags(plain_registry: RegistryServer) -> list[str]:
    """IMAGES distinct single-arch images, one tag each, in one repository."""
    tags = [f"v{i}" for i in range(IMAGES)]
    with ImagePusher(plain_registry) as pusher:
        for tag in tags:
            pusher.push(REPOSITORY, tag, build_image(seed=f"{REPOSITORY}:{tag}"))
    return tags


@pytest.fixture
def slow(plain_registry: RegistryServer) -> Iterator[DelayingProxy]:
    with start_delaying_proxy(plain_registry.url, delay_ms=DELAY_MS, lifetime=180) as proxy:
        yield proxy


def slow_setup(tmp_path: Path, proxy: DelayingProxy, tags: list[str]) -> tuple[Path, Path]:
    hosts = map_host(tmp_path / "certs.d", "registry.example.com", proxy.url)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"mode: enforce\nregistry: {{hostsDir: {json.dumps(str(hosts))}}}\n")
    pods = [pod(f"p{i}", f"registry.example.com/{REPOSITORY}:{tag}") for i, tag in enumerate(tags)]
    pods.append(pod("missing", f"registry.example.com/{REPOSITORY}:no-such-tag"))
    return policy, write(tmp_path / "pods.yaml", *pods)


@pytest.mark.registry
def test_a_slow_registry_verifies_every_image_within_a_total_budget(
    pushed_tags: list[str], slow: DelayingProxy, tmp_path: Path
) -> None:
    """40 images at 0.8 s a request: the per-review 3 s budget left every one `Unverified`; a total budget shared
    by the run verifies them all, and progress goes to stderr while stdout stays the report."""
    policy, manifest = slow_setup(tmp_path, slow, pushed_tags)
    started = time.monotonic()
    result = check(
        "--config", str(policy), "-f", str(manifest), "--format", "json", "--timeout", "90",
        "--progress", "lines", "--progress-interval", "1",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr  # the missing tag, enforced
    report = json.loads(result.stdout)  # nothing but the report on stdout
    got = [(f["name"], f["reason"]) for f in report["findings"]]
    assert got == [("missing", "ErrImagePull")], got
    assert report["summary"]["images"] == IMAGES + 1
    progress = [line for line in result.stderr.splitlines() if line.startswith("pullguard check: workloads ")]
    assert progress, result.stderr
    assert "of 90s" in progress[-1] and f"/{IMAGES + 1}" in progress[-1]
    assert elapsed < 80


@pytest.mark.registry
def test_what_the_budget_leaves_unknown_is_could_not_verify(
    pushed_tags: list[str], slow: DelayingProxy, tmp_path: Path
) -> None:
    policy, manifest = slow_setup(tmp_path, slow, pushed_tags)
    started = time.monotonic()
    result = check("--config", str(policy), "-f", str(manifest), "--format", "json", "--timeout", "2")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr  # failurePolicy open: unknowns do not deny
    findings = json.loads(result.stdout)["findings"]
    unverified = [f for f in findings if f["reason"] == "Unverified"]
    assert unverified, findings
    assert all("--timeout budget of 2s" in f["message"] for f in unverified), unverified[0]["message"]
    assert not [f for f in findings if f["reason"] == "ErrImagePull" and f["name"] != "missing"]
    assert elapsed < 2 + 6  # the budget plus interpreter start and rendering


def test_fail_on_warn_fails_on_warnings_but_not_on_advisories(tmp_path: Path) -> None:
    manifest = str(DATA / "manifests" / "deployment.yaml")  # latestTag warnings only
    default = check("-f", manifest, "--offline", "--format", "json")
    assert default.returncode == 0
    assert json.loads(default.stdout)["summary"]["failOn"] == "enforce"
    strict = check("-f", manifest, "--offline", "--format", "json", "--fail-on", "warn")
    assert strict.returncode == 1
    summary = json.loads(strict.stdout)["summary"]
    assert (summary["enforced"], summary["failing"], summary["exitCode"]) == (0, 2, 1)
    assert "--fail-on warn" in strict.stderr
    table = check("-f", manifest, "--offline", "--fail-on", "warn")
    assert "2 failing (--fail-on warn)" in table.stdout

    # A node-local registry is advisory (each node has its own): never a failure, even at --fail-on warn.
    local = write(tmp_path / "local.yaml", pod("p", "localhost:5000/app:1.0"))
    advisory = check("-f", str(local), "--format", "json", "--fail-on", "warn")
    findings = json.loads(advisory.stdout)["findings"]
    assert [f["check"] for f in findings] == ["imageExists"], findings
    assert advisory.returncode == 0, advisory.stdout


def test_namespace_applies_to_objects_that_name_none(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("namespaces: {team-a: {mode: enforce}}\n")
    manifest = write(tmp_path / "pod.yaml", pod("web", "nginx", namespace=None))

    before = check("--config", str(policy), "-f", str(manifest), "--offline", "--format", "json")
    assert before.returncode == 0
    assert {f["namespace"] for f in json.loads(before.stdout)["findings"]} == {"default"}

    result = check(
        "--config", str(policy), "-f", str(manifest), "--offline", "--format", "json", "--namespace", "team-a"
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert {(f["namespace"], f["denies"]) for f in json.loads(result.stdout)["findings"]} == {("team-a", True)}

    named = write(tmp_path / "named.yaml", pod("web", "nginx", namespace="other"))
    kept = check("--config", str(policy), "-f", str(named), "--offline", "--format", "json", "--namespace", "team-a")
    assert {f["namespace"] for f in json.loads(kept.stdout)["findings"]} == {"other"}

    excluded = check("-f", str(manifest), "--offline", "--format", "json", "--namespace", "kube-system")
    (skipped,) = json.loads(excluded.stdout)["skipped"]
    assert skipped["namespace"] == "kube-system" and "excluded" in skipped["reason"]


def test_namespace_also_places_secrets_that_name_none(tmp_path: Path) -> None:
    """A Secret and a Pod without namespaces, applied with -n shop: the Secret is the pod's, not missing."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "regcred"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "eyJhdXRocyI6IHt9fQ=="},  # {"auths": {}}
    }
    workload = pod("web", "registry.example.com/web:1.0", namespace=None, imagePullSecrets=[{"name": "regcred"}])
    manifest = write(tmp_path / "all.yaml", secret, workload)
    result = check("-f", str(manifest), "--offline", "--complete-input", "--namespace", "shop", "--format", "json")
    messages = [f["message"] for f in json.loads(result.stdout)["findings"]]
    assert not [m for m in messages if "does not exist" in m], messages


def test_timeout_must_be_positive() -> None:
    result = check("-f", "-", "--timeout", "0", stdin="")
    assert result.returncode == 2 and "positive number of seconds" in result.stderr
