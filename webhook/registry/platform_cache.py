"""The platforms of an image, read from its index or its config blob, and cached by digest.

Content-addressed: platforms are cached only from bodies whose hash is the digest they are filed under, so no
registry can plant facts under another registry's digest.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace

import httpx

from policies.image.platforms import Platform
from policies.registry_facts import ImageFacts, LookupStatus
from webhook.registry import manifests
from webhook.registry.auth import AuthError
from webhook.registry.bodies import DigestMismatch, verify
from webhook.registry.outbound import Refused

MAX_DOCUMENTS = 4096  # digests whose platforms are kept

Fetch = Callable[[str, str], Awaitable[bytes]]  # (manifests | blobs, digest) -> verified content


class PlatformCache:
    def __init__(self) -> None:
        self._known: OrderedDict[str, tuple[Platform, ...]] = OrderedDict()

    async def fill(self, facts: ImageFacts, manifest: bytes | None, fetch: Fetch) -> ImageFacts:
        """`facts` with the platforms of its verified digest. `manifest`: its body when already read (verified
        here), else fetched; a failure reading what the tag points to is a fact, never an exception."""
        digest = facts.digest
        if digest is None:
            return facts
        known = self._known.get(digest)
        if known is not None:
            return replace(facts, platforms=known)
        try:
            if manifest is None:
                manifest = await fetch("manifests", digest)
            else:
                verify(manifest, digest, "manifest")
            kind = facts.media_type or manifests.media_type("", manifest)
            if kind in manifests.INDEX_TYPES:
                found = manifests.index_platforms(manifest)
            else:
                found = (manifests.config_platform(await fetch("blobs", manifests.config_digest(manifest))),)
        except DigestMismatch as exc:
            return replace(facts, status=LookupStatus.DIGEST_MISMATCH, detail=str(exc))
        except Refused as exc:
            return exc.blocked(facts)
        except (manifests.MalformedManifestError, httpx.RemoteProtocolError, httpx.DecodingError) as exc:
            # the tag resolves, but the pull would fail reading what it points to
            return replace(facts, status=LookupStatus.MALFORMED, detail=f"manifest or config unreadable: {exc}")
        except (httpx.HTTPError, AuthError, ValueError) as exc:
            return replace(facts, detail=f"exists; platforms unknown: {exc}")
        self._known[digest] = found
        while len(self._known) > MAX_DOCUMENTS:
            self._known.popitem(last=False)
        return replace(facts, platforms=found, media_type=kind or facts.media_type)
