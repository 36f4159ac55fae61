"""`imageExists`: does the registry serve this image to this pod, as the node would ask for it?

Definite outcomes (not found, unauthorized, denied, TLS) predict ErrImagePull, then ImagePullBackOff. The rest
(network, timeouts, rate limits, server errors) only say the webhook could not tell: they are `unknown` and
follow `failurePolicy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from policies.checks.spec import CheckSpec, RuleText
from policies.model import CheckName, ContainerImage, Facts, Finding, Gap, Mode, Reason
from policies.node_pull import seen_from_nodes
from policies.registry_facts import Cause, ImageFacts, LookupStatus

if TYPE_CHECKING:  # the policy schema is built from this module's record (policies.checks.spec)
    from policies.config import Policy

NAME = CheckName.IMAGE_EXISTS
_AUTHORIZATION = (LookupStatus.UNAUTHORIZED, LookupStatus.DENIED)


def check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    found = facts.image(image)
    if found is None or found.status in (LookupStatus.EXISTS, LookupStatus.NOT_CHECKED) or image.never_pulled:
        return ()  # with imagePullPolicy Never the registry is never asked (the neverPull check's business)
    if found.status in _AUTHORIZATION and policy.mode_for(CheckName.PULL_SECRETS, image.pod.namespace) is not Mode.OFF:
        return ()  # who may pull is the pullSecrets check's to explain
    message, hint = _explain(found)
    status = found.status
    finding = Finding(
        check=NAME,
        container=image,
        reason=Reason.ERR_IMAGE_PULL if status.definite else Reason.UNVERIFIED,
        message=f"{image.label}: {message}",
        hint=hint,
        unknown=not status.definite,
        advisory=status is LookupStatus.NODE_LOCAL,
    )
    return (seen_from_nodes(finding, image, facts, policy),)


def blind(image: ContainerImage, facts: Facts) -> Gap | None:
    """A pulled image with no lookup at all: the registry was not asked (offline)."""
    if image.pull_reference is None or image.never_pulled or facts.image(image) is not None:
        return None
    return Gap.NO_LOOKUP


def _endpoint_host(endpoint: str) -> str:
    """The host of an endpoint URL such as https://registry-1.docker.io/v2 (pure string work, no parsing I/O)."""
    rest = endpoint.split("://", 1)[-1]
    return rest.split("/", 1)[0]


def _repository(reference: str) -> str:
    name = reference.split("@", 1)[0]
    return name[: name.rfind(":")] if name.rfind(":") > name.rfind("/") else name


def _sources(found: ImageFacts) -> str:
    return ", ".join(found.credential_sources) or "the pod's pull secrets"


