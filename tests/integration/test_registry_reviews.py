"""The whole webhook with registry lookups: `pullguard serve` (online) and `pullguard check` against real
registries on loopback, mapped through a containerd hosts directory in the policy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.registry_helpers import map_host
from tests.reviews import review
from tests.server import PullguardServer
from tests.support.faults import start_blackhole
from tests.support.pushers import StandardImages
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.registry


def deployment(*images: str) -> dict:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": containers}}},
    }


def policy(hosts: Path, extra: str = "") -> str:
    return f"registry: {{hostsDir: {json.dumps(str(hosts))}, timeoutSeconds: 1}}\n{extra}"


@pytest.fixture
def hosts(tmp_path: Path, plain_registry: RegistryServer) -> Path:
    return map_host(tmp_path / "certs.d", plain_registry.host, plain_registry.url)


def test_warn_and_enforce_on_a_missing_tag(
    pullguard_factory: Callable[..., PullguardServer], hosts: Path, standard_images: StandardImages
) -> None:
    good = f"{standard_images.oci_index.host}/harness/oci-index:1.0"
    missing = f"{standard_images.oci_index.host}/harness/oci-index:1.1"
    server = pullguard_factory(policy(hosts), offline=False)
    answer = server.admit(review(deployment(good, missing)))
    assert answer["allowed"] is True
    (warning,) = answer["warnings"]
    assert f'image "{missing}": not found in registry {standard_images.oci_index.host}' in warning
    assert "existing tags closest to it: 1.0" in warning

    assert server.policy_path is not None
    server.policy_path.write_text(policy(hosts, "checks: {imageExists: {mode: enforce}}"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server.admit(review(deployment(missing)))["allowed"]:
        time.sleep(0.2)
    denied = server.admit(review(deployment(good, missing)))
    assert denied["allowed"] is False
    assert "[ErrImagePull]" in denied["status"]["message"] and missing in denied["status"]["message"]
    metrics = server.client().get("/metrics").text
    assert 'pullguard_registry_lookups_total{status="notFound"}' in metrics
    assert 'pullguard_registry_cache_total{result="hit"}' in metrics


def test_unreachable_registry_follows_failure_policy_within_the_deadline(
    pullguard_factory: Callable[..., PullguardServer], tmp_path: Path
) -> None:
    with start_blackhole(lifetime=60) as blackhole:
        hosts = map_host(tmp_path / "certs.d", "registry.example.com", blackhole.url)
        image = "registry.example.com/team/app:1.0"
        open_server = pullguard_factory(policy(hosts, "checks: {imageExists: {mode: enforce}}"), offline=False)
        started = time.monotonic()
        answer = open_server.admit(review(deployment(image)))
        assert time.monotonic() - started < 2.5
        assert answer["allowed"] is True
        assert "could not verify" in answer["warnings"][0]
        closed = pullguard_factory(
            policy(hosts, "failurePolicy: closed\nchecks: {imageExists: {mode: enforce}}"), offline=False
        )
        started = time.monotonic()
        answer = closed.admit(review(deployment(image)))
        assert time.monotonic() - started < 2.5
        assert answer["allowed"] is False
        assert "[Unverified]" in answer["status"]["message"]


def test_check_cli_looks_images_up(hosts: Path, standard_images: StandardImages, tmp_path: Path) -> None:
    host = standard_images.oci_index.host
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(json.dumps(deployment(f"{host}/harness/oci-index:1.0", f"{host}/harness/oci-index:9.9")))
    config = tmp_path / "policy.yaml"
    config.write_text(policy(hosts, "checks: {imageExists: {mode: enforce}}"))
    command = [
        sys.executable,
        "-m",
        "webhook.cli",
        "check",
        "-f",
        str(manifest),
        "--config",
        str(config),
        "--format",
        "json",
    ]
    online = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert online.returncode == 1, online.stderr
    (finding,) = json.loads(online.stdout)["findings"]
    assert (finding["check"], finding["reason"], finding["image"]) == (
        "imageExists",
        "ErrImagePull",
        f"{host}/harness/oci-index:9.9",
    )
    offline = subprocess.run([*command, "--offline"], capture_output=True, text=True, timeout=60, check=False)
    assert offline.returncode == 0
    assert json.loads(offline.stdout)["findings"] == []


def test_mirror_rewrite_only_when_the_mirror_serves_the_image(
    pullguard_factory: Callable[..., PullguardServer],
    hosts: Path,
    plain_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    """/mutate rewrites upstream.example.com images to the mirror (the loopback registry, mapped in hostsDir)
    only for images the mirror has, and warns about the one it keeps; with `privateImages: allow` the source,
    upstream.example.com, is never contacted."""
    import base64

    mirror = plain_registry.host
    rules = f"mirrors: [{{registry: upstream.example.com, mirror: '{mirror}', verify: true, privateImages: allow}}]"
    server = pullguard_factory(policy(hosts, rules), offline=False)
    served = "upstream.example.com/harness/oci-index:1.0"
    missing = "upstream.example.com/harness/oci-index:7.7"
    answer = server.admit(review(deployment(served, missing)), path="/mutate")
    patch = json.loads(base64.b64decode(answer["patch"]))
    assert [op for op in patch if op["op"] == "replace"] == [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": f"{mirror}/harness/oci-index:1.0"}
    ]
    assert answer["warnings"] == [
        f"pullguard: kept {missing}: mirror {mirror} has no such manifest: it is pulled from its source"
    ]
    assert answer["allowed"] is True
