"""Proves the tests/support harness against the real CNCF distribution 2.8 binary: every image kind pushed to a plain
registry round-trips (tags, digests, index children, configs, layers), and 2.8's Accept quirks."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.registry_harness.helpers import errors
from tests.support.image_model import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, PushedImage
from tests.support.images import build_image
from tests.support.pushers import StandardImages, fetch_manifest
from tests.support.registry import (
    RegistryServer,
    registry_available,
    skip_reason,
)

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(not registry_available(), reason=skip_reason()),
]


@pytest.fixture
def plain_client(plain: RegistryServer) -> Iterator[httpx.Client]:
    with plain.client() as client:
        yield client


# --------------------------------------------------------------------------------------------
# (a) plain registry: every image kind round-trips
# --------------------------------------------------------------------------------------------

KINDS = ["docker_v2", "oci_single", "oci_index", "docker_list", "arm64_only"]
EXPECTED_TYPES = {
    "docker_v2": DOCKER_MANIFEST,
    "oci_single": OCI_MANIFEST,
    "oci_index": OCI_INDEX,
    "docker_list": DOCKER_MANIFEST_LIST,
    "arm64_only": OCI_INDEX,
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_round_trips(images: StandardImages, plain_client: httpx.Client, kind: str) -> None:
    image: PushedImage = getattr(images, kind)
    assert image.media_type == EXPECTED_TYPES[kind]
    for reference in (image.tag, image.digest):
        assert reference is not None
        response = fetch_manifest(plain_client, image.repository, reference, accept=image.media_type)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == image.media_type
        assert response.headers["docker-content-digest"] == image.digest
        assert "sha256:" + hashlib.sha256(response.content).hexdigest() == image.digest
        assert response.content == image.raw
    head = fetch_manifest(plain_client, image.repository, image.tag or "", method="HEAD")
    assert head.status_code == 200
    assert head.headers["docker-content-digest"] == image.digest
    assert int(head.headers["content-length"]) == len(image.raw)


@pytest.mark.parametrize("kind", ["oci_index", "docker_list", "arm64_only"])
def test_index_children_and_configs(images: StandardImages, plain_client: httpx.Client, kind: str) -> None:
    image: PushedImage = getattr(images, kind)
    index = json.loads(fetch_manifest(plain_client, image.repository, image.digest).content)
    entries = index["manifests"]
    assert [e["digest"] for e in entries] == [c.digest for c in image.manifest.children]
    for child in image.manifest.images:
        response = fetch_manifest(plain_client, image.repository, child.digest, accept=child.media_type)
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == child.digest
        config_desc = response.json()["config"]
        blob = plain_client.get(f"/v2/{image.repository}/blobs/{config_desc['digest']}")
        assert blob.status_code == 200
        config = blob.json()
        assert child.platform is not None
        assert (config["os"], config["architecture"], config.get("variant")) == (
            child.platform.os,
            child.platform.architecture,
            child.platform.variant,
        )
        for layer in child.layers:
            got = plain_client.get(f"/v2/{image.repository}/blobs/{layer.digest}")
            assert got.status_code == 200
            assert got.content == layer.data


def test_multiarch_index_shape(images: StandardImages) -> None:
    entries = images.oci_index.manifest.json["manifests"]
    platforms = [
        "/".join(filter(None, (e["platform"]["os"], e["platform"]["architecture"], e["platform"].get("variant"))))
        for e in entries
    ]
    assert platforms == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", *(["unknown/unknown"] * 3)]
    image_digests = [e["digest"] for e in entries[:3]]
    for entry, subject in zip(entries[3:], image_digests, strict=True):
        assert entry["annotations"] == {
            "vnd.docker.reference.digest": subject,
            "vnd.docker.reference.type": "attestation-manifest",
        }
    assert set(images.arm64_only.platform_digests) == {"linux/arm64/v8"}
    assert set(images.docker_list.platform_digests) == {"linux/amd64", "linux/arm64/v8", "linux/arm/v7"}


def test_digests_are_deterministic() -> None:
    assert build_image(seed="same").digest == build_image(seed="same").digest
    assert build_image(seed="same").digest != build_image(seed="other").digest


def test_missing_tag_is_manifest_unknown(images: StandardImages, plain_client: httpx.Client) -> None:
    head = fetch_manifest(plain_client, images.oci_index.repository, "no-such-tag", method="HEAD")
    assert head.status_code == 404
    assert head.content == b""  # HEAD carries no body: only GET shows the error code
    get = fetch_manifest(plain_client, images.oci_index.repository, "no-such-tag")
    assert get.status_code == 404
    assert errors(get) == ["MANIFEST_UNKNOWN"]
    unknown_repo = plain_client.get("/v2/no/such-repo/tags/list")
    assert unknown_repo.status_code == 404
    assert errors(unknown_repo) == ["NAME_UNKNOWN"]


def test_distribution_28_accept_quirks(images: StandardImages, plain_client: httpx.Client) -> None:
    """Real 2.8 behaviour clients must cope with (documented in tests/support/README.md)."""
    # An OCI index (or manifest) is 404 MANIFEST_UNKNOWN unless its media type is accepted.
    oci = fetch_manifest(plain_client, images.oci_index.repository, "1.0", accept=DOCKER_MANIFEST)
    assert oci.status_code == 404
    assert errors(oci) == ["MANIFEST_UNKNOWN"]
    # A Docker manifest list asked for with only schema2 accepted is rewritten to linux/amd64.
    amd64 = fetch_manifest(plain_client, images.docker_list.repository, "1.0", accept=DOCKER_MANIFEST)
    assert amd64.status_code == 200
    assert amd64.headers["docker-content-digest"] == images.docker_list.platform_digests["linux/amd64"]


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_copies_every_platform(images: StandardImages, plain: RegistryServer, tmp_path: Path) -> None:
    """An independent client validates layers, configs and digests of the pushed index."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    result = subprocess.run(
        [
            "skopeo",
            "--policy",
            str(policy),
            "copy",
            "--all",
            "--src-tls-verify=false",
            f"docker://{images.oci_index.reference}",
            f"oci:{tmp_path / 'layout'}:copied",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == images.oci_index.digest
