"""The node's credential provider plugins, run as the kubelet runs them, so pullguard asks a registry with the
credentials a node would send.

Ported from Kubernetes (Apache-2.0) pkg/credentialprovider/plugin/:
  plugins.go  externalCredentialProviderKeyring.Lookup: every provider, in config order, adds what it gives into
              one BasicDockerKeyring (policies.image.keyring.Keyring), which is then looked up for the image
  plugin.go   pluginProvider.provide: isImageAllowed, the service account handling (requireServiceAccount,
              required / optional annotation keys), the cache (keyed by cacheKeyType, plus the service
              account when tokenAttributes apply; looked up image, registry, global; expiring after
              cacheDuration or defaultCacheDuration; 0 = not cached) and the exec behind a singleflight per image
The pure rules live in policies.credential_providers; the exec in webhook.node.plugin_exec.

Where pullguard differs, and why: providers are asked concurrently (the kubelet asks one after the other; the
keyring is built in config order all the same), the caller waits at most its review's budget while the exec
runs on (shielded) to fill the cache for later reviews, failures are remembered for FAILURE_CACHE_SECONDS
(the kubelet re-execs every time; a broken plugin must not be exec'd by every review of a burst), and each
cache holds at most MAX_CACHE_ENTRIES (the kubelet's is unbounded, purged every 15 minutes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Generic, Protocol, TypeVar

from policies.credential_providers import (
    MAX_CONFIG_BYTES,
    ExecProvider,
    ProviderConfigError,
    ProviderResponseError,
    ServiceAccountKey,
    cache_key,
    cache_key_candidates,
    cache_seconds,
    parse_provider_configs,
    parse_response,
    request_body,
    service_account_key,
    token_hash,
)
from policies.image.keyring import Keyring
from policies.image.pull_secret_parse import Credential, CredentialSource, DockerConfigEntry
from policies.model import PodContext
from webhook.node.plugin_exec import EXEC_TIMEOUT_SECONDS, ExecFailure, run_plugin

__all__ = [
    "FAILURE_CACHE_SECONDS",
    "MAX_CACHE_ENTRIES",
    "CredentialProviders",
    "ProviderCredentials",
    "ProviderFailure",
    "ServiceAccountTokens",
    "TokenUnavailable",
]

log = logging.getLogger("pullguard.node")
FAILURE_CACHE_SECONDS: Final = 5.0
MAX_CACHE_ENTRIES: Final = 4096  # per provider
NO_GRANT_DETAIL: Final = (
    "needs a service account token and pullguard may not create one (grant serviceaccounts/token create)"
)
_CONFIG_SUFFIXES: Final = (".json", ".yaml", ".yml")

DockerConfig = Mapping[str, DockerConfigEntry]
_Answer = DockerConfig | str  # what a provider gave, or why it gave nothing (a ProviderFailure's detail)


class TokenUnavailable(Exception):
    """No service account token for the plugin; `detail` says why (no secret in it)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ServiceAccountTokens(Protocol):
    """Service account tokens for plugins with tokenAttributes (KEP-4412), as the kubelet requests them."""

    async def token(self, namespace: str, service_account: str, audience: str) -> str:
        """A token for the ServiceAccount with that audience; TokenUnavailable when none can be had."""
        ...

    def annotations(self, namespace: str, service_account: str) -> Mapping[str, str] | None:
        """The ServiceAccount's annotations; None when it is not known."""
        ...


@dataclass(frozen=True)
class ProviderFailure:
    """A matching provider that gave nothing, and why, as a short sentence ("exited with status 1: ...")."""

    provider: str
    detail: str


@dataclass(frozen=True)
class ProviderCredentials:
    """What the node's plugins give for one image: the credentials the kubelet would try, in its order; the
    matching providers that failed; and every provider whose matchImages matched (asked, or declined as the
    kubelet declines: a required service account or annotation missing)."""

    credentials: tuple[Credential, ...] = ()
    failures: tuple[ProviderFailure, ...] = ()
    asked: tuple[str, ...] = ()


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _ExpiringCache(Generic[K, V]):
    """Entries expire after their deadline (still valid at it, as the kubelet's `Now().After(expiresAt)`);
    when full, expired entries go first, then the oldest."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K, now: float) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if now > item[0]:
            del self._items[key]
            return None
        return item[1]

    def put(self, key: K, value: V, expires_at: float, now: float) -> None:
        self._items.pop(key, None)
        self._items[key] = (expires_at, value)
        if len(self._items) > self._max:
            for stale in [k for k, (deadline, _) in self._items.items() if now > deadline]:
                del self._items[stale]
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class _Plugin:
    """One provider's state: its answers, its recent failures and its execs in flight (one per key)."""

    def __init__(self, spec: ExecProvider) -> None:
        self.spec = spec
        self.answers: _ExpiringCache[tuple[str, ServiceAccountKey | None], DockerConfig] = _ExpiringCache(
            MAX_CACHE_ENTRIES
        )
        self.failures: _ExpiringCache[Hashable, str] = _ExpiringCache(MAX_CACHE_ENTRIES)
        self.in_flight: dict[Hashable, asyncio.Task[_Answer]] = {}


