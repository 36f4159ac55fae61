"""Gather the facts the checks need: every lookup of one review runs concurrently, each distinct image once,
and the review stops waiting at its deadline. What is not known by then is reported as unknown.

Cluster facts come from the informer caches (reads only: no API call on the admission path); registry facts
from the registry client, with the credentials the kubelet would use for each image. The warm path (every
answer cached) creates no task and awaits nothing.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence
from dataclasses import replace

from policies.config import Policy
from policies.credentials import pull_secret_names
from policies.lookup import Lookup, LookupKind, RegistryConfig
from policies.model import ClusterFacts, Facts, Workload
from policies.plan import Side, credentials_only, plan
from policies.registry_facts import ImageFacts, LookupStatus
from webhook.kube.view import ClusterView
from webhook.node.keyring import NodeCredentialSource
from webhook.registry.client import RegistryClient

DEADLINE_MARGIN_SECONDS = 0.25  # beyond the lookup timeout: the lookup reports its own timeout first
CONFIRM_SECONDS = 1.0  # a cache miss on a Secret is confirmed at the API server, at most this long
PROVIDER_BUDGET_SHARE = 0.5  # of the lookup timeout, for credential provider plugins without a cached answer


def cluster_facts(view: ClusterView | None, workload: Workload) -> ClusterFacts:
    """The slice of the cluster one workload needs: its ServiceAccount, the pull secrets it names (directly or
    through the ServiceAccount), and the nodes."""
    if view is None or not workload.images:
        return ClusterFacts()
    pod = workload.images[0].pod  # every image of a workload shares its pod
    account = view.service_account(workload.namespace, pod.service_account)
    names = pull_secret_names(pod, account)
    secrets = {name: view.secret(workload.namespace, name) for name in names}
    return ClusterFacts(
        known=True,
        service_account=account,
        secrets=secrets,
        nodes=view.nodes(),
        namespace_labels=view.namespace_labels(workload.namespace),
        secrets_complete=view.secrets_complete,
    )


class FactGatherer:
    """Without a registry client (offline), no lookups are made and no credential provider runs; without a cluster
    view, no cluster facts. `node` holds the nodes' own credentials the policy names (`nodeCredentials`)."""

    def __init__(
        self,
        registry: RegistryClient | None = None,
        cluster: ClusterView | None = None,
        node: NodeCredentialSource | None = None,
    ) -> None:
        self.registry = registry
        self.cluster = cluster
        self.node = node if node is not None else NodeCredentialSource()

    async def gather(self, workload: Workload, policy: Policy, side: Side = Side.VALIDATE) -> Facts:
        """Run the core's plan for `side`: the validating side looks up the images its checks need, the mutating
        side the mirror targets it may rewrite to (and the sources whose rule keeps private images). Called by
        `webhook.review.review` once `policies.plan.scope` said there is something to do."""
        # The core has no clock: today's date is a fact, read only when an exception's expiry needs it (UTC).
        today = datetime.datetime.now(datetime.UTC).date() if policy.exceptions else None
        cluster = cluster_facts(self.cluster, workload)
        if self.cluster is not None and any(secret is None for secret in cluster.secrets.values()):
            cluster = await self._confirm_missing(self.cluster, workload.namespace, cluster, policy)
        if self.registry is None:  # offline
            credentials = credentials_only(workload, cluster, policy, side).credentials
            return Facts(cluster=cluster, credentials=credentials, today=today)
        # The plugins' answers are cached for hours: a cold one may take half the budget, the lookups the rest.
        node = (
            await self.node.gather(workload, policy, policy.registry.timeout_seconds * PROVIDER_BUDGET_SHARE)
            if self.node.configured(policy)
            else None  # the warm path awaits nothing
        )
        planned = plan(workload, cluster, policy, side, node)
        if not planned.lookups:
            return Facts(cluster=cluster, credentials=planned.credentials, node_credentials=node, today=today)
        results, missing = self.registry.cached_lookups(planned.lookups, policy.registry)
        if missing:
            results |= await self._fetch(self.registry, missing, policy)
        mirror, exists = LookupKind.MIRROR, LookupStatus.EXISTS  # each enum member read costs a lookup
        return Facts(
            cluster=cluster,
            credentials=planned.credentials,
            node_credentials=node,
            today=today,
            # The mirror targets' facts too (keyed by the rewritten image): why a rewrite was kept.
            images={lookup.reference: facts for lookup, facts in results.items()},
            mirror_serves={
                lookup.reference: (True if f.status is exists else False if f.status.definite else None)
                for lookup, f in results.items()
                if lookup.kind is mirror
            },
        )

    @staticmethod
    async def _confirm_missing(
        view: ClusterView, namespace: str, cluster: ClusterFacts, policy: Policy
    ) -> ClusterFacts:
        """Secrets the cache misses are asked for once more at the source, within the review's budget."""
        missing = [name for name, secret in cluster.secrets.items() if secret is None]
        asked = [view.confirm_secret(namespace, name) for name in missing]
        try:
            async with asyncio.timeout(min(CONFIRM_SECONDS, policy.registry.timeout_seconds)):
                found = await asyncio.gather(*asked)
        except TimeoutError:
            return cluster
        return replace(cluster, secrets={**cluster.secrets, **dict(zip(missing, found, strict=True))})

    def _budget(self, policy: Policy) -> tuple[RegistryConfig, float, str]:
        """The lookups' config, how long to wait for them, and the words for a lookup still unanswered then."""
        budget = policy.registry.timeout_seconds
        return policy.registry, budget + DEADLINE_MARGIN_SECONDS, f"no answer within the review's {budget:g}s budget"

    def _started(self, task: asyncio.Task[ImageFacts]) -> None:
        """A lookup task began (a hook: `check` counts them for its progress line)."""

    def _answered(self, facts: ImageFacts, detail: str) -> ImageFacts:
        """A lookup's answer as the review reports it (a hook: `check` words a timeout as its run's budget)."""
        return facts

    async def _fetch(
        self, registry: RegistryClient, missing: Sequence[Lookup], policy: Policy
    ) -> dict[Lookup, ImageFacts]:
        config, wait, detail = self._budget(policy)
        if wait <= 0:
            return {lookup: _timed_out(lookup.reference, detail) for lookup in missing}
        tasks = {}
        for lookup in missing:
            tasks[lookup] = task = asyncio.ensure_future(registry.lookup(lookup.reference, lookup.credentials, config))
            self._started(task)
        await asyncio.wait(tasks.values(), timeout=wait)
        results: dict[Lookup, ImageFacts] = {}
        for lookup, task in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                results[lookup] = self._answered(task.result(), detail)
                continue
            task.cancel()  # the shared lookup itself is shielded and still fills the cache
            results[lookup] = _timed_out(lookup.reference, detail)
        return results


def _timed_out(reference: str, detail: str) -> ImageFacts:
    return ImageFacts(reference, LookupStatus.TIMEOUT, reference.split("/", 1)[0], detail=detail)
