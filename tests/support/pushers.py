"""Push built images to a registry through the HTTP API (monolithic blob uploads, manifest PUTs)."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self
from urllib.parse import urljoin

import httpx

from .image_model import (
    ACCEPT_ALL_MANIFESTS,
    DEFAULT_PLATFORMS,
    LINUX_AMD64,
    LINUX_ARM64_V8,
    Blob,
    BuiltManifest,
    Platform,
    PushedImage,
)
from .images import build_image, build_index
from .registry_auth import RegistryAuth

__all__ = [
    "ImagePusher",
    "PushError",
    "RegistryEndpoint",
    "StandardImages",
    "fetch_manifest",
    "push_arm64_only_index",
    "push_manifest_list",
    "push_multiarch_index",
    "push_single_arch",
    "push_standard_images",
]


class RegistryEndpoint(Protocol):
    """What the pushers need from a registry (``RegistryServer`` satisfies it)."""

    @property
    def url(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...


class PushError(RuntimeError):
    def __init__(self, what: str, response: httpx.Response) -> None:
        super().__init__(f"{what}: HTTP {response.status_code} {response.text[:500]}")
        self.response = response


class ImagePusher:
    """Pushes blobs and manifests with an ``httpx.Client`` (one token covers pull+push)."""

    def __init__(
        self,
        registry: RegistryEndpoint,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.registry = registry
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(registry.ca_file)) if registry.ca_file else True
        )
        self.auth = RegistryAuth(
            username if username is not None else registry.username,
            password if password is not None else registry.password,
            actions=("pull", "push"),
        )
        self.client = httpx.Client(base_url=registry.url, verify=verify, auth=self.auth, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def push_blob(self, repository: str, blob: Blob) -> None:
        """Upload ``blob`` unless present: ``POST /blobs/uploads/`` then monolithic ``PUT ?digest=``."""
        head = self.client.head(f"/v2/{repository}/blobs/{blob.digest}")
        if head.status_code == 200:
            return
        start = self.client.post(f"/v2/{repository}/blobs/uploads/", headers={"Content-Length": "0"})
        if start.status_code != 202 or "location" not in start.headers:
            raise PushError(f"starting upload of {blob.digest} to {repository}", start)
        # Keep the upload URL's own query (``_state``); httpx's ``params=`` would replace it.
        location = httpx.URL(urljoin(self.registry.url + "/", start.headers["location"]))
        put = self.client.put(
            location.copy_merge_params({"digest": blob.digest}),
            content=blob.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if put.status_code != 201:
            raise PushError(f"uploading {blob.digest} to {repository}", put)

    def push_manifest(self, repository: str, reference: str, manifest: BuiltManifest) -> str:
        """``PUT /v2/<repository>/manifests/<reference>``; returns (and checks) the digest."""
        response = self.client.put(
            f"/v2/{repository}/manifests/{reference}",
            content=manifest.raw,
            headers={"Content-Type": manifest.media_type},
        )
        if response.status_code != 201:
            raise PushError(f"putting manifest {repository}:{reference}", response)
        returned = response.headers.get("docker-content-digest")
        if returned and returned != manifest.digest:
            raise AssertionError(f"registry digest {returned} != computed {manifest.digest}")
        return manifest.digest

    def push(self, repository: str, tag: str | None, manifest: BuiltManifest) -> PushedImage:
        """Push ``manifest`` with all blobs and children, tagged ``tag`` (None: by digest only)."""
        for child in manifest.children:
            self.push(repository, None, child)
        for blob in manifest.blobs:
            self.push_blob(repository, blob)
        self.push_manifest(repository, tag if tag is not None else manifest.digest, manifest)
        return PushedImage(self.registry.host, repository, tag, manifest)


def _push(registry: RegistryEndpoint, repository: str, tag: str | None, manifest: BuiltManifest) -> PushedImage:
    with ImagePusher(registry) as pusher:
        return pusher.push(repository, tag, manifest)


def push_single_arch(
    registry: RegistryEndpoint,
    repository: str,
    tag: str = "latest",
    *,
    platform: Platform | str = LINUX_AMD64,
    oci: bool = False,
    seed: str | None = None,
) -> PushedImage:
    """Push one image (Docker schema2, or OCI with ``oci=True``). ``seed`` defaults to ``repo:tag``."""
    image = build_image(platform, oci=oci, seed=seed or f"{repository}:{tag}")
    return _push(registry, repository, tag, image)


def push_multiarch_index(
    registry: RegistryEndpoint,
    repository: str,
    tag: str = "latest",
    *,
    platforms: Iterable[Platform | str] = DEFAULT_PLATFORMS,
    attestations: bool = True,
    seed: str | None = None,
) -> PushedImage:
    """Push an OCI index (amd64, arm64/v8, arm/v7 by default) with attestation manifests."""
    index = build_index(platforms, attestations=attestations, seed=seed or f"{repository}:{tag}")
    return _push(registry, repository, tag, index)


def push_manifest_list(
    registry: RegistryEndpoint,
    repository: str,
    tag: str = "latest",
    *,
    platforms: Iterable[Platform | str] = DEFAULT_PLATFORMS,
    seed: str | None = None,
) -> PushedImage:
    """Push a Docker manifest list of schema2 images."""
    index = build_index(platforms, docker=True, seed=seed or f"{repository}:{tag}")
    return _push(registry, repository, tag, index)


def push_arm64_only_index(
    registry: RegistryEndpoint,
    repository: str,
    tag: str = "latest",
    *,
    attestations: bool = False,
    seed: str | None = None,
) -> PushedImage:
    """Push an OCI index holding only linux/arm64/v8 (the "no amd64 build" case)."""
    index = build_index([LINUX_ARM64_V8], attestations=attestations, seed=seed or f"{repository}:{tag}")
    return _push(registry, repository, tag, index)


@dataclass(frozen=True)
class StandardImages:
    """The stock image set :func:`push_standard_images` pushes (one repository each)."""

    docker_v2: PushedImage
    oci_single: PushedImage
    oci_index: PushedImage
    docker_list: PushedImage
    arm64_only: PushedImage

    def all(self) -> tuple[PushedImage, ...]:
        return (self.docker_v2, self.oci_single, self.oci_index, self.docker_list, self.arm64_only)


def push_standard_images(registry: RegistryEndpoint, *, prefix: str = "harness", tag: str = "1.0") -> StandardImages:
    """Push one of each image kind to ``<prefix>/<kind>:<tag>``."""
    with ImagePusher(registry) as pusher:

        def push(repo: str, manifest: BuiltManifest) -> PushedImage:
            return pusher.push(repo, tag, manifest)

        def seed(name: str) -> str:
            return f"{prefix}/{name}:{tag}"

        return StandardImages(
            docker_v2=push(f"{prefix}/docker-v2", build_image(LINUX_AMD64, seed=seed("docker-v2"))),
            oci_single=push(f"{prefix}/oci-single", build_image(LINUX_AMD64, oci=True, seed=seed("oci-single"))),
            oci_index=push(f"{prefix}/oci-index", build_index(attestations=True, seed=seed("oci-index"))),
            docker_list=push(f"{prefix}/docker-list", build_index(docker=True, seed=seed("docker-list"))),
            arm64_only=push(f"{prefix}/arm64-only", build_index([LINUX_ARM64_V8], seed=seed("arm64-only"))),
        )


def fetch_manifest(
    client: httpx.Client,
    repository: str,
    reference: str,
    *,
    accept: str | Sequence[str] = ACCEPT_ALL_MANIFESTS,
    method: Literal["GET", "HEAD"] = "GET",
) -> httpx.Response:
    """``GET``/``HEAD /v2/<repository>/manifests/<reference>`` with an Accept header."""
    header = accept if isinstance(accept, str) else ", ".join(accept)
    return client.request(method, f"/v2/{repository}/manifests/{reference}", headers={"Accept": header})