@dataclass(frozen=True)
class _Call:
    """One exec's inputs, and the keys its answer goes under."""

    image: str
    token: str = field(repr=False)
    annotations: Mapping[str, str]
    account_key: ServiceAccountKey | None
    flight_key: Hashable


def _read_config_files(path: Path) -> list[tuple[str, str]]:
    """readCredentialProviderConfig's inputs: the file, or a directory's *.json, *.yaml, *.yml by name."""
    try:
        if path.is_dir():
            # os.ReadDir's entry.IsDir() does not follow symlinks (a link to a directory is read, and fails)
            entries = [e for e in os.scandir(path) if not e.is_dir(follow_symlinks=False)]
            # filepath.Ext: from the last '.', so a file named ".yaml" counts too
            files = sorted(Path(e.path) for e in entries if e.name[e.name.rfind(".") :] in _CONFIG_SUFFIXES)
            if not files:
                raise ProviderConfigError(f"{path}: no configuration files found in directory")
        else:
            files = [path]
        texts = []
        for file in files:
            with file.open("rb") as handle:
                data = handle.read(MAX_CONFIG_BYTES + 1)
            if len(data) > MAX_CONFIG_BYTES:
                raise ProviderConfigError(f"{file}: larger than {MAX_CONFIG_BYTES // 1024} KiB")
            texts.append((str(file), data.decode("utf-8")))
    except UnicodeDecodeError:
        raise ProviderConfigError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise ProviderConfigError(f"{path}: unable to read: {err.strerror or type(err).__name__}") from None
    return texts


