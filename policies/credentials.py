"""Which credentials the kubelet would use for an image: the pod's imagePullSecrets (else its ServiceAccount's,
for templates that ServiceAccount admission has not seen yet), read and matched as the kubelet reads them, then the
node's own (its docker config file, then its credential provider plugins).

The kubelet's keyring for a pull is `UnionDockerKeyring{pod secrets, UnionDockerKeyring{node files, providers}}`
(pkg/kubelet/images/image_manager.go `makeLookupPullCredentialsFunc`, pkg/credentialprovider/secrets): every
matching credential of each, in that order, tried in turn.
"""

from __future__ import annotations

from policies.image.keyring import Keyring
from policies.image.pull_secret_parse import (
    CredentialSource,
    MalformedDockerConfig,
    MissingSecretKey,
    PullSecretError,
    WrongSecretType,
    parse_pull_secret,
)
from policies.model import (
    ClusterFacts,
    Facts,
    NodeCredentials,
    PodContext,
    PodCredentials,
    SecretProblem,
    ServiceAccountFacts,
)

# The credential types live with the facts that carry them (policies.model); their makers live here.
__all__ = [
    "NO_NODE_CREDENTIALS",
    "NodeCredentials",
    "PodCredentials",
    "SecretProblem",
    "credentials_for",
    "pod_credentials",
    "pull_secret_names",
]


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


NO_NODE_CREDENTIALS = NodeCredentials()
