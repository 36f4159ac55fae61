"""Push-side registry authentication for the test harness: answers Basic and Bearer challenges (an httpx.Auth)."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass

import httpx

_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|tags)/")

__all__ = [
    "Challenge",
    "RegistryAuth",
    "parse_www_authenticate",
]


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