class CredentialProviders:
    """The node's exec plugins, their caches and their execs in flight. Build with load(); call aclose() at
    shutdown (it kills what still runs)."""

    def __init__(
        self,
        providers: tuple[ExecProvider, ...],
        bin_dir: Path,
        *,
        tokens: ServiceAccountTokens | None = None,
        clock: Callable[[], float] = time.monotonic,
        exec_timeout: float = EXEC_TIMEOUT_SECONDS,
    ) -> None:
        self._plugins = [_Plugin(spec) for spec in providers]
        self._bin_dir = bin_dir
        self._tokens = tokens
        self._clock = clock
        self._exec_timeout = exec_timeout

    @classmethod
    def load(
        cls,
        config_path: Path | str,
        bin_dir: Path | str,
        *,
        tokens: ServiceAccountTokens | None = None,
        clock: Callable[[], float] = time.monotonic,
        exec_timeout: float = EXEC_TIMEOUT_SECONDS,
    ) -> CredentialProviders:
        """From the kubelet's `--image-credential-provider-config` (a file or a directory) and
        `--image-credential-provider-bin-dir`. ProviderConfigError names the file; binaries are looked for
        only when a provider is used (a missing one is that provider's failure)."""
        providers = parse_provider_configs(_read_config_files(Path(config_path)))
        return cls(providers, Path(bin_dir), tokens=tokens, clock=clock, exec_timeout=exec_timeout)

    @property
    def providers(self) -> tuple[ExecProvider, ...]:
        return tuple(plugin.spec for plugin in self._plugins)

    def matching(self, image: str) -> tuple[str, ...]:
        """The providers whose matchImages match `image` (as the kubelet passes it: no tag, no digest)."""
        return tuple(p.spec.name for p in self._plugins if p.spec.matches(image))

    async def credentials(self, image: str, pod: PodContext, *, budget_seconds: float) -> ProviderCredentials:
        """externalCredentialProviderKeyring.Lookup for `image` (policies.image.keyring.repo_to_pull of the image as
        written) and `pod`, waiting at most `budget_seconds` for any plugin."""
        deadline = asyncio.get_running_loop().time() + budget_seconds
        plugins = [p for p in self._plugins if p.spec.matches(image)]
        answers = await asyncio.gather(*(self._provide(p, image, pod, deadline, budget_seconds) for p in plugins))
        keyring = Keyring()
        failures = []
        for plugin, answer in zip(plugins, answers, strict=True):
            if isinstance(answer, str):
                failures.append(ProviderFailure(plugin.spec.name, answer))
                continue
            description = f"credential provider {plugin.spec.name}"
            keyring.add(
                (key, Credential(entry.username, entry.password, source=CredentialSource.of_node(description, key)))
                for key, entry in answer.items()
            )
        return ProviderCredentials(tuple(keyring.lookup(image)), tuple(failures), tuple(p.spec.name for p in plugins))

    async def aclose(self) -> None:
        """Stop every exec still running (their process groups are killed)."""
        tasks = [task for plugin in self._plugins for task in plugin.in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _provide(self, plugin: _Plugin, image: str, pod: PodContext, deadline: float, budget: float) -> _Answer:
        """pluginProvider.provide for a provider that matches: {} where the kubelet does not call the plugin."""
        loop = asyncio.get_running_loop()
        call = _Call(image, "", {}, None, image)
        attributes = plugin.spec.token_attributes
        if attributes is not None and pod.service_account:
            if self._tokens is None:
                return NO_GRANT_DETAIL
            known = self._tokens.annotations(pod.namespace, pod.service_account)
            if known is None:
                return f"could not read ServiceAccount {pod.namespace}/{pod.service_account} for its annotations"
            if any(key not in known for key in attributes.required_annotation_keys):
                return {}  # a required annotation is how a workload opts in: without it the kubelet does not call
            keys = (*attributes.required_annotation_keys, *attributes.optional_annotation_keys)
            annotations = {key: known[key] for key in keys if key in known}
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    token = await self._tokens.token(pod.namespace, pod.service_account, attributes.audience)
            except TokenUnavailable as unavailable:
                return f"needs a service account token: {unavailable.detail}"
            except TimeoutError:
                return f"needs a service account token, which was not issued within {budget:g} s"
            account = service_account_key(pod.namespace, pod.service_account, annotations, attributes.cache_type, token)
            flight = (image, token_hash(token), tuple(sorted(annotations.items())))
            call = _Call(image, token, annotations, account, flight)
        elif attributes is not None and attributes.require_service_account:
            return {}  # no service account: the kubelet does not call such a plugin
        now = self._clock()
        for base in cache_key_candidates(image):
            cached = plugin.answers.get((base, call.account_key), now)
            if cached is not None:
                return cached
        failed = plugin.failures.get(call.flight_key, now)
        if failed is not None:
            return failed
        task = plugin.in_flight.get(call.flight_key)
        if task is None:
            task = asyncio.ensure_future(self._exec(plugin, call))
            plugin.in_flight[call.flight_key] = task
            task.add_done_callback(lambda done: _forget(plugin, call.flight_key, done))
        # asyncio.wait neither cancels the exec at the timeout nor when this review is cancelled: it runs on
        # (within its own ceiling) and leaves its answer in the cache
        finished, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
        if not finished:
            return f"did not answer within the review's budget of {budget:g} s (its answer will be cached)"
        return task.result()

    async def _exec(self, plugin: _Plugin, call: _Call) -> _Answer:
        spec = plugin.spec
        env = {**os.environ, **dict(spec.env)}  # mergeEnvVars: the provider's variables win
        # The token, and the values the config gives the plugin (keys may be among them): never echoed from stderr
        secrets = tuple(v for v in (call.token, *(value for _, value in spec.env)) if len(v) >= 6)
        try:
            stdout = await run_plugin(
                self._bin_dir / spec.name,
                spec.args,
                request_body(spec, call.image, call.token, call.annotations),
                env,
                timeout=self._exec_timeout,
                secrets=secrets,
            )
            response = parse_response(spec, stdout, call.token)
        except ExecFailure as failure:
            detail = failure.detail
        except ProviderResponseError as error:
            detail = str(error)
        except Exception:  # a bug of ours: logged whole; the review says "could not verify"
            log.exception("credential provider failed", extra={"fields": {"provider": spec.name}})
            detail = "failed unexpectedly (see pullguard's log)"
        else:
            seconds = cache_seconds(spec, response)
            if seconds is not None:
                now = self._clock()
                key = (cache_key(response.cache_key_type, call.image), call.account_key)
                plugin.answers.put(key, response.auth, now + seconds, now)
            return response.auth
        log.warning(
            "credential provider gave no credentials",
            extra={"fields": {"provider": spec.name, "image": call.image, "error": detail}},
        )
        now = self._clock()
        plugin.failures.put(call.flight_key, detail, now + FAILURE_CACHE_SECONDS, now)
        return detail


def _forget(plugin: _Plugin, key: Hashable, task: asyncio.Task[_Answer]) -> None:
    if plugin.in_flight.get(key) is task:
        del plugin.in_flight[key]
    if not task.cancelled():
        task.exception()  # retrieved: a cancelled or failed exec nobody waits for is not reported as lost
