"""The data model of the test images: media types, platforms, blobs, built manifests (image, attestation, index)
and pushed images, with their digests and descriptors.

Building them is ``support.images`` (:func:`build_image`, :func:`build_attestation`, :func:`build_index`);
pushing them is ``support.pushers``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

__all__ = [
    "ACCEPT_ALL_MANIFESTS",
    "ATTESTATION_ANNOTATIONS",
    "DEFAULT_PLATFORMS",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "IN_TOTO",
    "LINUX_AMD64",
    "LINUX_ARM64_V8",
    "LINUX_ARM_V7",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "UNKNOWN_PLATFORM",
    "Blob",
    "BuiltManifest",
    "Platform",
    "PushedImage",
    "digest_of",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
IN_TOTO = "application/vnd.in-toto+json"

#: Accept header listing every manifest type (what a multi-arch-aware client sends).
ACCEPT_ALL_MANIFESTS = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

ATTESTATION_ANNOTATIONS = ("vnd.docker.reference.type", "vnd.docker.reference.digest")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``"linux/arm64/v8"`` -> ``Platform("linux", "arm64", "v8")``."""
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"bad platform {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def as_dict(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


LINUX_AMD64 = Platform("linux", "amd64")
LINUX_ARM64_V8 = Platform("linux", "arm64", "v8")
LINUX_ARM_V7 = Platform("linux", "arm", "v7")
UNKNOWN_PLATFORM = Platform("unknown", "unknown")
DEFAULT_PLATFORMS: tuple[Platform, ...] = (LINUX_AMD64, LINUX_ARM64_V8, LINUX_ARM_V7)


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)
    annotations: Mapping[str, str] | None = None

    @cached_property
    def digest(self) -> str:
        return digest_of(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


ManifestKind = Literal["image", "attestation", "index"]


@dataclass(frozen=True)
class BuiltManifest:
    """A manifest (image, attestation or index) and everything it references."""

    kind: ManifestKind
    media_type: str
    raw: bytes = field(repr=False)
    #: config + layers (images) - uploaded before the manifest.
    blobs: tuple[Blob, ...] = ()
    #: child manifests (indexes) - uploaded by digest before the index.
    children: tuple[BuiltManifest, ...] = ()
    #: platform as written in the parent index entry.
    platform: Platform | None = None
    #: annotations as written in the parent index entry.
    annotations: Mapping[str, str] | None = None

    @cached_property
    def digest(self) -> str:
        return digest_of(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    @cached_property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed

    @property
    def config(self) -> Blob | None:
        return self.blobs[0] if self.kind != "index" and self.blobs else None

    @property
    def layers(self) -> tuple[Blob, ...]:
        return self.blobs[1:] if self.kind != "index" else ()

    @property
    def images(self) -> tuple[BuiltManifest, ...]:
        """Platform image manifests of an index (attestations excluded)."""
        return tuple(c for c in self.children if c.kind == "image")

    @property
    def attestations(self) -> tuple[BuiltManifest, ...]:
        return tuple(c for c in self.children if c.kind == "attestation")

    def for_platform(self, platform: Platform | str) -> BuiltManifest:
        wanted = Platform.parse(platform) if isinstance(platform, str) else platform
        for child in self.images:
            if child.platform == wanted:
                return child
        raise KeyError(f"no {wanted} manifest in this index")

    def index_entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform is not None:
            out["platform"] = self.platform.as_dict()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class PushedImage:
    """A manifest pushed as ``host/repository:tag``."""

    host: str
    repository: str
    tag: str | None
    manifest: BuiltManifest

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def media_type(self) -> str:
        return self.manifest.media_type

    @property
    def raw(self) -> bytes:
        return self.manifest.raw

    @property
    def reference(self) -> str:
        """``host/repo:tag`` (or the digest reference when pushed untagged)."""
        if self.tag is None:
            return self.digest_reference
        return f"{self.host}/{self.repository}:{self.tag}"

    @property
    def digest_reference(self) -> str:
        return f"{self.host}/{self.repository}@{self.digest}"

    @property
    def platform_digests(self) -> dict[str, str]:
        """``{"linux/amd64": "sha256:..."}`` for an index; ``{platform: digest}`` for one image."""
        if self.manifest.kind == "index":
            return {str(c.platform): c.digest for c in self.manifest.images}
        return {str(self.manifest.platform): self.digest}

    def for_platform(self, platform: Platform | str) -> BuiltManifest:
        return self.manifest.for_platform(platform)
