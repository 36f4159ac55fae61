"""Reading what a registry sends, never more than a cap, and checking content against its digest.

Every body the registry client reads comes through `read_capped`: a registry or token service that sends
200 MB, or never stops sending, costs at most the cap (plus one network chunk) before the read ends. The
lookup's deadline (`asyncio.timeout` around each lookup) bounds how long the read may take.
"""

from __future__ import annotations

import hashlib

import httpx

from webhook.registry.manifests import MAX_DOCUMENT_BYTES, MalformedManifestError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_ERROR_BYTES",
    "MAX_TOKEN_BYTES",
    "BodyTooLarge",
    "DigestMismatch",
    "digest_of",
    "read_capped",
    "verify",
]
MAX_TOKEN_BYTES = 64 * 1024  # a token response (real ones are a few KiB)
MAX_ERROR_BYTES = 64 * 1024  # an error body: only its `errors[].code` is read
_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


class BodyTooLarge(MalformedManifestError):
    """More than the cap was sent."""


class DigestMismatch(MalformedManifestError):
    """The content's hash is not the digest it was asked for or claimed under (containerd: "unexpected commit
    digest ..., expected ...": the pull fails)."""


async def read_capped(response: httpx.Response, cap: int, what: str, *, truncate: bool = False) -> bytes:
    """Up to `cap` bytes of a streamed response. Past the cap: the bytes so far when `truncate` (error
    bodies, read only for their codes), else `BodyTooLarge`. The stream is left for its context to close."""
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > cap:
        raise BodyTooLarge(f"{what} of {declared} bytes is over the {_size(cap)} limit")
    body = bytearray()
    # requests ask for `Accept-Encoding: identity`; a server that compresses anyway is decoded chunk by chunk
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > cap:
            if truncate:
                return bytes(body[:cap])
            raise BodyTooLarge(f"{what} is over the {_size(cap)} limit")
    return bytes(body)


def digest_of(body: bytes, algorithm: str = "sha256") -> str:
    """`algorithm:hex` of `body` (ValueError for an algorithm containerd does not know)."""
    hasher = _ALGORITHMS.get(algorithm)
    if hasher is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hasher(body).hexdigest()}"


def verify(body: bytes, expected: str, what: str) -> str:
    """`expected` when `body` hashes to it; else `DigestMismatch` naming both."""
    algorithm = expected.split(":", 1)[0]
    try:
        actual = digest_of(body, algorithm)
    except ValueError as exc:
        raise MalformedManifestError(f"{what}: {exc}") from None
    if actual != expected:
        raise DigestMismatch(f"{what}: content does not match its digest (expected {expected}, got {actual})")
    return expected


def _size(cap: int) -> str:
    return f"{cap // (1024 * 1024)} MiB" if cap >= 1024 * 1024 else f"{cap // 1024} KiB"
