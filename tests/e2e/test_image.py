"""The container image, end to end: built by ``scripts/build-image.sh`` (``make image``; cached, so warm runs only
check its inputs), pushed to a real registry, pulled and unpacked by real containerd, and run from containerd's
snapshot the way a node runs it: with runc when this machine can run containers (else chroot in a private mount
namespace), as the image's user, with a read-only root filesystem, no capabilities and only /tmp writable.

Everything stays on loopback: the registry and pullguard listen on 127.0.0.1 and pullguard runs ``--offline``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import fixtures
from tests.support.containerd import ContainerdDaemon, containerd_available, containerd_fixture, write_hosts_dir
from tests.support.image_build import (
    REPO,
    BuiltImage,
    ImageContainer,
    build_image,
    content_json,
    missing_build_tools,
    push_image,
    rootfs_bytes,
    runc_works,
    start_container,
    unpacked_rootfs,
)
from tests.support.loopback import free_port
from tests.support.registry import RegistryServer

# a cold build (mmdebstrap, wheel downloads, buildah) takes about 1.5 minutes, a source change about 40 s; the first
# test pays for it
pytestmark = [pytest.mark.registry, pytest.mark.timeout(900)]

USER = "65532:65532"
REVIEW = REPO / "tests" / "data" / "admission" / "deployment-nginx-untagged.json"
#: compressed layers today are ~78 MB (Debian base ~42 MB, the venv ~36 MB); fail on accidental bloat
MAX_COMPRESSED_BYTES = 100 * 1024 * 1024


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("PULLGUARD_REQUIRE_E2E", "") not in ("", "0"):
        pytest.fail(f"{reason} (PULLGUARD_REQUIRE_E2E=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def image() -> BuiltImage:
    missing = missing_build_tools()
    _require(not missing, f"image build tools missing: {' '.join(missing)} (Debian packages)")
    _require(containerd_available(), "containerd/ctr missing")
    return build_image()


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryServer]:
    yield from fixtures.plain_registry_fixture()


@pytest.fixture(scope="module")
def containerd() -> Iterator[ContainerdDaemon]:
    yield from containerd_fixture()


@dataclass(frozen=True)
class Pulled:
    reference: str
    namespace: str
    rootfs: Path


@pytest.fixture(scope="module")
def pulled(
    image: BuiltImage, registry: RegistryServer, containerd: ContainerdDaemon, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pulled]:
    """The image pushed to the registry, pulled by containerd (through hosts.toml, for the image's platform: this
    machine's) and unpacked."""
    reference = push_image(image, registry.host, "pullguard", "e2e")
    hosts_dir = write_hosts_dir(tmp_path_factory.mktemp("certs.d"), registry.host, server=registry.url)
    platform = f"{image.config['os']}/{image.config['architecture']}"
    result = containerd.pull(reference, hosts_dir=hosts_dir, platform=platform, keep=True, timeout=120)
    assert result.ok, result.output
    with unpacked_rootfs(containerd, result.namespace, image.chain_id) as rootfs:
        yield Pulled(reference, result.namespace, rootfs)


@pytest.fixture(scope="module")
def runtime(pulled: Pulled, tmp_path_factory: pytest.TempPathFactory) -> str:
    forced = os.environ.get("PULLGUARD_IMAGE_RUNTIME")  # runc | chroot
    if forced:
        return forced
    return "runc" if runc_works(pulled.rootfs, tmp_path_factory.mktemp("runc-probe")) else "chroot"


def pulled_config(containerd: ContainerdDaemon, pulled: Pulled, image: BuiltImage) -> dict[str, Any]:
    """The image config as containerd stored it (not as the build wrote it)."""
    manifest = content_json(containerd, pulled.namespace, image.manifest_digest)
    return content_json(containerd, pulled.namespace, manifest["config"]["digest"])


def wait_healthy(container: ImageContainer, url: str, ca_file: Path, timeout: float = 30.0) -> httpx.Client:
    """An httpx client trusting the CA the container generated, once ``/healthz`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container.process.poll() is not None:
            pytest.fail(f"the container exited with {container.process.returncode}:\n{container.log_text()}")
        if ca_file.exists():
            client = httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(ca_file)), timeout=10)
            try:
                if client.get("/healthz").status_code == 200:
                    return client
            except httpx.HTTPError:
                pass
            client.close()
        time.sleep(0.1)
    pytest.fail(f"no healthy {url}/healthz after {timeout}s:\n{container.log_text()}")


def run_once(pulled: Pulled, image: BuiltImage, runtime: str, workdir: Path, args: list[str]) -> tuple[int, str]:
    with start_container(pulled.rootfs, image.config, args, workdir, runtime=runtime) as container:
        code = container.wait(timeout=60)
        return code, container.log_text()


def test_config_runs_pullguard_as_65532(image: BuiltImage, containerd: ContainerdDaemon, pulled: Pulled) -> None:
    config = pulled_config(containerd, pulled, image)
    assert config == image.config  # the registry round trip changed nothing
    assert config["architecture"] == subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                                                     text=True, check=True).stdout.strip()  # fmt: skip
    assert config["os"] == "linux"
    settings = config["config"]
    assert settings["User"] == USER
    assert settings["Entrypoint"] == ["pullguard"]
    assert settings["Cmd"] == ["serve", "--host", "0.0.0.0", "--port", "8443", "--cert-dir", "/tmp/certs"]
    assert settings["WorkingDir"] == "/tmp"
    assert "8443/tcp" in settings["ExposedPorts"]
    env = dict(item.split("=", 1) for item in settings["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TMPDIR"] == "/tmp"
    assert env["PATH"].startswith("/opt/pullguard/bin:")


def test_size_is_recorded_and_bounded(image: BuiltImage, pulled: Pulled) -> None:
    unpacked = rootfs_bytes(pulled.rootfs)
    summary = {"compressed_bytes": image.compressed_bytes, "unpacked_bytes": unpacked,
               "layers": [layer["size"] for layer in image.manifest["layers"]]}  # fmt: skip
    (image.layout.parent / "size.json").write_text(json.dumps(summary) + "\n")
    print(f"image {image.ref_name}: {summary}")
    assert image.compressed_bytes < MAX_COMPRESSED_BYTES
    assert len(image.manifest["layers"]) == 2  # the Debian base and pullguard's layer


def test_make_image_leaves_the_oci_archive(image: BuiltImage) -> None:
    """`make image` hands on an OCI archive of exactly the image it built (dist/pullguard-<version>.tar)."""
    version = image.ref_name.split(":", 1)[1]
    archive = REPO / "dist" / f"pullguard-{version}.tar"
    done = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}:{image.ref_name}"],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert "sha256:" + hashlib.sha256(done.stdout).hexdigest() == image.manifest_digest


def test_final_stage_has_no_build_tools(pulled: Pulled) -> None:
    root = pulled.rootfs
    venv_bin = root / "opt/pullguard/bin"
    assert (venv_bin / "pullguard").is_file()
    assert not list(venv_bin.glob("pip*")), "pip left in the runtime venv"
    for tool in ("gcc", "cc", "make", "ld", "apt-get"):
        assert not (root / "usr/bin" / tool).exists(), tool
    for leftover in ("wheels", "src", "opt/build"):
        assert not (root / leftover).exists(), leftover
    # the code belongs to root: the non-root user cannot change it even with a writable root filesystem
    assert (root / "opt/pullguard").stat().st_uid == 0
    site = next((root / "opt/pullguard/lib").glob("python3.*/site-packages"))
    assert list((site / "webhook" / "__pycache__").glob("*.pyc")), "bytecode should be compiled at install time"


def test_version(pulled: Pulled, image: BuiltImage, runtime: str, tmp_path: Path) -> None:
    code, output = run_once(pulled, image, runtime, tmp_path, ["--version"])
    version = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert version
    assert (code, output.strip()) == (0, f"pullguard {version.group(1)}")


def test_read_only_root_system_roots_and_user(pulled: Pulled, image: BuiltImage, runtime: str, tmp_path: Path) -> None:
    probe = (
        "import os, ssl\n"
        "print(os.getuid(), os.getgid(), os.environ['HOME'])\n"
        "print('system CAs', ssl.create_default_context().cert_store_stats()['x509_ca'] > 100)\n"
        "for path in ('/opt/pullguard/probe', '/probe', '/tmp/probe'):\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        print(path, 'writable')\n"
        "    except OSError as exc:\n"
        "        print(path, exc.errno)\n"
    )
    config = {**image.config, "config": {**image.config["config"], "Entrypoint": ["python3", "-c", probe]}}
    with start_container(pulled.rootfs, config, [], tmp_path, runtime=runtime) as container:
        assert container.wait(timeout=60) == 0, container.log_text()
        lines = container.log_text().splitlines()
    # EROFS (30) even where root could write: the mount is read-only, not just the permissions
    assert lines == ["65532 65532 /tmp", "system CAs True", "/opt/pullguard/probe 30", "/probe 30",
                     "/tmp/probe writable"]  # fmt: skip


def test_serves_on_a_read_only_root(pulled: Pulled, image: BuiltImage, runtime: str, tmp_path: Path) -> None:
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--cert-dir", "/tmp/certs", "--offline"]
    with start_container(pulled.rootfs, image.config, args, tmp_path, runtime=runtime) as container:
        certs = container.tmp_dir / "certs"
        client = wait_healthy(container, f"https://127.0.0.1:{port}", certs / "ca.crt")
        with contextlib.closing(client):
            status = Path(f"/proc/{container.pid()}/status").read_text()
            assert re.search(r"^Uid:\s+65532\s+65532\s+65532\s+65532$", status, re.MULTILINE), status
            assert re.search(r"^Gid:\s+65532\s+65532\s+65532\s+65532$", status, re.MULTILINE), status
            response = client.post("/validate", content=REVIEW.read_bytes(),
                                   headers={"content-type": "application/json"})  # fmt: skip
            assert response.status_code == 200, response.text
            answer = response.json()["response"]
            assert answer["allowed"] is True
            assert any("has no tag" in warning for warning in answer["warnings"]), answer
            assert client.get("/metrics").status_code == 200
        # the certificates went to the emptyDir, written by the image's user; the key is private
        for name in ("ca.crt", "tls.crt", "tls.key"):
            assert (certs / name).stat().st_uid == 65532, name
        assert (certs / "tls.key").stat().st_mode & 0o077 == 0
        assert sorted(path.name for path in container.tmp_dir.iterdir()) == ["certs"]


def test_default_command_serves_on_8443(pulled: Pulled, image: BuiltImage, runtime: str, tmp_path: Path) -> None:
    """The image as a pod runs it (no args): 0.0.0.0:8443, inside a network namespace of its own (so nothing
    listens on the host), probed from within it."""
    nsenter = shutil.which("nsenter")
    assert nsenter
    with start_container(pulled.rootfs, image.config, None, tmp_path, runtime=runtime, host_network=False) as c:
        ca_file = c.tmp_dir / "certs" / "ca.crt"
        probe = (
            "import ssl, sys, httpx\n"
            "context = ssl.create_default_context(cafile=sys.argv[1])\n"
            "print(httpx.get('https://127.0.0.1:8443/healthz', verify=context, timeout=5).status_code)\n"
        )
        deadline = time.monotonic() + 30
        answer = None
        while time.monotonic() < deadline and c.process.poll() is None:
            if ca_file.exists():
                done = subprocess.run(
                    [nsenter, f"--net=/proc/{c.pid()}/ns/net", sys.executable, "-c", probe,
                     str(ca_file)],
                    capture_output=True, text=True, timeout=20, check=False,
                )  # fmt: skip
                answer = done.stdout.strip() or done.stderr.strip().splitlines()[-1]
                if answer == "200":
                    break
            time.sleep(0.2)
        assert answer == "200", f"{answer}\n{c.log_text()}"
