"""`pullguard check --timeout`: one budget for the whole run, shared by every registry lookup.

The webhook gives each review the policy's `registry.timeoutSeconds` (3 s by default), which is right for an
admission call but wrong for CI: 40 images behind a slow registry queue at the per-registry concurrency cap and
all miss a 3 s budget. Here every lookup may run until the run's deadline; whatever has no answer by then is
"could not verify" (a `timeout` fact), never a hang and never a guess.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from policies.config import Policy
from policies.lookup import RegistryConfig
from policies.registry_facts import Cause, ImageFacts
from webhook.check.progress import Progress
from webhook.kube.view import ClusterView
from webhook.registry.client import RegistryClient
from webhook.review.facts import DEADLINE_MARGIN_SECONDS, FactGatherer


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

    def _budget(self, policy: Policy) -> tuple[RegistryConfig, float, str]:
        remaining = self.deadline - asyncio.get_running_loop().time()
        detail = f"no answer within the run's --timeout budget of {self.budget:g}s"
        # Not validated (the policy caps timeoutSeconds at 30 for the webhook): this is the run's remaining time.
        config = policy.registry.model_copy(update={"timeout_seconds": max(remaining, 1e-3)})
        return config, remaining + DEADLINE_MARGIN_SECONDS if remaining > 0 else 0.0, detail

    def _started(self, task: asyncio.Task[ImageFacts]) -> None:
        progress = self.progress
        if progress is not None:
            progress.lookup_started()
            task.add_done_callback(lambda _: progress.lookup_done())

    def _answered(self, facts: ImageFacts, detail: str) -> ImageFacts:
        if facts.cause is Cause.DEADLINE:  # the client's deadline is the run's: say so, and where it waited
            waited = f"{facts.failed_role} {facts.failed_host}: " if facts.failed_role is not None else ""
            return replace(facts, detail=waited + detail)
        return facts
