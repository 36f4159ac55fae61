"""Build tiny, deterministic, *real* images (manifests, configs and layers) for the test registries.

Everything is valid enough for ``skopeo copy --all``: layers are gzipped tarballs, configs carry
``rootfs.diff_ids`` matching the uncompressed layers, manifests reference blobs that exist.
Content is a pure function of ``seed`` and platform, so digests are stable across runs.

Builders (no I/O): :func:`build_image`, :func:`build_attestation`, :func:`build_index`; what they build
(media types, :class:`Platform`, :class:`Blob`, :class:`BuiltManifest`, :class:`PushedImage`) is
``support.image_model``.
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
from pathlib import Path
from typing import Any

from .image_model import (
    DEFAULT_PLATFORMS,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    IN_TOTO,
    LINUX_AMD64,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    UNKNOWN_PLATFORM,
    Blob,
    BuiltManifest,
    Platform,
    digest_of,
)

__all__ = [
    "build_attestation",
    "build_image",
    "build_index",
]

_FIXED_TIME = "2024-01-01T00:00:00Z"


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False).encode()


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
