from __future__ import annotations

import pytest

from policies.checks import image_exists
from policies.config import DEFAULT_POLICY, parse_policy
from policies.decide import decide
from policies.model import Facts, Reason
from policies.registry_facts import Cause, ImageFacts, LookupStatus
from tests.unit.policy_helpers import image, workload

REF = "registry.example.com/team/app:1.2"


def facts_for(status: LookupStatus, **kwargs: object) -> Facts:
    found = ImageFacts(REF, status, "registry.example.com", **kwargs)  # type: ignore[arg-type]
    return Facts(images={REF: found})


WITHOUT_PULL_SECRETS = parse_policy("checks: {pullSecrets: {mode: off}}")


def only(status: LookupStatus, **kwargs: object):  # type: ignore[no-untyped-def]
    found = facts_for(status, **kwargs)
    (finding,) = image_exists.check(image("registry.example.com/team/app:1.2"), found, WITHOUT_PULL_SECRETS)
    return finding


@pytest.mark.parametrize(
    ("status", "kwargs", "message", "hint", "unknown"),
    [
        (
            LookupStatus.NOT_FOUND,
            {"similar_tags": ("1.2.1", "1.3")},
            "not found in registry registry.example.com",
            "existing tags closest to it: 1.2.1, 1.3",
            False,
        ),
        (LookupStatus.NOT_FOUND, {}, "(manifest unknown)", "check the repository and tag, or push the image", False),
        (
            LookupStatus.UNAUTHORIZED,
            {},
            "requires authentication and no pull secret matches it",
            "add an imagePullSecret for registry.example.com",
            False,
        ),
        (
            LookupStatus.UNAUTHORIZED,
            {"credentials_sent": True, "credential_sources": ("secret shop/regcred",)},
            "rejected the credentials in secret shop/regcred",
            "update the pull secret",
            False,
        ),
        (
            LookupStatus.DENIED,
            {"credential_sources": ("secret shop/ro",), "detail": "insufficient_scope"},
            "denied pull access (insufficient_scope)",
            "grant pull on registry.example.com/team/app to the account in secret shop/ro",
            False,
        ),
        (
            LookupStatus.TLS,
            {"detail": "x509: certificate signed by unknown authority"},
            "TLS to registry.example.com failed",
            "install the registry's CA under /etc/containerd/certs.d/registry.example.com/ on every node",
            False,
        ),
        (
            LookupStatus.TLS,
            {"detail": "x509: certificate is not valid for this host", "cause": Cause.CERTIFICATE_NAME},
            "TLS",
            "use the name the registry's certificate is issued for",
            False,
        ),
        (
            LookupStatus.TLS,
            {"detail": "x509: certificate has expired", "cause": Cause.CERTIFICATE_DATES},
            "TLS",
            "renew the certificate",
            False,
        ),
        (
            LookupStatus.RATE_LIMITED,
            {"rate_limit": "remaining 0 of 100", "retry_after_seconds": 30.0},
            "rate limiting pulls; remaining 0 of 100; retry after 30s",
            "imagePullSecret or serve the image from a mirror",
            True,
        ),
        (
            LookupStatus.DNS,
            {"detail": "lookup failed"},
            "registry host registry.example.com does not resolve",
            "the nodes' resolver",
            True,
        ),
        (LookupStatus.REFUSED, {}, "refused the connection", "host and port", True),
        (
            LookupStatus.TIMEOUT,
            {"detail": "no answer within 3s"},
            "did not answer in time (no answer within 3s)",
            "network path",
            True,
        ),
        (LookupStatus.SERVER_ERROR, {"detail": "HTTP 500"}, "failed (HTTP 500)", "retry later", True),
        (LookupStatus.MALFORMED, {"detail": "not JSON"}, "malformed answer (not JSON)", "login page", True),
        (LookupStatus.BLOCKED, {"detail": "169.254.169.254"}, "link-local or metadata address", "allowLinkLocal", True),
    ],
)
def test_messages_name_the_image_registry_and_fix(
    status: LookupStatus, kwargs: dict, message: str, hint: str, unknown: bool
) -> None:
    finding = only(status, **kwargs)
    assert finding.message.startswith('container "app" image "registry.example.com/team/app:1.2": ')
    assert message in finding.message
    assert hint in finding.hint
    assert finding.unknown is unknown
    assert finding.reason is (Reason.UNVERIFIED if unknown else Reason.ERR_IMAGE_PULL)


def test_exists_and_not_checked_are_silent() -> None:
    for status in (LookupStatus.EXISTS, LookupStatus.NOT_CHECKED):
        assert image_exists.check(image(REF), facts_for(status), DEFAULT_POLICY) == ()
    assert image_exists.check(image(REF), Facts(), DEFAULT_POLICY) == ()


def test_node_local_is_advisory_even_when_enforced_and_closed() -> None:
    policy = parse_policy("mode: enforce\nfailurePolicy: closed")
    local = "localhost:5000/app:1"
    facts = Facts(images={"localhost:5000/app:1": ImageFacts(local, LookupStatus.NODE_LOCAL, "localhost:5000")})
    decision = decide(workload(local), facts, policy)
    assert decision.allowed
    assert "cannot verify from the webhook" in decision.warnings[0].message


def test_definite_denies_when_enforced_unknown_follows_failure_policy() -> None:
    enforce = parse_policy("checks: {imageExists: {mode: enforce}}")
    closed = parse_policy("checks: {imageExists: {mode: enforce}}\nfailurePolicy: closed")
    assert not decide(workload(REF), facts_for(LookupStatus.NOT_FOUND), enforce).allowed
    assert decide(workload(REF), facts_for(LookupStatus.TIMEOUT), enforce).allowed
    assert not decide(workload(REF), facts_for(LookupStatus.TIMEOUT), closed).allowed


def test_facts_are_keyed_by_the_pull_reference() -> None:
    untagged = image("registry.example.com/team/app")
    assert untagged.pull_reference == "registry.example.com/team/app:latest"
    digested = image("nginx:1.25@sha256:" + "a" * 64)
    assert digested.pull_reference == "docker.io/library/nginx@sha256:" + "a" * 64


def test_authorization_is_left_to_the_pull_secrets_check_when_it_runs() -> None:
    for status in (LookupStatus.UNAUTHORIZED, LookupStatus.DENIED):
        assert image_exists.check(image(REF), facts_for(status), DEFAULT_POLICY) == ()
        assert image_exists.check(image(REF), facts_for(status), WITHOUT_PULL_SECRETS)


def test_never_pulled_images_are_not_the_registry_s_business() -> None:
    from policies.model import ContainerImage, ContainerKind, PodContext

    never = ContainerImage.create(
        kind=ContainerKind.CONTAINER,
        name="app",
        image=REF,
        pointer="/p",
        display_path="p",
        pod=PodContext("default"),
        pull_policy="Never",
    )
    assert image_exists.check(never, facts_for(LookupStatus.NOT_FOUND), DEFAULT_POLICY) == ()


def test_dns_names_the_host_actually_asked() -> None:
    finding = only(LookupStatus.DNS, endpoint="https://registry-1.docker.io/v2", detail="lookup failed")
    assert "registry host registry-1.docker.io does not resolve" in finding.message
