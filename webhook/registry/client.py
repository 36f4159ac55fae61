"""Ask registries about images the way a node's containerd would, and end every lookup as an `ImageFacts`.

One lookup: the endpoints containerd would use (hosts.toml mirrors in order, then the registry), a HEAD of the
manifest with containerd's Accept list, the platforms from the index or the config blob when asked, and the
closest existing tags when the tag is missing. Lookups are cached and coalesced by pull reference and
credential identity; documents are judged and cached only under the digest of their bytes (content-addressed):
a `Docker-Content-Digest` header is a claim, checked against the body. Every request goes through the
outbound policy (`webhook.registry.outbound`).

`RegistryClient(transport=httpx.MockTransport(handler))` is a test seam, never a production setting: the handler
answers every request (endpoints, token realms, redirects); nothing is dialed, so the socket-level address
re-check and hosts.toml TLS settings do not apply, and hosts are judged by name only (`outbound.NameGuard`). The
judgement before each request still runs: a link-local, metadata or unmapped loopback target is refused.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import httpx

from policies.image.pull_secret_parse import Credential
from policies.image.reference import Reference, parse_docker_ref
from policies.lookup import Lookup, RegistryConfig
from policies.registry_facts import Cause, ImageFacts, LookupStatus
from webhook.metrics import Metrics
from webhook.registry import manifests
from webhook.registry.auth import Authenticator, AuthError, scope_error
from webhook.registry.bodies import MAX_DOCUMENT_BYTES, DigestMismatch, digest_of, verify
from webhook.registry.cache import CoalescingCache, answer_ttl, lookup_key
from webhook.registry.classify import certificate_cause, classify_exception, classify_status, error_codes, rate_limit
from webhook.registry.guard import is_node_local
from webhook.registry.hosts import (
    HostsConfigError,
    RegistryEndpoint,
    find_host_dir,
    is_proxy,
    lookup_endpoints,
    request_url,
    resolve_endpoints,
)
from webhook.registry.outbound import NameGuard, Outbound, OutboundPolicy, Peer, Refused, Role, new_client, track
from webhook.registry.platform_cache import PlatformCache
from webhook.registry.scrub import collect, scrubbed

MAX_PER_REGISTRY = 8  # concurrent upstream requests per registry host: a review storm must not DoS it
_NO_CREDENTIAL: tuple[None] = (None,)


class RegistryClient:
    def __init__(self, metrics: Metrics | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """`transport`: for tests only (see the module docstring): it replaces the network for every client this
        registry client creates, and bypasses the socket-level address re-check. `close()` closes it."""
        self._metrics = metrics
        self._clients: dict[tuple[object, ...], httpx.AsyncClient] = {}
        self._transport = transport
        self._outbound = Outbound() if transport is None else Outbound(NameGuard())
        self._auth = Authenticator(self._outbound)
        self._cache: CoalescingCache[ImageFacts] = CoalescingCache()
        self._platforms = PlatformCache()
        self._limits: dict[str, asyncio.Semaphore] = {}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def cached_lookups(
        self, lookups: Sequence[Lookup], config: RegistryConfig
    ) -> tuple[dict[Lookup, ImageFacts], list[Lookup]]:
        """The planned lookups answered from the cache, and those that were not (one metric update for all)."""
        found: dict[Lookup, ImageFacts] = {}
        missing: list[Lookup] = []
        peek = self._cache.peek
        for lookup in lookups:
            facts = peek(lookup_key(lookup.reference, lookup.credentials, config, True))
            if facts is not None:
                found[lookup] = facts
            else:
                missing.append(lookup)
        if found and self._metrics is not None:
            self._metrics.count_cache("hit", len(found))
        return found, missing

    async def lookup(
        self,
        reference: Reference | str,
        credentials: Sequence[Credential],
        config: RegistryConfig,
        *,
        platforms: bool = True,
    ) -> ImageFacts:
        """Look up a pull reference (`parse_docker_ref` form). Never raises for anything the registry or the
        network does: the outcome is in `status`."""
        key = lookup_key(str(reference), credentials, config, platforms)

        async def produce() -> ImageFacts:
            parsed = reference if isinstance(reference, Reference) else parse_docker_ref(reference)
            secrets = collect(credentials)  # and each token sent: none may come back in the answer (scrub.py)
            return scrubbed(await self._bounded(parsed, credentials, config, platforms), secrets)

        facts, how = await self._cache.get(key, produce, lambda f: answer_ttl(f, config))
        if self._metrics is not None:
            self._metrics.count_cache(how)
            if how == "miss":
                self._metrics.registry_lookups.labels(facts.status).inc()
        return facts

    async def _bounded(
        self, reference: Reference, credentials: Sequence[Credential], config: RegistryConfig, platforms: bool
    ) -> ImageFacts:
        progress = track()  # which realm or redirect target was being waited for, if the deadline hits
        try:
            async with asyncio.timeout(config.timeout_seconds):
                return await self._resolve(reference, credentials, config, platforms)
        except TimeoutError:
            detail = f"no answer within {config.timeout_seconds:g}s"
            detail = f"{progress.waiting_for}: {detail}" if progress.waiting_for else detail
            facts = ImageFacts(str(reference), LookupStatus.TIMEOUT, reference.domain, detail=detail)
            return replace(facts, failed_role=progress.role, failed_host=progress.host, cause=Cause.DEADLINE)

    async def _resolve(
        self, reference: Reference, credentials: Sequence[Credential], config: RegistryConfig, platforms: bool
    ) -> ImageFacts:
        registry = reference.domain
        base = ImageFacts(str(reference), LookupStatus.NOT_FOUND, registry)
        mapped = find_host_dir(config.hosts_dir, registry) is not None
        if is_node_local(registry) and not mapped:
            return replace(base, status=LookupStatus.NODE_LOCAL, detail="node-local registry")
        try:
            # strict=False: a broken hosts.toml is skipped by containerd too, which then uses the cert files
            endpoints = resolve_endpoints(config.hosts_dir, registry, strict=False)
        except HostsConfigError as exc:
            return replace(base, status=LookupStatus.MALFORMED, detail=str(exc))
        endpoints = lookup_endpoints(endpoints, by_digest=reference.digest is not None)
        first_error: ImageFacts | None = None
        not_found: ImageFacts | None = None
        # containerd's resolver (remotes/docker/resolver.go `Resolve`): a 404 moves on silently; any other failure
        # is kept as `firstErr` and moves on too; when no host has the image, `firstErr` wins over "not found".
        for endpoint in endpoints:
            try:
                policy = await self._outbound.endpoint_policy(
                    endpoint.host, mapped=mapped, allow_link_local=config.allow_link_local
                )
            except Refused as exc:
                facts = replace(exc.blocked(base), endpoint=endpoint.url)
            else:
                facts = await self._at(Peer(endpoint, policy), reference, credentials, platforms)
            if facts.status is LookupStatus.EXISTS:
                return facts
            if facts.status is LookupStatus.NOT_FOUND:
                not_found = not_found or facts
            else:
                first_error = first_error or facts
        return first_error or not_found or replace(base, detail="no endpoint may resolve it (hosts.toml capabilities)")

    async def _at(
        self, peer: Peer, reference: Reference, credentials: Sequence[Credential], platforms: bool
    ) -> ImageFacts:
        # The kubelet's keyring match carries no ServerAddress (kubernetes pkg/credentialprovider/keyring.go;
        # pkg/kubelet/kuberuntime/kuberuntime_image.go passes it on as is), so containerd's CRI `ParseAuth`
        # (pkg/cri/server/image_pull.go) gives them to every host `registryHosts` configures for the pull (each
        # hosts.toml mirror and the server); what may carry them is auth.py's rule.
        attempts: Sequence[Credential | None] = credentials or _NO_CREDENTIAL
        tried: list[ImageFacts] = []
        for credential in attempts:
            facts, body = await self._manifest(peer, reference, credential, fetch_body=platforms)
            if facts.status is LookupStatus.EXISTS:  # which credential worked, for explain's evidence
                worked = (credential.origin,) if credential is not None and credential.origin else ()
                facts = replace(facts, credential_sources=worked)
                if not platforms:
                    return facts
                return await self._platforms.fill(facts, body, partial(self._content, peer, reference, credential))
            tried.append(facts)
            if facts.status not in (LookupStatus.UNAUTHORIZED, LookupStatus.DENIED):
                break  # only an authorization failure can depend on which credential was used
        first = tried[0]
        sources = tuple(c.origin for c in attempts if c is not None and c.origin)
        first = replace(first, credential_sources=sources, credentials_sent=any(t.credentials_sent for t in tried))
        if first.status is LookupStatus.NOT_FOUND and reference.tag is not None:
            tags = await self._tags(peer, reference, attempts[0])
            if tags is None:
                first = replace(first, detail="repository unknown", cause=Cause.REPOSITORY_UNKNOWN)
            elif tags:
                first = replace(
                    first, similar_tags=tuple(difflib.get_close_matches(reference.tag, tags, n=5, cutoff=0.3))
                )
        return first

    async def _manifest(
        self, peer: Peer, reference: Reference, credential: Credential | None, *, fetch_body: bool
    ) -> tuple[ImageFacts, bytes | None]:
        """HEAD the manifest, as containerd resolves; GET it when its content is wanted anyway (platforms),
        which saves a round trip."""
        base = ImageFacts(str(reference), LookupStatus.EXISTS, reference.domain, endpoint=peer.endpoint.url)
        target = reference.digest or reference.tag or "latest"
        method = "GET" if fetch_body else "HEAD"
        try:
            response, sent = await self._request(method, peer, reference, credential, "manifests", target)
            if method == "HEAD" and response.status_code == 405:  # containerd's retryRequest: 405 only, then GET
                response, sent = await self._request("GET", peer, reference, credential, "manifests", target)
        except AuthError as exc:
            failed = replace(base, status=exc.status, detail=exc.detail, failed_role=exc.role, failed_host=exc.host)
            return replace(failed, credentials_sent=exc.credentials_sent), None
        except Refused as exc:
            return exc.blocked(base), None
        except manifests.MalformedManifestError as exc:
            return replace(base, status=LookupStatus.MALFORMED, detail=str(exc)), None
        except httpx.HTTPError as exc:
            status, detail = classify_exception(exc)
            failed = replace(base, status=status, detail=detail, cause=certificate_cause(exc))
            return replace(failed, credentials_sent=credential is not None), None
        if response.status_code == 200:
            return await self._found(peer, reference, credential, response, replace(base, credentials_sent=sent))
        status, detail = classify_status(response)
        if response.status_code == 401 and scope_error(response):
            # containerd: "pull access denied, repository does not exist or may require authorization"
            status = LookupStatus.DENIED
            detail = (
                "insufficient_scope: the account may not pull this repository"
                if sent
                else "insufficient_scope: anonymous pulls may not read this repository, or it does not exist"
            )
        limit, retry = rate_limit(response) if status is LookupStatus.RATE_LIMITED else ("", None)
        if status is LookupStatus.NOT_FOUND:
            unknown = "NAME_UNKNOWN" in error_codes(response)  # refined by _tags
            detail = "repository unknown" if unknown else "manifest unknown"
            base = replace(base, cause=Cause.REPOSITORY_UNKNOWN if unknown else None)
        facts = replace(
            base, status=status, detail=detail, credentials_sent=sent, rate_limit=limit, retry_after_seconds=retry
        )
        return facts, None

    async def _found(
        self,
        peer: Peer,
        reference: Reference,
        credential: Credential | None,
        response: httpx.Response,
        base: ImageFacts,
    ) -> tuple[ImageFacts, bytes | None]:
        """A 200: the digest and media type, checked the way the pull will check them. The body, when there is
        one, is judged only under its own digest: the header's digest is a claim, and so is a requested one."""
        claimed = response.headers.get("docker-content-digest") or None
        body = response.content if response.request.method == "GET" else None
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        disputed = reference.digest is not None and claimed is not None and claimed != reference.digest
        if body is None and (claimed is None or content_type in manifests.GENERIC_TYPES or disputed):
            # the digest or the type is missing on HEAD, or it names other content: the GET body is the truth
            try:
                got = await self._document(peer, reference, credential, "manifests", reference.digest or reference.tag)
            except DigestMismatch as exc:
                return replace(base, status=LookupStatus.DIGEST_MISMATCH, detail=str(exc)), None
            except Refused as exc:
                return exc.blocked(base), None
            except (httpx.HTTPError, AuthError, manifests.MalformedManifestError) as exc:
                return replace(base, status=LookupStatus.MALFORMED, detail=f"manifest unreadable: {exc}"), None
            body, claimed = got.content, claimed or got.headers.get("docker-content-digest") or None
        digest = claimed or reference.digest
        if body is not None:
            try:  # containerd fetches by the resolved digest and fails the pull when the content differs
                if reference.digest is not None:
                    verify(body, reference.digest, "manifest")
                if claimed is not None:
                    verify(body, claimed, "manifest (Docker-Content-Digest)")
                digest = reference.digest or claimed or digest_of(body)
            except DigestMismatch as exc:
                return replace(base, status=LookupStatus.DIGEST_MISMATCH, detail=str(exc)), None
            except manifests.MalformedManifestError as exc:
                return replace(base, status=LookupStatus.MALFORMED, detail=str(exc)), None
        try:
            kind = manifests.media_type(response.headers.get("content-type", ""), body)
        except manifests.MalformedManifestError as exc:
            return replace(base, status=LookupStatus.MALFORMED, detail=f"manifest {exc}"), None
        if kind not in manifests.MANIFEST_TYPES:
            detail = f"unexpected content type {kind or '(none)'} for a manifest"
            return replace(base, status=LookupStatus.MALFORMED, detail=detail), None
        return replace(base, digest=digest, media_type=kind), body

    async def _document(
        self, peer: Peer, reference: Reference, credential: Credential | None, kind: str, target: str | None
    ) -> httpx.Response:
        """GET a manifest or blob (a 200, else `httpx.HTTPStatusError`); by digest, its content is verified."""
        response, _ = await self._request("GET", peer, reference, credential, kind, target or "latest")
        if response.status_code != 200:
            raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
        if target is not None and ":" in target:
            verify(response.content, target, "manifest" if kind == "manifests" else "blob")
        return response

    async def _content(
        self, peer: Peer, reference: Reference, credential: Credential | None, kind: str, digest: str
    ) -> bytes:
        return (await self._document(peer, reference, credential, kind, digest)).content

    async def _tags(self, peer: Peer, reference: Reference, credential: Credential | None) -> list[str] | None:
        """The repository's tags ([] when the registry will not list them); None when the repository is unknown."""
        try:
            response, _ = await self._request("GET", peer, reference, credential, "tags", "list")
            if response.status_code == 404 and "NAME_UNKNOWN" in error_codes(response):
                return None
            tags = response.json().get("tags") if response.status_code == 200 else None
        except (httpx.HTTPError, AuthError, Refused, ValueError, AttributeError):
            return []
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    async def _request(
        self, method: str, peer: Peer, reference: Reference, credential: Credential | None, *parts: str
    ) -> tuple[httpx.Response, bool]:
        """One request with containerd's URL rules and the auth dance; returns (response, credentials sent)."""
        endpoint = peer.endpoint
        url = httpx.URL(request_url(endpoint, reference.path, *parts))
        if is_proxy(endpoint, reference.domain):
            url = url.copy_merge_params({"ns": reference.domain})
        try:
            return await self._send(method, peer, url, reference.path, credential)
        except httpx.HTTPError as exc:
            status, _ = classify_exception(exc)
            if not endpoint.http_fallback or status not in (LookupStatus.TLS, LookupStatus.REFUSED):
                raise
            # containerd's HTTP fallback for local or explicitly configured plain-HTTP hosts
            return await self._send(method, peer, url.copy_with(scheme="http"), reference.path, credential)

    async def _send(
        self, method: str, peer: Peer, url: httpx.URL, repository: str, credential: Credential | None
    ) -> tuple[httpx.Response, bool]:
        endpoint = peer.endpoint
        client = self._client(endpoint)
        headers = {"Accept": manifests.ACCEPT if "/manifests/" in url.path else "*/*"}
        headers.update({name: values[0] for name, values in endpoint.headers if values})
        upfront = self._auth.cached_header(endpoint.host, repository, credential, url)
        if upfront is not None:
            headers["Authorization"] = upfront
        sent = upfront is not None and credential is not None
        limit = self._limits.setdefault(endpoint.host, asyncio.Semaphore(MAX_PER_REGISTRY))
        async with limit:
            response = await self._timed(client, method, url, headers, peer.policy)
            if response.status_code != 401:
                return response, sent
            challenges = self._auth.remember(endpoint.host, response)
            answer = await self._auth.header(client, challenges, repository, credential, url, policy=peer.policy)
            if answer is None or answer == upfront:
                return response, sent
            headers["Authorization"] = answer
            return await self._timed(client, method, url, headers, peer.policy), credential is not None

    async def _timed(
        self, client: httpx.AsyncClient, method: str, url: httpx.URL, headers: dict[str, str], policy: OutboundPolicy
    ) -> httpx.Response:
        started = time.perf_counter()
        try:  # a registry must not exhaust our memory: every body is capped
            return await self._outbound.send(
                client, method, url, headers, role=Role.ENDPOINT, policy=policy, cap=MAX_DOCUMENT_BYTES, what="response"
            )
        finally:
            if self._metrics is not None:
                self._metrics.registry_latency.labels(method).observe(time.perf_counter() - started)

    def _client(self, endpoint: RegistryEndpoint) -> httpx.AsyncClient:
        key = (endpoint.ca_files, endpoint.client_pairs, bool(endpoint.skip_verify))
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = new_client(endpoint, self._transport)
        return client
