"""containerd's platform rules: parse, normalize, format, and the ``platforms.Only`` matcher.

A port of github.com/containerd/platforms (platforms.go, database.go, compare.go,
platform_windows_compat.go; Apache-2.0, The containerd Authors). Pure: where containerd asks the
running machine (``runtime.GOOS``/``GOARCH``, the CPU variant) the caller passes defaults instead.

Choices: ``matches`` is ``Only(wanted).Match(image)``, the compatibility rule containerd's image
pull applies, so an arm64 node accepts arm/v8..v5 and an amd64 node accepts 386. OS features
(``linux(+gpu)``, only in the newest containerd/platforms) are not modelled: such specifiers do not
parse. Windows OS versions match by containerd's ABI rule when the wanted OS is windows.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

KNOWN_OS = frozenset(
    {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl"}
    | {"netbsd", "openbsd", "plan9", "solaris", "windows", "zos"}
)
KNOWN_ARCH = frozenset(
    {"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips"}
    | {"mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x"}
    | {"sparc", "sparc64", "wasm"}
)
NODE_OS_LABEL, NODE_ARCH_LABEL = "kubernetes.io/os", "kubernetes.io/arch"
NODE_WINDOWS_BUILD_LABEL = "node.kubernetes.io/windows-build"
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"

_SPECIFIER = re.compile(r"[A-Za-z0-9_.-]+")
_OS_AND_VERSION = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)\))?")
_OS_OPTION_ESCAPES = {"%": "%25", "+": "%2B", "(": "%28", ")": "%29", "/": "%2F"}
_ARM64_VARIANTS = {"8": "", "v8": "", "v8.0": "", "9": "v9", "9.0": "v9", "v9.0": "v9"}
_MAX_LEVEL = 64  # bounds the compatible-variant loops (containerd has no bound)


class PlatformSpecError(ValueError):
    """A platform specifier containerd's ``platforms.Parse`` rejects."""


