"""Gather the facts the checks need: every lookup of one review runs concurrently, each distinct image once,
and the review stops waiting at its deadline. What is not known by then is reported as unknown.

Cluster facts come from the informer caches (reads only: no API call on the admission path); registry facts
from the registry client, with the credentials the kubelet would use for each image. The warm path (every
answer cached) creates no task and awaits nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from policies import mirrors
from policies.config import Policy
from policies.credentials import pod_credentials
from policies.keyring import repo_to_pull
from policies.model import ClusterFacts, Facts, ImageFacts, LookupStatus, Mode, Workload
from policies.pull_secret_parse import Credential as PullCredential
from webhook.kube.view import ClusterView
from webhook.registry.auth import Credential
from webhook.registry.client import RegistryClient

DEADLINE_MARGIN_SECONDS = 0.25  # beyond the lookup timeout: the lookup reports its own timeout first
CONFIRM_SECONDS = 1.0  # a cache miss on a Secret is confirmed at the API server, at most this long
REGISTRY_CHECKS = ("imageExists", "architecture", "pullSecrets")
Lookup = tuple[str, str]  # ("image" | "mirror", pull reference)


def cluster_facts(view: ClusterView | None, workload: Workload) -> ClusterFacts:
    """The slice of the cluster one workload needs: its ServiceAccount, the pull secrets it names (directly or
    through the ServiceAccount), and the nodes."""
    if view is None or not workload.images:
        return ClusterFacts()
    pod = workload.images[0].pod  # every image of a workload shares its pod
    account = view.service_account(workload.namespace, pod.service_account)
    names = pod.image_pull_secrets or (account.image_pull_secrets if account is not None else ())
    secrets = {name: view.secret(workload.namespace, name) for name in names}
    return ClusterFacts(
        known=True,
        service_account=account,
        secrets=secrets,
        nodes=view.nodes(),
        secrets_complete=view.secrets_complete,
    )


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

    async def gather(self, workload: Workload, policy: Policy, *, images: bool = True) -> Facts:
        """`images=False` (the mutating side) looks up only the mirror targets it may rewrite to."""
        if policy.excludes(workload.namespace):
            return Facts()
        cluster = cluster_facts(self.cluster, workload)
        if self.cluster is not None and any(secret is None for secret in cluster.secrets.values()):
            cluster = await self._confirm_missing(self.cluster, workload.namespace, cluster, policy)
        if self.registry is None:
            return Facts(cluster=cluster)
        wanted = any(policy.mode_for(check, workload.namespace) is not Mode.OFF for check in REGISTRY_CHECKS)
        needed = _image_lookups(workload, cluster) if wanted and images else {}
        needed |= _mirror_lookups(workload, cluster, policy, images=images)
        results: dict[Lookup, ImageFacts] = {}
        missing: dict[Lookup, tuple[Credential, ...]] = {}
        for key, credentials in needed.items():
            hit = self.registry.cached(key[1], credentials, policy.registry)
            if hit is not None:
                results[key] = hit
            else:
                missing[key] = credentials
        if missing:
            results |= await self._fetch(self.registry, missing, policy)
        return Facts(
            cluster=cluster,
            # The mirror targets' facts too (keyed by the rewritten image): why a rewrite was kept.
            images={ref: facts for (kind, ref), facts in results.items() if kind == "image" or not images},
            mirror_serves={
                ref: (True if f.status is LookupStatus.EXISTS else False if f.status.definite else None)
                for (kind, ref), f in results.items()
                if kind == "mirror"
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

    @staticmethod
    async def _fetch(
        registry: RegistryClient, missing: dict[Lookup, tuple[Credential, ...]], policy: Policy
    ) -> dict[Lookup, ImageFacts]:
        budget = policy.registry.timeout_seconds
        tasks = {
            key: asyncio.ensure_future(registry.lookup(key[1], credentials, policy.registry))
            for key, credentials in missing.items()
        }
        await asyncio.wait(tasks.values(), timeout=budget + DEADLINE_MARGIN_SECONDS)
        results: dict[Lookup, ImageFacts] = {}
        for (kind, reference), task in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                results[(kind, reference)] = task.result()
                continue
            task.cancel()  # the shared lookup itself is shielded and still fills the cache
            detail = f"no answer within the review's {budget:g}s budget"
            results[(kind, reference)] = ImageFacts(reference, LookupStatus.TIMEOUT, _domain(reference), detail=detail)
        return results


def _image_lookups(workload: Workload, cluster: ClusterFacts) -> dict[Lookup, tuple[Credential, ...]]:
    """Each distinct pull reference once, with the credentials the kubelet would send."""
    credentials = pod_credentials(workload.images[0].pod, cluster) if cluster.known else None
    lookups: dict[Lookup, tuple[Credential, ...]] = {}
    for image in workload.images:
        reference = image.pull_reference
        if reference is None or ("image", reference) in lookups or image.pull_policy == "Never":
            continue  # an image never pulled is never looked up: its registry does not matter
        found = credentials.for_image(image) if credentials is not None else []
        lookups[("image", reference)] = _registry_credentials(found)
    return lookups


def _mirror_lookups(
    workload: Workload, cluster: ClusterFacts, policy: Policy, *, images: bool
) -> dict[Lookup, tuple[Credential, ...]]:
    """Each mirror target with the credentials the kubelet would send for the *rewritten* reference (the pod's
    secrets matched to the mirror's host by the keyring rules); on the mutating side also each source image
    whose rule keeps private images, with the pod's credentials for the source."""
    if not policy.mirrors or not workload.images:
        return {}
    credentials = pod_credentials(workload.images[0].pod, cluster) if cluster.known else None

    def matched(reference: str) -> tuple[Credential, ...]:
        return _registry_credentials(credentials.keyring.lookup(repo_to_pull(reference)) if credentials else [])

    lookups: dict[Lookup, tuple[Credential, ...]] = {
        ("mirror", target): matched(target) for target in mirrors.candidates(workload, policy)
    }
    if not images:
        for image in mirrors.private_checks(workload, policy):
            if image.pull_reference is not None:
                lookups[("image", image.pull_reference)] = matched(image.image)
    return lookups


def _domain(reference: str) -> str:
    return reference.split("/", 1)[0]
