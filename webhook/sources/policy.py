"""Where the live policy comes from, and how a bad policy never replaces a good one."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from policies.config import DEFAULT_POLICY, MAX_ERROR_CHARS, Policy, PolicyError, parse_policy
from webhook.limits import clip
from webhook.metrics import Metrics
from webhook.util.files import Signature, file_signature

log = logging.getLogger("pullguard.policy")


class PolicyHolder:
    """The policy every review reads; swapped atomically (a single attribute write) on reload."""

    def __init__(self, metrics: Metrics, policy: Policy = DEFAULT_POLICY, source: str = "embedded default") -> None:
        self.policy = policy
        self.source = source
        self.last_error: str | None = None
        # Sources that exist but never gave a valid policy, with why: while any is here, the policy in force is
        # not the one the admin gave, so the service is not ready (a last good policy exists only once adopted).
        self.unsettled: dict[str, str] = {}
        # A source followed but not created yet (the policy ConfigMap of a fresh install): the policy in force is
        # the one pullguard started with, and /readyz says so.
        self.absent: str | None = None
        self._settled: set[str] = set()
        self._metrics = metrics
        metrics.policy_valid.set(1)

    @property
    def ready(self) -> bool:
        return not self.unsettled

    @property
    def note(self) -> str | None:
        """Why the policy in force is not the followed source's, when that source does not exist."""
        if self.absent is None:
            return None
        return f"{self.absent} does not exist: the {self.source} policy is in force until it is created"

    def missing(self, source: str) -> None:
        """The followed source does not exist (yet): keep the policy in force, and say which it is."""
        self.absent = source
        log.info("policy source absent", extra={"fields": {"source": source, "policy": self.source}})

    def offer(self, text: str, source: str) -> bool:
        """Adopt the policy in `text` if it is valid; otherwise keep the current one and record why."""
        try:
            policy = parse_policy(text, source)
        except PolicyError as exc:
            self.reject(source, str(exc))
            return False
        self.policy, self.source, self.last_error = policy, source, None
        self._appeared(source)
        self._settled.add(source)
        self.unsettled.pop(source, None)
        self._metrics.policy_reloads.labels("ok").inc()
        self._metrics.policy_valid.set(1)
        log.info("policy loaded", extra={"fields": {"source": source}})
        return True

    def reject(self, source: str, error: str) -> None:
        error = clip(error, MAX_ERROR_CHARS)  # logged, and on /readyz at every probe
        self.last_error = error
        self._appeared(source)
        if source not in self._settled:
            self.unsettled[source] = error
        self._metrics.policy_reloads.labels("error").inc()
        self._metrics.policy_valid.set(0)
        fields = {"source": source, "error": error, "kept": self.source}
        log.error("policy rejected, keeping the last good one", extra={"fields": fields})

    def _appeared(self, source: str) -> None:
        if self.absent == source:
            self.absent = None

    def withdraw(self, source: str) -> None:
        """A source that never gave a valid policy is gone (a deleted ConfigMap): it holds nothing back now."""
        if self.unsettled.pop(source, None) is not None:
            log.info("invalid policy source removed", extra={"fields": {"source": source, "policy": self.source}})


class PolicyFileWatcher:
    """Re-reads a policy file when it changes (polled: see webhook.util.files)."""

    def __init__(self, holder: PolicyHolder, path: Path, interval: float = 1.0) -> None:
        self._holder, self._path, self._interval = holder, path, interval
        self._signature: Signature | None = None

    def poll(self) -> None:
        signature = file_signature(self._path)
        if signature is None or signature == self._signature:
            return
        self._signature = signature
        try:
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._holder.reject(str(self._path), f"unreadable: {exc}")
            return
        self._holder.offer(text, str(self._path))

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self._interval)
