"""`pullguard check --timeout`: one budget for the whole run, shared by every registry lookup.

The webhook gives each review the policy's `registry.timeoutSeconds` (3 s by default), which is right for an
admission call but wrong for CI: 40 images behind a slow registry queue at the per-registry concurrency cap and
all miss a 3 s budget. Here every lookup may run until the run's deadline; whatever has no answer by then is
"could not verify" (a `timeout` fact), never a hang and never a guess.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import replace

from policies.config import Policy
from policies.model import ImageFacts, LookupStatus
from policies.plan import Lookup
from webhook.check.progress import Progress
from webhook.kube.view import ClusterView
from webhook.registry.client import RegistryClient
from webhook.review.facts import FactGatherer

_OWN_TIMEOUT = re.compile(r"no answer within [0-9.]+(?:e[+-]?[0-9]+)?s\b")  # the client's words for its deadline
MARGIN_SECONDS = 0.25  # the lookup's own deadline strikes first and names what it was waiting for


class BudgetedGatherer(FactGatherer):
    """A FactGatherer whose registry lookups end at one deadline (`loop.time()` units) instead of a per-review
    budget; `budget` is the total in seconds, for the messages. Counts lookups into `progress`."""

    def __init__(
        self,
        registry: RegistryClient | None,
        cluster: ClusterView | None,
        *,
        deadline: float,
        budget: float,
        progress: Progress | None = None,
    ) -> None:
        super().__init__(registry, cluster)
        self.deadline = deadline
        self.budget = budget
        self.progress = progress

    async def _fetch(  # type: ignore[override]  # an instance method here: it needs the deadline
        self, registry: RegistryClient, missing: Sequence[Lookup], policy: Policy
    ) -> dict[Lookup, ImageFacts]:
        loop = asyncio.get_running_loop()
        remaining = self.deadline - loop.time()
        detail = f"no answer within the run's --timeout budget of {self.budget:g}s"
        if remaining <= 0:
            return {key: _timed_out(key.reference, detail) for key in missing}
        # Not validated (the policy caps timeoutSeconds at 30 for the webhook): this is the run's remaining time.
        config = policy.registry.model_copy(update={"timeout_seconds": remaining})
        progress = self.progress
        tasks: dict[Lookup, asyncio.Task[ImageFacts]] = {}
        for key in missing:
            task = asyncio.create_task(registry.lookup(key.reference, key.credentials, config))
            if progress is not None:
                progress.lookup_started()
                task.add_done_callback(lambda _: progress.lookup_done())
            tasks[key] = task
        await asyncio.wait(tasks.values(), timeout=remaining + MARGIN_SECONDS)
        results: dict[Lookup, ImageFacts] = {}
        for key, task in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                facts = task.result()
                if facts.status is LookupStatus.TIMEOUT:
                    facts = replace(facts, detail=_OWN_TIMEOUT.sub(detail, facts.detail))
                results[key] = facts
                continue
            task.cancel()
            results[key] = _timed_out(key.reference, detail)
        return results


def _timed_out(reference: str, detail: str) -> ImageFacts:
    return ImageFacts(reference, LookupStatus.TIMEOUT, reference.split("/", 1)[0], detail=detail)
