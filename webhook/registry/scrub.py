"""Nothing a registry echoes back leaves the process: each lookup's answer is scrubbed of every secret sent for it.

A hostile or careless registry may put the request's Authorization header in an error body, a header or an error
code; pullguard quotes registry texts in findings (warnings a pod creator reads, logs, PolicyReports, `check`).
So the secrets of a lookup (each credential's password, `user:password` and its base64 forms, and every bearer
token sent) are collected while it runs (a contextvar: the lookup's own task and the tasks it starts) and removed
from every text of its `ImageFacts` before it is cached or returned.
"""

from __future__ import annotations

import base64
import contextvars
from collections.abc import Iterable
from dataclasses import replace

from policies.image.pull_secret_parse import Credential
from policies.registry_facts import ImageFacts

REDACTED = "<redacted>"
_MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words; no registry password is that short

_SENT: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("pullguard_sent_secrets", default=None)


def collect(credentials: Iterable[Credential]) -> set[str]:
    """Start collecting this lookup's secrets (its credentials now, tokens as they are sent); returns the set."""
    secrets: set[str] = set()
    for credential in credentials:
        secrets.update(credential_forms(credential))
    _SENT.set(secrets)
    return secrets


def note_sent(secret: str) -> None:
    """A secret about to be sent (a bearer token): it must not come back in the lookup's texts."""
    secrets = _SENT.get()
    if secrets is not None:
        secrets.add(secret)


def credential_forms(credential: Credential) -> set[str]:
    pair = f"{credential.username}:{credential.password}".encode("utf-8", "surrogateescape")
    forms = {credential.password, pair.decode("utf-8", "replace")}
    for encoded in (base64.b64encode(pair), base64.urlsafe_b64encode(pair)):
        text = encoded.decode("ascii")
        forms.update({text, text.rstrip("=")})
    return {form for form in forms if len(form) >= _MIN_SECRET_CHARS}


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # a longer form first: it may contain a shorter one
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrubbed(facts: ImageFacts, secrets: set[str]) -> ImageFacts:
    """`facts` with every secret removed from each text a registry could have put in it."""
    if not secrets:
        return facts
    texts = (facts.detail, facts.endpoint, facts.rate_limit, facts.media_type or "", *facts.similar_tags)
    if not any(secret in text for text in texts for secret in secrets):
        return facts  # the common case: nothing echoed, no copy
    return replace(
        facts,
        detail=scrub(facts.detail, secrets),
        endpoint=scrub(facts.endpoint, secrets),
        rate_limit=scrub(facts.rate_limit, secrets),
        media_type=scrub(facts.media_type, secrets) if facts.media_type is not None else None,
        similar_tags=tuple(scrub(tag, secrets) for tag in facts.similar_tags),
    )
