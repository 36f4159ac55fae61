"""Build tiny, deterministic, *real* images and push them through the registry HTTP API.

Everything is valid enough for ``skopeo copy --all``: layers are gzipped tarballs, configs carry
``rootfs.diff_ids`` matching the uncompressed layers, manifests reference blobs that exist.
Content is a pure function of ``seed`` and platform, so digests are stable across runs.

Builders (no I/O): :func:`build_image`, :func:`build_attestation`, :func:`build_index`.
Pushers: :class:`ImagePusher` (blob upload ``POST`` + monolithic ``PUT``, manifest ``PUT``) and
the one-call helpers :func:`push_single_arch`, :func:`push_multiarch_index`,
:func:`push_manifest_list`, :func:`push_arm64_only_index`, :func:`push_standard_images`.
Authentication (HTTP Basic and the Docker Bearer-token dance) is :class:`RegistryAuth`, an
``httpx.Auth`` usable with sync and async clients.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import ssl
import tarfile
import threading
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self
from urllib.parse import urljoin

import httpx

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
    "Challenge",
    "ImagePusher",
    "Platform",
    "PushError",
    "PushedImage",
    "RegistryAuth",
    "RegistryEndpoint",
    "StandardImages",
    "build_attestation",
    "build_image",
    "build_index",
    "digest_of",
    "fetch_manifest",
    "parse_www_authenticate",
    "push_arm64_only_index",
    "push_manifest_list",
    "push_multiarch_index",
    "push_single_arch",
    "push_standard_images",
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

_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags)/")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-cased: "basic" or "bearer"
    params: dict[str, str]


def parse_www_authenticate(values: Iterable[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (one challenge per header, as registries send)."""
    out: list[Challenge] = []
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        params: dict[str, str] = {}
        pos = 0
        while pos < len(rest):
            m = _CHALLENGE_PARAM.match(rest, pos)
            if not m or m.end() == pos:
                break
            quoted, bare = m.group(2), m.group(3)
            params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            pos = m.end()
        out.append(Challenge(scheme.lower(), params))
    return out


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _widen(scope: str, actions: Sequence[str]) -> str:
    parts = scope.rsplit(":", 1)
    if len(parts) != 2 or not scope.startswith("repository"):
        return scope
    merged = list(dict.fromkeys([*(a for a in parts[1].split(",") if a), *actions]))
    return f"{parts[0]}:{','.join(merged)}"


class RegistryAuth(httpx.Auth):
    """Answers registry ``401`` challenges: Basic, or the Bearer token dance.

    Tokens are cached per registry origin and repository name (``/v2/<name>/...``) and sent
    pre-emptively; a ``401`` with a cached token (expired, or ``insufficient_scope``) fetches a
    new one once.  If the token endpoint refuses, the caller gets the *token endpoint's*
    response (e.g. its 401) - check ``response.url``.  ``actions`` widens every requested
    repository scope, e.g. ``("pull", "push")`` to get one token good for a whole push.
    """

    requires_response_body = True

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        actions: Sequence[str] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.actions: tuple[str, ...] = tuple(actions or ())
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], str] = {}  # (origin, repository) -> token
        self._basic_origins: set[str] = set()
        #: number of token-endpoint round trips made
        self.token_fetches = 0

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._basic_origins.clear()

    def _creds(self) -> tuple[str, str] | None:
        if self.username is None:
            return None
        return self.username, self.password or ""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        m = _REPO_PATH.match(request.url.path)
        repo = m["name"] if m else ""
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        creds = self._creds()
        with self._lock:
            cached = self._tokens.get((origin, repo))
            basic_seen = origin in self._basic_origins
        if cached is not None:
            request.headers["Authorization"] = f"Bearer {cached}"
        elif basic_seen and creds is not None:
            request.headers["Authorization"] = _basic(*creds)
        response = yield request
        if response.status_code != 401:
            return
        challenges = parse_www_authenticate(response.headers.get_list("www-authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and "realm" in bearer.params:
            params: list[tuple[str, str]] = []
            if "service" in bearer.params:
                params.append(("service", bearer.params["service"]))
            for scope in bearer.params.get("scope", "").split(" "):
                if scope:
                    params.append(("scope", _widen(scope, self.actions)))
            if not any(k == "scope" for k, _ in params) and repo and self.actions:
                params.append(("scope", f"repository:{repo}:{','.join(self.actions)}"))
            token_request = httpx.Request("GET", bearer.params["realm"], params=tuple(params))
            if creds is not None:
                token_request.headers["Authorization"] = _basic(*creds)
            self.token_fetches += 1
            token_response = yield token_request
            if token_response.status_code != 200:
                return
            body = token_response.json()
            token = body.get("token") or body.get("access_token")
            if not isinstance(token, str):
                return
            with self._lock:
                self._tokens[(origin, repo)] = token
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
        elif basic is not None and creds is not None and "Authorization" not in request.headers:
            with self._lock:
                self._basic_origins.add(origin)
            request.headers["Authorization"] = _basic(*creds)
            yield request


# --------------------------------------------------------------------------------------------
# Pushing
# --------------------------------------------------------------------------------------------


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