def _explain(found: ImageFacts) -> tuple[str, str]:
    registry, detail = found.registry, found.detail
    repository = _repository(found.reference)
    if found.failed_role is not None and found.status not in _AUTHORIZATION:
        return _elsewhere(found)  # another host than the registry failed: reported against that host
    match found.status:
        case LookupStatus.NOT_FOUND:
            hint = (
                "existing tags closest to it: " + ", ".join(found.similar_tags)
                if found.similar_tags
                else "check the repository and tag, or push the image"
            )
            if found.cause is Cause.REPOSITORY_UNKNOWN:
                return f"repository {repository} does not exist in registry {registry}", (
                    "check the repository name (and the registry), or push the image"
                )
            return f"not found in registry {registry} ({detail or 'manifest unknown'})", hint
        case LookupStatus.UNAUTHORIZED if found.credentials_sent:
            return (
                f"registry {registry} rejected the credentials in {_sources(found)}",
                f"update the pull secret with credentials that can pull {repository}",
            )
        case LookupStatus.UNAUTHORIZED:
            return (
                f"registry {registry} requires authentication and no pull secret matches it",
                f"add an imagePullSecret for {registry} (kubectl create secret docker-registry)",
            )
        case LookupStatus.DENIED:
            return (
                f"registry {registry} denied pull access ({detail or 'insufficient scope'})",
                f"grant pull on {repository} to the account in {_sources(found)}, or check the repository name",
            )
        case LookupStatus.TLS:
            return f"TLS to {found.endpoint or registry} failed: {detail}", _tls_hint(found)
        case LookupStatus.RATE_LIMITED:
            limit = f"; {found.rate_limit}" if found.rate_limit else ""
            after = f"; retry after {found.retry_after_seconds:g}s" if found.retry_after_seconds is not None else ""
            return (
                f"could not verify: registry {registry} is rate limiting pulls{limit}{after}",
                "authenticate pulls with an imagePullSecret or serve the image from a mirror",
            )
        case LookupStatus.DNS:
            host = _endpoint_host(found.endpoint) or registry  # docker.io is asked as registry-1.docker.io
            return f"could not verify: registry host {host} does not resolve ({detail})", _dns_hint(registry, host)
        case LookupStatus.REFUSED:
            return (
                f"could not verify: {found.endpoint or registry} refused the connection",
                "check that the registry is running and the host and port are right",
            )
        case LookupStatus.TIMEOUT:
            return (
                f"could not verify: registry {registry} did not answer in time ({detail})",
                "check the network path from the cluster to the registry",
            )
        case LookupStatus.SERVER_ERROR:
            return (
                f"could not verify: registry {registry} failed ({detail})",
                "the registry is failing: retry later or serve the image from a mirror",
            )
        case LookupStatus.MALFORMED:
            return (
                f"could not verify: registry {registry} sent a malformed answer ({detail})",
                f"check that {registry} is an OCI registry and not a proxy or login page",
            )
        case LookupStatus.NODE_LOCAL:
            return (
                f"cannot verify from the webhook: {registry} is local to each node",
                f"make sure every node serves it, or map {registry} in registry.hostsDir",
            )
        case LookupStatus.WITHHELD:
            return (
                f"could not verify: {detail}",
                f"serve {registry} over HTTPS (the nodes send these credentials in plain text), or map it in "
                "registry.hostsDir to the HTTPS address the nodes use",
            )
        case LookupStatus.DIGEST_MISMATCH:
            source = _endpoint_host(found.endpoint) or registry
            return (
                f"{source} serves content that does not match its digest ({detail})",
                f"the pull fails verifying it: re-push {repository} (or fix the mirror that serves it)",
            )
        case LookupStatus.BLOCKED:
            return (
                f"could not verify: {registry} resolves to a link-local or metadata address ({detail})",
                "use a routable registry address, or set registry.allowLinkLocal if this is intended",
            )
    return f"registry {registry}: {found.status} ({detail})", "check the image and the registry"


def _elsewhere(found: ImageFacts) -> tuple[str, str]:
    """A failure at a token realm, a redirect target or a refused endpoint: the detail names that host."""
    prefix = "" if found.status.definite else "could not verify: "
    if found.status is LookupStatus.BLOCKED:
        hint = (
            "set registry.allowLinkLocal if this address is intended"
            if found.cause is Cause.LINK_LOCAL
            else f"serve {found.registry}'s token realm and redirects from a routable address, or map "
            "the registry to loopback in registry.hostsDir if it really runs there"
        )
        return f"{prefix}{found.detail}", hint
    return (
        f"{prefix}{found.detail} (for registry {found.registry})",
        f"registry {found.registry} sends clients to that host: check that it is up and reachable from the cluster",
    )


_DOCKER_HUB = (
    "docker.io",
    "registry-1.docker.io",
    "index.docker.io",
    "auth.docker.io",
    "production.cloudflare.docker.com",
)


def _dns_hint(registry: str, host: str) -> str:
    """Docker Hub's name not resolving means Docker Hub is out of reach from here (an air-gapped CI runner or
    cluster), not a typo: point at the ways around it."""
    if registry in _DOCKER_HUB or host in _DOCKER_HUB:
        return (
            "Docker Hub is not reachable from here: add a mirror rule (mirrors: [{registry: docker.io, mirror: "
            "...}]), or map docker.io to your mirror in registry.hostsDir as the nodes do (--offline only skips "
            "the registry checks, and says so)"
        )
    return "check the host name; the nodes' resolver must resolve it too"


def _tls_hint(found: ImageFacts) -> str:
    host = found.registry
    if found.cause is Cause.CERTIFICATE_NAME:
        return f"use the name the registry's certificate is issued for, or reissue it to include {host}"
    if found.cause is Cause.CERTIFICATE_DATES:
        return f"renew the certificate of {host}"
    return f"install the registry's CA under /etc/containerd/certs.d/{host}/ on every node (and in registry.hostsDir)"


SPEC = CheckSpec(
    NAME,
    check,
    needs_registry=True,
    blind=blind,
    rule=RuleText(
        "The image exists in its registry",
        "The registry must serve the tag or digest when asked the way the node asks (hosts.toml mirrors, "
        "Accept list, the pod's credentials); a missing image ends in ErrImagePull, then ImagePullBackOff.",
        "Check the repository and tag, or push the image; the finding names the closest existing tags.",
    ),
)
