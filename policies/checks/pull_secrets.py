"""`pullSecrets`: the secrets the kubelet would use for an image exist, can be read, match the image's registry
under the kubelet's keyring rules, and are accepted by the registry.

The kubelet silently ignores a pull secret it cannot find or read and pulls anonymously: the failure shows up
later as an unauthorized pull, far from its cause. These findings name the cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from policies.checks.spec import CheckSpec, RuleText
from policies.credentials import PodCredentials, SecretProblem, credentials_for
from policies.model import CheckName, ContainerImage, Facts, Finding, Gap, Reason
from policies.node_pull import seen_from_nodes
from policies.registry_facts import ImageFacts, LookupStatus

if TYPE_CHECKING:  # the policy schema is built from this module's record (policies.checks.spec)
    from policies.config import Policy

NAME = CheckName.PULL_SECRETS
_AUTH_FAILURES = (LookupStatus.UNAUTHORIZED, LookupStatus.DENIED)


def check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    if image.reference is None or image.never_pulled:
        return ()
    found = facts.image(image)
    findings: list[Finding] = []
    credentials = credentials_for(image.pod, facts)
    if credentials is not None:
        # The kubelet skips a secret it cannot find or read; when the registry serves the image without it (public,
        # or another secret's or the node's credentials), the pod runs: worth fixing, never a reason to deny.
        pulls_anyway = found is not None and found.status is LookupStatus.EXISTS
        findings += [
            _secret_finding(image, p, credentials, advisory=pulls_anyway and p.problem != "malformed")
            for p in credentials.problems
            if p.problem != "unverifiable"
        ]
    unseen = credentials.unverifiable if credentials is not None else None  # None: no cluster view at all
    if found is not None and found.status in _AUTH_FAILURES:
        if not found.credential_sources and (unseen is None or unseen):
            findings.append(_unverifiable(image, found, unseen))  # what it asks for may be in what we cannot see
        else:
            findings.append(seen_from_nodes(_auth_finding(image, found, credentials), image, facts, policy))
    elif (
        credentials is not None
        and credentials.registry_keys
        and not unseen
        and not credentials.for_image(image)
        and (found is None or found.status is not LookupStatus.EXISTS)
    ):
        findings.append(_no_matching_entry(image, credentials))
    return findings


def blind(image: ContainerImage, facts: Facts) -> Gap | None:
    """Without a cluster view the secrets the kubelet would use are unknown (the pod's own may be named, its
    ServiceAccount's never are); offline, no registry said whether the pod's secrets let it pull."""
    if image.reference is None or image.never_pulled:
        return None
    if not facts.cluster.known:
        return Gap.NO_CLUSTER
    credentials = facts.credentials
    if facts.image(image) is None and credentials is not None and credentials.secret_names:
        return Gap.NO_LOOKUP
    return None


def _unverifiable(image: ContainerImage, found: ImageFacts, unseen: tuple[str, ...] | None) -> Finding:
    """The registry wants credentials, and the secrets that may hold them are out of sight: the view has not got
    them (`check` on files), or there is no cluster view at all."""
    named = unseen if unseen is not None else image.pod.image_pull_secrets
    names = ", ".join(f'"{name}"' for name in named)
    secrets = f"pull secret {names} is" if len(named) == 1 else f"pull secrets {names} are"
    if unseen is not None:
        where = f"{secrets} not in the input"
        hint = "check with --kubeconfig, or put the Secrets in the input and pass --complete-input"
    else:
        where = f"{secrets} out of sight" if named else "its ServiceAccount's pull secrets are out of sight"
        where += " (no cluster view)"
        hint = "give pullguard a cluster view (--kubeconfig, or run it in the cluster) to check the pull secrets"
    message = f"{image.label}: could not verify: registry {found.registry} answered {found.status} and {where}"
    return Finding(NAME, image, Reason.UNVERIFIED, message, hint, unknown=True)


def _secret_finding(
    image: ContainerImage, problem: SecretProblem, credentials: PodCredentials, *, advisory: bool
) -> Finding:
    return replace(_secret_problem(image, problem, credentials), advisory=advisory)


def _secret_problem(image: ContainerImage, problem: SecretProblem, credentials: PodCredentials) -> Finding:
    namespace = image.pod.namespace
    via = " (from its ServiceAccount)" if credentials.from_service_account else ""
    registry = image.reference.domain if image.reference is not None else "<registry>"  # the keyring's key
    create = f"kubectl create secret docker-registry {problem.secret} -n {namespace} --docker-server={registry}"
    secret = problem.secret
    match problem.problem:
        case "missing":
            message = f'imagePullSecret "{secret}"{via} does not exist in namespace {namespace}'
            message += ": the kubelet ignores it and pulls anonymously"
            return Finding(NAME, image, Reason.SECRET_IGNORED, message, f"create it: {create}", secret=secret)
        case "malformed":
            message = f'imagePullSecret "{secret}"{via} is malformed ({problem.detail}): pulls will fail'
            return Finding(NAME, image, Reason.ERR_IMAGE_PULL, message, f"recreate it: {create}", secret=secret)
        case _:
            message = f'imagePullSecret "{secret}"{via} cannot be used ({problem.detail})'
            hint = f"recreate it as a pull secret: {create}"
            return Finding(NAME, image, Reason.SECRET_IGNORED, message, hint, secret=secret)


def reword(findings: Sequence[Finding]) -> Sequence[Finding]:
    """One secret for images of several registries: `kubectl create secret docker-registry` writes one registry's
    entry, so per-image commands cannot all be run; every such finding gets the one command that writes them all."""
    registries: dict[str, list[str]] = {}
    for finding in findings:
        reference = finding.container.reference
        if finding.secret is not None and reference is not None:  # only _secret_problem names a secret
            registries.setdefault(finding.secret, [])
            if reference.domain not in registries[finding.secret]:
                registries[finding.secret].append(reference.domain)
    shared = {secret: hosts for secret, hosts in registries.items() if len(hosts) > 1}
    if not shared:
        return findings
    return [
        replace(f, hint=_all_entries(f.secret, f.container.pod.namespace, shared[f.secret]))
        if f.secret in shared
        else f
        for f in findings
    ]


def _all_entries(secret: str, namespace: str, registries: list[str]) -> str:
    auths = ", ".join(f'"{host}": {{"auth": "BASE64(user:password)"}}' for host in registries)
    return (
        f"one secret for {len(registries)} registries ({', '.join(registries)}): write config.json as "
        f'{{"auths": {{{auths}}}}}, then kubectl create secret generic {secret} -n {namespace} '
        "--type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=config.json (delete the old one first)"
    )


def _auth_finding(image: ContainerImage, found: ImageFacts, credentials: PodCredentials | None) -> Finding:
    """Say what happened to the credentials: an entry matched and was rejected, or none matched, or none exist.
    `credential_sources` lists the secrets whose entry matched the image (the keyring's answer)."""
    registry = found.registry
    sources = ", ".join(found.credential_sources)
    detail = found.detail or "insufficient scope"
    if found.status is LookupStatus.DENIED and found.credentials_sent:
        message = f"{image.label}: registry {registry} denied the account in {sources} pull access ({detail})"
        hint = "grant that account pull access to the repository, or check the repository name"
    elif found.status is LookupStatus.DENIED:
        message = f"{image.label}: registry {registry} denied an anonymous pull ({detail})"
        hint = f"check the repository name; if it is private, add an imagePullSecret for {registry}"
        if credentials is not None and credentials.registry_keys and not sources:
            keys = ", ".join(credentials.registry_keys[:4])
            hint += f" (no entry of {_names(credentials)} matches it; entries: {keys})"
    elif found.credentials_sent:
        message = f"{image.label}: registry {registry} rejected the credentials of {sources}"
        hint = f"update the secret with current credentials for {registry}"
    elif sources:  # an entry matched, but the registry's challenge gave no way to present it
        message = (
            f"{image.label}: registry {registry} answered unauthorized before the credentials of {sources} "
            f"could be presented ({found.detail or 'no usable challenge'})"
        )
        hint = f"check that {registry} offers Basic or Bearer authentication to the nodes"
    elif credentials is not None and credentials.registry_keys:
        keys = ", ".join(credentials.registry_keys[:4])
        message = (
            f"{image.label}: registry {registry} requires authentication and no entry of "
            f"{_names(credentials)} matches it (entries: {keys})"
        )
        hint = f"add an entry for {registry} to the pull secret (the key is the registry host)"
    else:
        message = f"{image.label}: unauthorized: registry {registry} requires credentials and the pod has none"
        hint = f"add an imagePullSecret for {registry} (kubectl create secret docker-registry)"
    return Finding(NAME, image, Reason.ERR_IMAGE_PULL, message, hint)


def _no_matching_entry(image: ContainerImage, credentials: PodCredentials) -> Finding:
    registry = image.reference.domain if image.reference is not None else "?"
    keys = ", ".join(credentials.registry_keys[:4])
    message = f"{image.label}: no entry of {_names(credentials)} matches registry {registry} (entries: {keys})"
    hint = f"add an entry for {registry} to the secret, unless the image is public"
    # Without a registry answer this may be a public image: worth saying, not worth denying.
    return Finding(NAME, image, Reason.ERR_IMAGE_PULL, message, hint, advisory=True)


def _names(credentials: PodCredentials) -> str:
    return "secret " + ", ".join(f'"{n}"' for n in credentials.secret_names)


SPEC = CheckSpec(
    NAME,
    check,
    needs_registry=True,
    blind=blind,
    reword=reword,
    rule=RuleText(
        "The pull secrets exist and match the registry",
        "The pod's imagePullSecrets (or its ServiceAccount's) must exist, be pull secrets, have an entry for "
        "the image's registry under the kubelet's keyring rules, and be accepted by the registry. The kubelet "
        "ignores a secret it cannot use and pulls anonymously.",
        "Create or fix the secret: kubectl create secret docker-registry NAME --docker-server=REGISTRY "
        "--docker-username=USER --docker-password=PASSWORD -n NAMESPACE.",
    ),
)