@dataclass(frozen=True)
class Platform:
    """An OCI platform (``os.features`` are not modelled)."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""


def _normalize_os(os: str, default_os: str = "linux") -> str:
    os = os.lower() if os else default_os
    return "darwin" if os == "macos" else os


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """database.go's normalizeArch: aarch64 -> arm64, x86_64 -> amd64, armhf -> arm/v7, ..."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", _ARM64_VARIANTS.get(variant, variant)
    if arch in ("armhf", "armel"):
        return "arm", "v7" if arch == "armhf" else "v6"
    if arch == "arm":
        return "arm", {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(variant, variant)
    return arch, variant


def normalize(p: Platform, *, default_os: str = "linux") -> Platform:
    """containerd's Normalize: arm64 v8 -> "", arm "" -> v7, amd64 v1 -> "", OS lowercased (and
    ``default_os`` when empty: containerd uses the running OS)."""
    arch, variant = normalize_arch(p.architecture, p.variant)
    return Platform(_normalize_os(p.os, default_os), arch, variant, p.os_version)


def parse(spec: str, *, default_os: str = "linux", default_arch: str = "amd64", default_variant: str = "") -> Platform:
    """containerd's Parse: ``<os>[(<os version>)]``, ``<arch>`` or ``<os>/<arch>[/<variant>]``.

    A lone OS gets ``default_arch`` (and ``default_variant`` when that is arm other than v7); a
    lone architecture gets ``default_os``: containerd takes both from the running machine.
    """
    if "*" in spec:
        raise PlatformSpecError(f"{spec!r}: wildcards not yet supported")
    parts = spec.split("/", 3)
    os_match = _OS_AND_VERSION.fullmatch(parts[0])
    if os_match is None:
        raise PlatformSpecError(f"{parts[0]!r} is an invalid OS component of {spec!r}")
    bad = [part for part in parts[1:] if not _SPECIFIER.fullmatch(part)]
    if bad:
        raise PlatformSpecError(f"{bad[0]!r} is an invalid component of {spec!r}")
    os, os_version = _normalize_os(os_match[1], default_os), os_match[2] or ""
    if "%" in os_version:
        if re.search(r"%(?![0-9A-Fa-f]{2})", os_version):
            raise PlatformSpecError(f"{spec!r} has an invalid OS version {os_version!r}")
        os_version = urllib.parse.unquote(os_version)
    if len(parts) == 1 and os in KNOWN_OS:
        variant = default_variant if default_arch == "arm" and default_variant != "v7" else ""
        return Platform(os, default_arch, variant, os_version)
    if len(parts) == 1:
        arch, variant = normalize_arch(parts[0], "")
        if arch not in KNOWN_ARCH:
            raise PlatformSpecError(f"{spec!r}: unknown operating system or architecture")
        return Platform(default_os, arch, "" if (arch, variant) == ("arm", "v7") else variant, os_version)
    if len(parts) == 2:
        arch, variant = normalize_arch(parts[1], "")
        return Platform(os, arch, "" if (arch, variant) == ("arm", "v7") else variant, os_version)
    if len(parts) == 3:
        arch, variant = normalize_arch(parts[1], parts[2])
        return Platform(os, arch, "v8" if (arch, variant) == ("arm64", "") else variant, os_version)
    raise PlatformSpecError(f"{spec!r}: cannot parse platform specifier")


def format(p: Platform) -> str:
    """containerd's Format: ``os/arch[/variant]``, ``unknown`` without an OS."""
    if not p.os:
        return "unknown"
    return posixpath.normpath("/".join(x for x in (p.os, p.architecture, p.variant) if x))


def format_all(p: Platform) -> str:
    """containerd's FormatAll: Format with ``os(version)``, the version's ``%+()/`` escaped."""
    if not p.os or not p.os_version:
        return format(p)
    version = "".join(_OS_OPTION_ESCAPES.get(c, c) for c in p.os_version)
    return format(Platform(f"{p.os}({version})", p.architecture, p.variant))


def _atoi(s: str) -> int | None:
    return int(s) if re.fullmatch(r"[+-]?[0-9]+", s) else None


def platform_vector(p: Platform) -> list[Platform]:
    """compare.go's platformVector: ``p`` then what it can also run, most preferred first."""
    out = [p]
    level = _atoi(p.variant.removeprefix("v"))
    if p.architecture == "amd64":
        if level is not None and level > 1:
            out += _with(p, "amd64", (f"v{v}" for v in range(min(level, _MAX_LEVEL) - 1, 0, -1)))
        out.append(Platform(p.os, "386", "", p.os_version))
    elif p.architecture == "arm" and level is not None and level > 5:
        out += _with(p, "arm", (f"v{v}" for v in range(min(level, _MAX_LEVEL) - 1, 4, -1)))
    elif p.architecture == "arm64":
        variant = p.variant or "v8"
        major_text, dot, minor_text = variant.partition(".")
        major = _atoi(major_text.removeprefix("v"))
        if major is not None and major >= 8:
            minor = _atoi(minor_text) if len(variant) == 4 and dot else None
            minor = min(minor or 0, _MAX_LEVEL)
            if major == 9:  # v9.x is compatible with v9.{x-1..0} and v8.{x+5} (at most v8.9) down
                out += _arm64_below(p, 9, minor)
                major, minor = 8, min(minor + 5, 9)
                out.append(Platform(p.os, "arm64", f"v8.{minor}", p.os_version))
            out += _arm64_below(p, major, minor)
        arm_variant = "v8" if variant.startswith(("v8.", "v9.")) else variant
        out += platform_vector(Platform(p.os, "arm", arm_variant, p.os_version))
    return out


def _with(p: Platform, arch: str, variants: Iterable[str]) -> list[Platform]:
    return [Platform(p.os, arch, v, p.os_version) for v in variants]


def _arm64_below(p: Platform, major: int, minor: int) -> list[Platform]:
    return _with(p, "arm64", (f"v{major}.{m}" if m else f"v{major}" for m in range(minor - 1, -1, -1)))


def _windows_version(v: str) -> tuple[int, int, int]:
    fields = v.split(".")
    if len(fields) < 3 or not all(re.fullmatch(r"[0-9]+", f) for f in fields[:3]):
        return (0, 0, 0)
    major, minor, build = (int(f) for f in fields[:3])
    return (major, minor, build) if major < 256 and minor < 256 and build < 65536 else (0, 0, 0)


def windows_compatible(host_version: str, image_version: str) -> bool:
    """containerd's windowsVersionMatcher: same major.minor; below Windows Server 2022 (build
    20348) the same build, from it on any build from 20348 up to the host's. Unknown: compatible."""
    host = _windows_version(host_version)
    if host == (0, 0, 0) or not image_version:
        return True
    image = _windows_version(image_version)
    if host[:2] != image[:2]:
        return False
    return host[2] == image[2] if host[2] < 20348 else 20348 <= image[2] <= host[2]


def _match(m: Platform, image: Platform) -> bool:
    """containerd's matcher: os, architecture and variant after normalizing; the OS version too
    when the wanted OS is Windows."""
    wanted, got = normalize(m), normalize(image)
    same = (wanted.os, wanted.architecture, wanted.variant) == (got.os, got.architecture, got.variant)
    return same and (wanted.os != "windows" or windows_compatible(wanted.os_version, image.os_version))


def matches(image: Platform, wanted: Platform) -> bool:
    """``platforms.Only(wanted).Match(image)``: can a node of platform ``wanted`` run ``image``?"""
    return any(_match(m, image) for m in platform_vector(normalize(wanted)))


def matches_strict(image: Platform, wanted: Platform) -> bool:
    """``platforms.OnlyStrict(wanted).Match(image)``: no older variants, no 386 on amd64."""
    return _match(normalize(wanted), image)


def best_match(candidates: Sequence[Platform | None], wanted: Platform) -> int | None:
    """The index of the index entry containerd pulls for ``wanted`` (images.Manifest): matching
    entries ranked by ``Only``'s preference, ties and entries without a platform (which match) in
    list order after them; None when nothing matches."""
    vector = platform_vector(normalize(wanted))
    ranks = [
        len(vector) if c is None else next((r for r, m in enumerate(vector) if _match(m, c)), None) for c in candidates
    ]
    found = [(rank, i) for i, rank in enumerate(ranks) if rank is not None]
    return min(found)[1] if found else None


def is_attestation(platform: Platform | None, annotations: Mapping[str, str] | None = None) -> bool:
    """A BuildKit attestation manifest in an index: ``unknown/unknown`` or the reference-type annotation."""
    if annotations and annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest":
        return True
    return platform is not None and (platform.os, platform.architecture) == ("unknown", "unknown")


def from_goarch(goos: str, goarch: str, variant: str = "", os_version: str = "") -> Platform:
    """A node's platform from Go's GOOS/GOARCH names (amd64, arm64, arm, ppc64le, s390x, riscv64...),
    normalized: ``arm`` without a variant is taken as v7, containerd's most common arm."""
    return normalize(Platform(goos, goarch, variant, os_version))


def node_platform(labels: Mapping[str, str], *, variant: str = "") -> Platform | None:
    """The platform of a Kubernetes node from its ``kubernetes.io/os`` and ``kubernetes.io/arch``
    labels (or the ``beta.`` ones), with the Windows build label as the OS version; None if unlabelled.

    The labels carry no CPU variant: containerd reads it from the CPU (amd64 v2/v3, arm v6/v7), so
    pass ``variant`` when known; without it an image offering only e.g. amd64/v3 does not match.
    """
    goos = labels.get(NODE_OS_LABEL) or labels.get("beta." + NODE_OS_LABEL)
    goarch = labels.get(NODE_ARCH_LABEL) or labels.get("beta." + NODE_ARCH_LABEL)
    if not goos or not goarch:
        return None
    os_version = labels.get(NODE_WINDOWS_BUILD_LABEL, "") if goos == "windows" else ""
    return from_goarch(goos, goarch, variant, os_version)
