"""The node's half of the kubelet's keyring for one review: the nodes' docker config file and what their credential
provider plugins answer for each image (policy `nodeCredentials`), gathered once per review within its budget.

Nothing is done, and no task is made, when the policy names neither (the common case): the review path pays for
this only where an operator asked for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from policies.config import NodeCredentialsConfig, Policy
from policies.credential_providers import ProviderConfigError
from policies.credentials import NodeCredentials
from policies.image.keyring import repo_to_pull
from policies.model import ContainerImage, Workload
from webhook.node.credential_providers import CredentialProviders, ProviderCredentials, ServiceAccountTokens
from webhook.node.docker_config_files import NodeConfigFiles
from webhook.util.files import Signature, file_signature

log = logging.getLogger("pullguard.node")


class NodeCredentialSource:
    """Holds the loaded node credential sources across reviews (files re-read and the provider config re-loaded
    only when they change); `tokens` lets providers with tokenAttributes ask for service account tokens."""

    def __init__(self, tokens: ServiceAccountTokens | None = None) -> None:
        self._tokens = tokens
        self._files = NodeConfigFiles()
        self._providers_key: tuple[str, str, Signature | None] | None = None
        self._providers: CredentialProviders | str | None = None  # str: why the config could not be loaded

    @staticmethod
    def configured(policy: Policy) -> bool:
        config = policy.node_credentials
        return bool(config.docker_config_files) or config.credential_provider_config is not None

    async def gather(self, workload: Workload, policy: Policy, budget_seconds: float) -> NodeCredentials | None:
        if not self.configured(policy):
            return None
        config = policy.node_credentials
        files = self._files.keyring(config.docker_config_files)
        repositories = _repositories(workload.images)
        failures: dict[str, tuple[str, ...]] = {}
        if files.problem is not None:
            failures = dict.fromkeys(repositories, (files.problem,))
        providers = self._load_providers(config)
        if isinstance(providers, str):
            for repository in repositories:
                failures[repository] = (*failures.get(repository, ()), providers)
            return NodeCredentials(files.keyring, {}, failures)
        if providers is None or not repositories:
            return NodeCredentials(files.keyring, {}, failures)
        pod = workload.images[0].pod
        answers: Sequence[ProviderCredentials] = await asyncio.gather(
            *(providers.credentials(r, pod, budget_seconds=budget_seconds) for r in repositories)
        )
        provided = {r: a.credentials for r, a in zip(repositories, answers, strict=True) if a.credentials}
        for repository, answer in zip(repositories, answers, strict=True):
            if answer.failures:
                said = tuple(f"credential provider {f.provider}: {f.detail}" for f in answer.failures)
                failures[repository] = (*failures.get(repository, ()), *said)
        return NodeCredentials(files.keyring, provided, failures)

    def _load_providers(self, config: NodeCredentialsConfig) -> CredentialProviders | str | None:
        path, bin_dir = config.credential_provider_config, config.credential_provider_bin_dir
        if path is None or bin_dir is None:
            return None
        key = (path, bin_dir, file_signature(Path(path)))
        if key != self._providers_key:
            self._providers_key = key
            try:
                self._providers = CredentialProviders.load(Path(path), Path(bin_dir), tokens=self._tokens)
            except (OSError, ProviderConfigError) as exc:
                self._providers = f"credential provider config {path} cannot be used ({exc})"
                log.warning("node credentials: %s", self._providers)
        return self._providers


def _repositories(images: Sequence[ContainerImage]) -> list[str]:
    """Each repository the kubelet would look credentials up for (what its keyring and the plugins are given)."""
    seen: dict[str, None] = {}
    for image in images:
        if image.reference is not None and not image.never_pulled:
            seen.setdefault(repo_to_pull(image.image))
    return list(seen)
