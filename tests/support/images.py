"""Build tiny, deterministic, *real* images (manifests, configs and layers) for the test registries.

Everything is valid enough for ``skopeo copy --all``: layers are gzipped tarballs, configs carry
``rootfs.diff_ids`` matching the uncompressed layers, manifests reference blobs that exist.
Content is a pure function of ``seed`` and platform, so digests are stable across runs.

Builders (no I/O): :func:`build_image`, :func:`build_attestation`, :func:`build_index`.
Pushing them is ``support.pushers`` (:class:`ImagePusher` and one-call helpers); authenticating
the pushes is ``support.registry_auth`` (:class:`RegistryAuth`, an ``httpx.Auth``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
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
    "build_attestation",
    "build_image",
    "build_index",
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

_FIXED_TIME = "2024-01-01T00:00:00Z"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False).encode()


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


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _deterministic_tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(name).parent) for name in files} - {"."})
        for directory in dirs:
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = 0
            tar.addfile(info)
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _layer(seed: str, platform: Platform, media_type: str) -> tuple[Blob, str]:
    """A gzipped one-file tar layer; returns the blob and its diff_id."""
    tag = hashlib.sha256(f"{seed}|{platform}".encode()).hexdigest()[:16]
    tar = _deterministic_tar(
        {
            f"pullguard/{tag}.txt": f"pullguard test layer\nseed={seed}\nplatform={platform}\n".encode(),
        }
    )
    return Blob(media_type, gzip.compress(tar, compresslevel=6, mtime=0)), digest_of(tar)


def build_image(
    platform: Platform | str = LINUX_AMD64,
    *,
    oci: bool = False,
    seed: str = "pullguard",
    layers: int = 1,
) -> BuiltManifest:
    """A single-platform image: Docker schema2 (default) or OCI (``oci=True``) manifest."""
    plat = Platform.parse(platform) if isinstance(platform, str) else platform
    layer_type = OCI_LAYER if oci else DOCKER_LAYER
    built_layers: list[Blob] = []
    diff_ids: list[str] = []
    for i in range(layers):
        blob, diff_id = _layer(f"{seed}#{i}", plat, layer_type)
        built_layers.append(blob)
        diff_ids.append(diff_id)
    config_obj: dict[str, Any] = {"architecture": plat.architecture, "os": plat.os}
    if plat.variant:
        config_obj["variant"] = plat.variant
    config_obj.update(
        {
            "created": _FIXED_TIME,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/pullguard/true"],
                "Labels": {"org.opencontainers.image.title": seed},
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": _FIXED_TIME, "created_by": "pullguard test harness"} for _ in diff_ids],
        }
    )
    config = Blob(OCI_CONFIG if oci else DOCKER_CONFIG, _json_bytes(config_obj))
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(),
        "layers": [b.descriptor() for b in built_layers],
    }
    return BuiltManifest(
        kind="image",
        media_type=media_type,
        raw=_json_bytes(manifest),
        blobs=(config, *built_layers),
        platform=plat,
    )


def build_attestation(subject: BuiltManifest, *, seed: str = "pullguard") -> BuiltManifest:
    """A BuildKit-style attestation manifest for ``subject`` (an in-toto provenance layer).

    Its index entry has platform ``unknown/unknown`` and the annotations
    ``vnd.docker.reference.type: attestation-manifest`` and ``vnd.docker.reference.digest``.
    """
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [
            {
                "name": f"pkg:docker/pullguard-test@{seed}?platform={subject.platform}",
                "digest": {"sha256": subject.digest.removeprefix("sha256:")},
            }
        ],
        "predicate": {"builder": {"id": "pullguard-test-harness"}, "buildType": "pullguard"},
    }
    layer = Blob(IN_TOTO, _json_bytes(statement), {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"})
    config = Blob(
        OCI_CONFIG,
        _json_bytes(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            }
        ),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    return BuiltManifest(
        kind="attestation",
        media_type=OCI_MANIFEST,
        raw=_json_bytes(manifest),
        blobs=(config, layer),
        platform=UNKNOWN_PLATFORM,
        annotations={
            "vnd.docker.reference.digest": subject.digest,
            "vnd.docker.reference.type": "attestation-manifest",
        },
    )


def build_index(
    platforms: Iterable[Platform | str] = DEFAULT_PLATFORMS,
    *,
    docker: bool = False,
    attestations: bool = False,
    seed: str = "pullguard",
) -> BuiltManifest:
    """A multi-platform index.

    ``docker=False``: OCI index of OCI manifests, optionally with an attestation manifest per
    platform (appended after the images, like BuildKit does).  ``docker=True``: Docker manifest
    list of schema2 manifests (attestations are OCI-only and rejected).
    """
    if docker and attestations:
        raise ValueError("attestation manifests only exist in OCI indexes")
    images = [build_image(p, oci=not docker, seed=seed) for p in platforms]
    children: list[BuiltManifest] = list(images)
    if attestations:
        children += [build_attestation(img, seed=seed) for img in images]
    media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
    index = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [c.index_entry() for c in children],
    }
    return BuiltManifest(kind="index", media_type=media_type, raw=_json_bytes(index), children=tuple(children))


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Pushing
# --------------------------------------------------------------------------------------------
