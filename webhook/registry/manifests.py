"""Manifest media types and the platforms an image offers, read the way containerd reads them."""

from __future__ import annotations

from typing import Any

from policies.image import platforms
from policies.image.platforms import Platform
from policies.registry_facts import INDEX_MEDIA_TYPES
from webhook.util.json_object import json_object

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = INDEX_MEDIA_TYPES
SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    }
)
MANIFEST_TYPES = INDEX_TYPES | {OCI_MANIFEST, DOCKER_MANIFEST} | SCHEMA1_TYPES
GENERIC_TYPES = frozenset({"application/json", "text/plain", "application/octet-stream", ""})
# containerd's resolver Accept list: registries answer 404 when the stored type is missing from it.
ACCEPT = ", ".join((DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX, "*/*"))
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # containerd's own limit for manifests and indexes


class MalformedManifestError(ValueError):
    pass


def media_type(content_type: str, body: bytes | None = None) -> str:
    declared = content_type.split(";", 1)[0].strip()
    if declared not in GENERIC_TYPES:
        return declared
    if body is not None:  # some registries serve everything as application/json: trust the document
        document = _json(body)
        found = document.get("mediaType")
        if isinstance(found, str):
            return found
        if "manifests" in document:
            return OCI_INDEX
    return declared


def _json(body: bytes) -> dict[str, Any]:
    try:
        return json_object(body)
    except ValueError as exc:
        raise MalformedManifestError(str(exc)) from None


def index_platforms(body: bytes) -> tuple[Platform, ...]:
    """The runnable platforms of an index: attestation entries (unknown/unknown) are not images."""
    manifests = _json(body).get("manifests")
    if not isinstance(manifests, list):
        raise MalformedManifestError("index without a manifests list")
    found: list[Platform] = []
    for entry in manifests:
        if not isinstance(entry, dict) or not isinstance(entry.get("platform"), dict):
            continue
        platform = _platform(entry["platform"])
        annotations = entry.get("annotations") if isinstance(entry.get("annotations"), dict) else None
        if platform is not None and not platforms.is_attestation(platform, annotations):
            found.append(platform)
    return tuple(dict.fromkeys(found))


def config_digest(body: bytes) -> str:
    config = _json(body).get("config")
    digest = config.get("digest") if isinstance(config, dict) else None
    if not isinstance(digest, str):
        raise MalformedManifestError("manifest without a config digest")
    return digest


def config_platform(body: bytes) -> Platform:
    platform = _platform(_json(body))
    if platform is None:
        raise MalformedManifestError("image config without os/architecture")
    return platform


def _platform(document: dict[str, Any]) -> Platform | None:
    os_name, architecture = document.get("os"), document.get("architecture")
    if not isinstance(os_name, str) or not isinstance(architecture, str) or not os_name or not architecture:
        return None
    variant = document.get("variant")
    version = document.get("os.version")
    raw = Platform(
        os_name, architecture, variant if isinstance(variant, str) else "", version if isinstance(version, str) else ""
    )
    if raw.os == "unknown" or raw.architecture == "unknown":
        return raw  # kept as is so attestation detection sees it
    return platforms.normalize(raw)
