"""A TTL cache whose misses are coalesced: concurrent lookups of one key make one upstream call.

The shared call is shielded, so a review that hits its deadline stops waiting without cancelling the
lookup: the answer still lands in the cache for the retry.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from policies.image.pull_secret_parse import Credential
from policies.lookup import RegistryConfig
from policies.registry_facts import ImageFacts, LookupStatus

Value = TypeVar("Value")


class CoalescingCache(Generic[Value]):
    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[Hashable, tuple[float, Value]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[Value]] = {}
        self._max_entries = max_entries
        self._clock = clock
        self.hits = self.misses = self.coalesced = 0

    def peek(self, key: Hashable) -> Value | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    async def get(
        self, key: Hashable, produce: Callable[[], Awaitable[Value]], ttl: Callable[[Value], float]
    ) -> tuple[Value, str]:
        """The cached or produced value, and how it was had: "hit", "coalesced" or "miss"."""
        cached = self.peek(key)
        if cached is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return cached, "hit"
        running = self._inflight.get(key)
        if running is not None:
            self.coalesced += 1
            return await asyncio.shield(running), "coalesced"
        self.misses += 1
        task: asyncio.Future[Value] = asyncio.ensure_future(produce())
        self._inflight[key] = task

        def store(done: asyncio.Future[Value]) -> None:
            self._inflight.pop(key, None)
            if done.cancelled() or done.exception() is not None:
                return
            value = done.result()
            seconds = ttl(value)
            if seconds > 0:
                self._entries[key] = (self._clock() + seconds, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)

        task.add_done_callback(store)
        return await asyncio.shield(task), "miss"


UNKNOWN_TTL_SECONDS = 5.0  # network trouble: retry soon, but do not hammer a struggling registry


def lookup_key(reference: str, credentials: Sequence[Credential], config: RegistryConfig, platforms: bool) -> Hashable:
    """What makes two lookups the same question. Only the settings that change the answer are in it (and
    hashing the whole pydantic config on every review would cost more than the lookup)."""
    identities = tuple(c.identity for c in credentials) if credentials else ()
    return (reference, identities, platforms, config.hosts_dir, config.allow_link_local)


def answer_ttl(facts: ImageFacts, config: RegistryConfig) -> float:
    """How long an answer stands: the policy's positive or negative TTL; network trouble only briefly."""
    if facts.status is LookupStatus.EXISTS:
        return config.cache.positive_seconds
    if facts.status is LookupStatus.RATE_LIMITED and facts.retry_after_seconds is not None:
        return min(facts.retry_after_seconds, config.cache.negative_seconds)
    if facts.status.definite:
        return config.cache.negative_seconds
    return min(UNKNOWN_TTL_SECONDS, config.cache.negative_seconds)
