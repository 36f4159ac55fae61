"""Gather the facts the checks need: every lookup of one review runs concurrently, each distinct image once,
and the review stops waiting at its deadline. What is not known by then is reported as unknown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from policies import mirrors
from policies.config import Policy
from policies.model import ContainerImage, Facts, ImageFacts, LookupStatus, Mode, Workload
from policies.reference import parse_docker_ref
from webhook.registry.auth import Credential
from webhook.registry.client import RegistryClient

CredentialProvider = Callable[[ContainerImage], Sequence[Credential]]
DEADLINE_MARGIN_SECONDS = 0.25  # beyond the lookup timeout: the lookup reports its own timeout first
REGISTRY_CHECKS = ("imageExists", "architecture", "pullSecrets")


def no_credentials(image: ContainerImage) -> Sequence[Credential]:
    return ()


class FactGatherer:
    """Without a registry client (offline), no lookups are made and every image is `notChecked`."""

    def __init__(
        self, registry: RegistryClient | None = None, credentials: CredentialProvider = no_credentials
    ) -> None:
        self.registry = registry
        self._credentials = credentials

    async def gather(self, workload: Workload, policy: Policy) -> Facts:
        if self.registry is None or policy.excludes(workload.namespace):
            return Facts()
        wanted = any(policy.mode_for(check, workload.namespace) is not Mode.OFF for check in REGISTRY_CHECKS)
        images = self._image_lookups(workload, policy) if wanted else {}
        targets = mirrors.candidates(workload, policy)
        mirror_lookups = {t: self._lookup(t, (), policy) for t in targets}
        jobs = {("image", k): v for k, v in images.items()} | {("mirror", k): v for k, v in mirror_lookups.items()}
        if not jobs:
            return Facts()
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
            images={ref: facts for (kind, ref), facts in results.items() if kind == "image"},
            mirror_serves={
                ref: (True if f.status is LookupStatus.EXISTS else False if f.status.definite else None)
                for (kind, ref), f in results.items()
                if kind == "mirror"
            },
        )

    def _image_lookups(self, workload: Workload, policy: Policy) -> dict[str, Coroutine[Any, Any, ImageFacts]]:
        lookups: dict[str, Coroutine[Any, Any, ImageFacts]] = {}
        for image in workload.images:
            reference = image.pull_reference
            if reference is not None and reference not in lookups:
                lookups[reference] = self._lookup(reference, self._credentials(image), policy)
        return lookups

    async def _lookup(self, reference: str, credentials: Sequence[Credential], policy: Policy) -> ImageFacts:
        if self.registry is None:
            return ImageFacts(reference, LookupStatus.NOT_CHECKED, _domain(reference))
        return await self.registry.lookup(parse_docker_ref(reference), credentials, policy.registry)


def _domain(reference: str) -> str:
    return reference.split("/", 1)[0]
