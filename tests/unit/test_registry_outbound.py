"""The outbound policy's rules, without a network: which addresses each role may reach, the socket-level
backstop, what a refusal says, capped reads and digest checks, and how image_exists words the new outcomes."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from policies.checks import image_exists
from policies.config import parse_policy
from policies.image.pull_secret_parse import Credential, CredentialSource
from policies.model import ContainerImage, ContainerKind, Facts, PodContext
from policies.registry_facts import Cause, ImageFacts, LookupStatus
from webhook.registry.auth import Authenticator, AuthError
from webhook.registry.bodies import BodyTooLarge, DigestMismatch, read_capped, verify
from webhook.registry.challenge import Challenge
from webhook.registry.endpoint import RegistryEndpoint
from webhook.registry.guard import AddressGuard, forbidden_address, loopback_address, split_host
from webhook.registry.outbound import Outbound, OutboundPolicy, Refused, Role, judge, new_client, origin

SECRET = Credential("robot", "s3cret-value", source=CredentialSource("shop", "regcred"))
LINK_LOCAL = ["169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%lo", "fd00:ec2::254", "::ffff:169.254.169.254",
              "64:ff9b::a9fe:a9fe"]  # fmt: skip
LOOPBACK = ["127.0.0.1", "127.5.5.5", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::"]
ROUTABLE = ["10.0.0.1", "192.0.2.7", "2001:db8::1", "fd00::1"]


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("registry.example.com:5000", "registry.example.com"),
        ("registry.example.com", "registry.example.com"),  # no port: net.SplitHostPort errs, the name stands
        ("[::1]:5000", "::1"),
        ("[::1]", "::1"),
        ("[::1", "::1"),
        ("::1", "::1"),
        ("fe80::1%lo0", "fe80::1%lo0"),
        ("[a]b:5", "a"),
        ("a]:5", "a]"),  # a stray bracket: still the part before the one ':'
    ],
)
def test_split_host_is_lenient_where_split_host_port_errs(host: str, name: str) -> None:
    assert split_host(host) == name


@pytest.mark.parametrize("address", LINK_LOCAL)
def test_link_local_and_metadata_in_every_spelling(address: str) -> None:
    assert forbidden_address(address)
    for role in Role:
        refusal = judge([address], OutboundPolicy(loopback=True), role)
        assert refusal is not None and "link-local or metadata" in refusal.reason
        assert refusal.cause is Cause.LINK_LOCAL  # a field: the fix (registry.allowLinkLocal) is chosen from it
        assert judge([address], OutboundPolicy(allow_link_local=True), role) is None


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_only_for_an_endpoint_on_loopback(address: str) -> None:
    assert loopback_address(address)
    endpoint = judge([address], OutboundPolicy(), Role.ENDPOINT)
    assert endpoint is not None and "registry.hostsDir" in endpoint.reason and endpoint.cause is None
    for role in (Role.REALM, Role.REDIRECT):
        other = judge([address], OutboundPolicy(), role)
        assert other is not None and "the registry endpoint is not" in other.reason
        assert judge([address], OutboundPolicy(loopback=True), role) is None


@pytest.mark.parametrize("address", ROUTABLE)
def test_routable_addresses_are_allowed_in_every_role(address: str) -> None:
    assert not forbidden_address(address) and not loopback_address(address)
    assert all(judge([address], OutboundPolicy(), role) is None for role in Role)


def test_one_bad_answer_among_good_ones_refuses_the_name() -> None:
    assert judge(["10.0.0.1", "169.254.169.254"], OutboundPolicy(), Role.REALM) is not None


def test_a_refusal_names_the_origin_never_userinfo_path_or_query() -> None:
    url = httpx.URL("http://user:pw@169.254.169.254:8080/latest/meta-data/?token=abc")
    assert origin(url) == "http://169.254.169.254:8080"
    assert origin(httpx.URL("https://[fd00:ec2::254]/x")) == "https://[fd00:ec2::254]"


async def test_endpoint_policy() -> None:
    outbound = Outbound()
    with pytest.raises(Refused, match=r"registry endpoint 127\.0\.0\.1:5000 is on loopback"):
        await outbound.endpoint_policy("127.0.0.1:5000", mapped=False, allow_link_local=False)
    assert (await outbound.endpoint_policy("127.0.0.1:5000", mapped=True, allow_link_local=False)).loopback
    remote = await outbound.endpoint_policy("10.0.0.1:5000", mapped=True, allow_link_local=False)
    assert not remote.loopback
    with pytest.raises(Refused, match="link-local"):
        await outbound.endpoint_policy("[fe80::1]:5000", mapped=True, allow_link_local=False)


class _Fooled(AddressGuard):
    """A resolver that saw nothing (a DNS answer that changed between the check and the dial)."""

    async def addresses(self, host: str) -> tuple[str, ...]:
        return ()


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/x"])
async def test_the_socket_refuses_what_the_request_check_missed(url: str) -> None:
    """The backstop: the dial itself resolves and judges, and connects only to a judged address."""
    client = new_client(RegistryEndpoint("https", "registry.example.com"))
    try:
        with pytest.raises(Refused, match="not dialed"):
            await Outbound(_Fooled()).send(
                client, "GET", httpx.URL(url), {}, role=Role.REDIRECT, policy=OutboundPolicy(), cap=1024, what="x"
            )
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "realm",
    [
        "http://127.0.0.1:5001/token",
        "https://127.0.0.1:5001/token",
        "http://169.254.169.254/latest/meta-data/",
        "http://user@169.254.169.254/",
        "https://[fd00:ec2::254]/token",
    ],
)
async def test_a_remote_registrys_realm_on_loopback_or_link_local_gets_nothing(realm: str) -> None:
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))  # type: ignore[func-returns-value]
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(AuthError) as raised:
            await Authenticator().header(
                client,
                [Challenge("bearer", {"realm": realm, "service": "registry"})],
                "team/app",
                SECRET,
                httpx.URL("https://registry.example.com/v2/team/app/manifests/1"),
            )
    assert raised.value.status is LookupStatus.BLOCKED
    assert raised.value.detail.startswith("token realm ")
    assert "(named by https://registry.example.com)" in raised.value.detail
    assert "user@" not in raised.value.detail
    assert raised.value.credentials_sent is False
    assert sent == []


def _streamed(body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))


async def test_capped_reads() -> None:
    assert await read_capped(_streamed(b"x" * 10), 10, "token response") == b"x" * 10
    with pytest.raises(BodyTooLarge, match="token response is over the 10 KiB limit"):
        await read_capped(_streamed(b"x" * (10 * 1024 + 1)), 10 * 1024, "token response")
    with pytest.raises(BodyTooLarge, match="of 999999 bytes"):  # a declared length over the cap: not read at all
        await read_capped(_streamed(b"", {"content-length": "999999"}), 1024, "token response")
    assert await read_capped(_streamed(b"e" * 5000), 1024, "error", truncate=True) == b"e" * 1024


def test_content_is_verified_against_its_digest() -> None:
    body = b'{"schemaVersion":2}'
    good = "sha256:" + hashlib.sha256(body).hexdigest()
    assert verify(body, good, "manifest") == good
    assert verify(body, "sha512:" + hashlib.sha512(body).hexdigest(), "manifest").startswith("sha512:")
    with pytest.raises(DigestMismatch, match=f"content does not match its digest \\(expected sha256:0+, got {good}"):
        verify(body, "sha256:" + "0" * 64, "manifest")


def _finding(facts: ImageFacts) -> tuple[str, str, bool]:
    container = ContainerImage.create(
        kind=ContainerKind.CONTAINER,
        name="app",
        image=facts.reference,
        pointer="/spec/containers/0/image",
        display_path="spec.containers[0]",
        pod=PodContext("shop"),
    )
    assert container.pull_reference is not None
    found = image_exists.check(container, Facts(images={container.pull_reference: facts}), parse_policy("{}"))
    (finding,) = found
    return finding.message, finding.hint, finding.unknown


def test_messages_for_digest_mismatch_and_for_hosts_other_than_the_registry() -> None:
    ref, registry = "registry.example.com/team/app:1", "registry.example.com"
    mismatch = ImageFacts(ref, LookupStatus.DIGEST_MISMATCH, registry, detail="manifest: content does not match")
    message, hint, unknown = _finding(mismatch)
    assert "does not match its digest" in message and "re-push registry.example.com/team/app" in hint and not unknown
    detail = "token realm http://169.254.169.254 (named by https://registry.example.com) is a link-local or ..."
    realm = {"failed_role": Role.REALM}  # the client says which host failed as fields; the detail only words it
    blocked = ImageFacts(ref, LookupStatus.BLOCKED, registry, detail=detail, cause=Cause.LINK_LOCAL, **realm)
    message, hint, unknown = _finding(blocked)
    assert message.endswith(f"could not verify: {detail}") and "allowLinkLocal" in hint and unknown
    detail = "token realm https://auth.example.com: connection refused"
    message, hint, unknown = _finding(ImageFacts(ref, LookupStatus.REFUSED, registry, detail=detail, **realm))
    assert f"could not verify: {detail} (for registry {registry})" in message and unknown
    assert "refused the connection" not in message
