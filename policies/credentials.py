"""Which credentials the kubelet would use for an image: the pod's imagePullSecrets (else its ServiceAccount's,
for templates that ServiceAccount admission has not seen yet), read and matched as the kubelet reads them."""

from __future__ import annotations

from dataclasses import dataclass

from policies.keyring import Keyring, repo_to_pull
from policies.model import ClusterFacts, ContainerImage, Facts, PodContext, ServiceAccountFacts
from policies.pull_secret_parse import (
    Credential,
    CredentialSource,
    MalformedDockerConfig,
    MissingSecretKey,
    PullSecretError,
    WrongSecretType,
    parse_pull_secret,
)


@dataclass(frozen=True, slots=True)
class SecretProblem:
    secret: str
    problem: str  # missing | unverifiable | wrongType | missingKey | unreadable | malformed
    detail: str


@dataclass(frozen=True, slots=True)
class PodCredentials:
    secret_names: tuple[str, ...]
    from_service_account: bool
    problems: tuple[SecretProblem, ...]
    keyring: Keyring
    registry_keys: tuple[str, ...]  # the registries the readable secrets have entries for (no credentials)

    @property
    def unverifiable(self) -> tuple[str, ...]:
        """Secrets the view does not hold and cannot call missing (see ClusterFacts.secrets_complete)."""
        return tuple(p.secret for p in self.problems if p.problem == "unverifiable")

    def for_image(self, image: ContainerImage) -> list[Credential]:
        return self.keyring.lookup(repo_to_pull(image.image)) if image.reference is not None else []


def pull_secret_names(pod: PodContext, account: ServiceAccountFacts | None) -> tuple[str, ...]:
    """The secrets the kubelet uses: the pod's own imagePullSecrets, else its ServiceAccount's (ServiceAccount
    admission copies them into the pod; a template has not been through it yet)."""
    return pod.image_pull_secrets or (account.image_pull_secrets if account is not None else ())


def pod_credentials(pod: PodContext, cluster: ClusterFacts) -> PodCredentials:
    names = pull_secret_names(pod, cluster.service_account)
    from_account = not pod.image_pull_secrets and bool(names)
    keyring = Keyring()
    problems: list[SecretProblem] = []
    keys: list[str] = []
    for name in names:
        secret = cluster.secrets.get(name)
        if secret is None and not cluster.secrets_complete:
            problems.append(SecretProblem(name, "unverifiable", f'secret "{name}" is not in the view'))
            continue
        if secret is None:
            problems.append(SecretProblem(name, "missing", f'secret "{name}" does not exist in {pod.namespace}'))
            continue
        try:
            config = parse_pull_secret(secret.type, secret.data)
        except WrongSecretType as exc:
            detail = str(exc) if secret.type else "its type is not a pull secret type; the kubelet ignores it"
            problems.append(SecretProblem(name, "wrongType", detail))
            continue
        except MissingSecretKey as exc:
            problems.append(SecretProblem(name, "missingKey", str(exc)))
            continue
        except MalformedDockerConfig as exc:
            problems.append(SecretProblem(name, "malformed", str(exc)))
            continue
        except PullSecretError as exc:  # UndecodableSecret: not base64
            problems.append(SecretProblem(name, "unreadable", str(exc)))
            continue
        keyring.add_config(config, CredentialSource(pod.namespace, name))
        keys.extend(config)
    return PodCredentials(tuple(names), from_account, tuple(problems), keyring, tuple(dict.fromkeys(keys)))


def credentials_for(pod: PodContext, facts: Facts) -> PodCredentials | None:
    """The pod's credentials as the plan parsed them; parsed here only for facts built without a plan."""
    if facts.credentials is not None or not facts.cluster.known:
        return facts.credentials
    return pod_credentials(pod, facts.cluster)
