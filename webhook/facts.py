"""Gather the facts the checks need: every lookup of one review runs concurrently, each distinct image once,
and the review stops waiting at its deadline. What is not known by then is reported as unknown.

Cluster facts come from the informer caches (reads only: no API call on the admission path); registry facts
from the registry client, with the credentials the kubelet would use for each image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

from policies import mirrors
from policies.config import Policy
from policies.credentials import pod_credentials
from policies.model import ClusterFacts, Facts, ImageFacts, LookupStatus, Mode, Workload
from policies.pull_secret_parse import Credential as PullCredential
from policies.reference import parse_docker_ref
from webhook.kube.view import ClusterView
from webhook.registry.auth import Credential
from webhook.registry.client import RegistryClient

DEADLINE_MARGIN_SECONDS = 0.25  # beyond the lookup timeout: the lookup reports its own timeout first
REGISTRY_CHECKS = ("imageExists", "architecture", "pullSecrets")


def cluster_facts(view: ClusterView | None, workload: Workload) -> ClusterFacts:
    """The slice of the cluster one workload needs: its ServiceAccount, the pull secrets it names (directly or
    through the ServiceAccount), and the nodes."""
    if view is None or not workload.images:
        return ClusterFacts()
    pod = workload.images[0].pod  # every image of a workload shares its pod
    account = view.service_account(workload.namespace, pod.service_account)
    names = pod.image_pull_secrets or (account.image_pull_secrets if account is not None else ())
    secrets = {name: view.secret(workload.namespace, name) for name in names}
    return ClusterFacts(known=True, service_account=account, secrets=secrets, nodes=view.nodes())


def _registry_credentials(credentials: Sequence[PullCredential]) -> tuple[Credential, ...]:
    return tuple(
        Credential(c.username, c.password, f"secret {c.source.namespace}/{c.source.name}" if c.source else "")
        for c in credentials
    )


class FactGatherer:
    """Without a registry client (offline), no lookups are made; without a cluster view, no cluster facts."""

    def __init__(self, registry: RegistryClient | None = None, cluster: ClusterView | None = None) -> None:
        self.registry = registry
        self.cluster = cluster

    async def gather(self, workload: Workload, policy: Policy) -> Facts:
        if policy.excludes(workload.namespace):
            return Facts()
        cluster = cluster_facts(self.cluster, workload)
        if self.registry is None:
            return Facts(cluster=cluster)
        wanted = any(policy.mode_for(check, workload.namespace) is not Mode.OFF for check in REGISTRY_CHECKS)
        images = self._image_lookups(workload, policy, cluster) if wanted else {}
        mirror_lookups = {t: self._lookup(t, (), policy) for t in mirrors.candidates(workload, policy)}
        jobs = {("image", k): v for k, v in images.items()} | {("mirror", k): v for k, v in mirror_lookups.items()}
        if not jobs:
            return Facts(cluster=cluster)
        tasks = {key: asyncio.ensure_future(job) for key, job in jobs.items()}
        await asyncio.wait(tasks.values(), timeout=policy.registry.timeout_seconds + DEADLINE_MARGIN_SECONDS)
        results: dict[tuple[str, str], ImageFacts] = {}
        for (kind, reference), task in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                results[(kind, reference)] = task.result()
            else:
                task.cancel()  # the shared lookup itself is shielded and still fills the cache
                detail = f"no answer within the review's {policy.registry.timeout_seconds:g}s budget"
                results[(kind, reference)] = ImageFacts(
                    reference, LookupStatus.TIMEOUT, _domain(reference), detail=detail
                )
        return Facts(
            cluster=cluster,
            images={ref: facts for (kind, ref), facts in results.items() if kind == "image"},
            mirror_serves={
                ref: (True if f.status is LookupStatus.EXISTS else False if f.status.definite else None)
                for (kind, ref), f in results.items()
                if kind == "mirror"
            },
        )

    def _image_lookups(
        self, workload: Workload, policy: Policy, cluster: ClusterFacts
    ) -> dict[str, Coroutine[Any, Any, ImageFacts]]:
        credentials = pod_credentials(workload.images[0].pod, cluster) if cluster.known else None
        lookups: dict[str, Coroutine[Any, Any, ImageFacts]] = {}
        for image in workload.images:
            reference = image.pull_reference
            if reference is None or reference in lookups or image.pull_policy == "Never":
                continue  # an image never pulled is never looked up: its registry does not matter
            found = credentials.for_image(image) if credentials is not None else []
            lookups[reference] = self._lookup(reference, _registry_credentials(found), policy)
        return lookups

    async def _lookup(self, reference: str, credentials: Sequence[Credential], policy: Policy) -> ImageFacts:
        if self.registry is None:
            return ImageFacts(reference, LookupStatus.NOT_CHECKED, _domain(reference))
        return await self.registry.lookup(parse_docker_ref(reference), credentials, policy.registry)


def _domain(reference: str) -> str:
    return reference.split("/", 1)[0]
