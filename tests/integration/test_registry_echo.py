"""Credentials a registry echoes back are never published (issue 20, item 3): a hostile loopback registry puts the
request's Authorization header (Basic or Bearer, raw and decoded) into its error codes, its content type and its
tag list; the lookup's answer, and the finding a pod creator reads, carry none of it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from policies.checks import image_exists
from policies.config import parse_policy
from policies.image.pull_secret_parse import Credential, CredentialSource
from policies.model import ContainerImage, ContainerKind, Facts, PodContext
from policies.registry_facts import ImageFacts
from tests.integration.registry_helpers import config, lookup, map_host
from tests.support.hostile_registry import HostileRegistry, challenge, digest, token
from tests.support.loopback import RequestHandler
from webhook.registry.client import RegistryClient

PASSWORD = "s3cret-Echo-9f1c"
CREDENTIAL = Credential("robot", PASSWORD, source=CredentialSource("shop", "regcred"))
TOKEN = "hostile-bearer-token-7d2e9a"
BASIC = base64.b64encode(f"robot:{PASSWORD}".encode()).decode()
LEAKS = (PASSWORD, BASIC, BASIC.rstrip("="), f"robot:{PASSWORD}", TOKEN)


def _echoed(h: RequestHandler) -> str:
    auth = h.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    decoded = base64.b64decode(value + "==").decode(errors="replace") if scheme == "Basic" else value
    return f"{auth} {decoded} {value}"


def echo_in_code(status: int) -> Callable[[RequestHandler], None]:
    def handle(h: RequestHandler) -> None:
        said = _echoed(h)
        if not h.headers.get("Authorization"):
            h.respond(401, b"{}", {"WWW-Authenticate": 'Basic realm="hostile"'})
            return
        body = json.dumps({"errors": [{"code": said, "message": said}, {"code": "DENIED", "detail": said}]})
        h.respond(status, body.encode(), {"X-Echo": said.replace("\n", " ")})

    return handle


def echo_in_content_type(h: RequestHandler) -> None:
    if not h.headers.get("Authorization"):
        h.respond(401, b"{}", {"WWW-Authenticate": 'Basic realm="hostile"'})
        return
    h.respond(200, b"{}", {"Docker-Content-Digest": digest(b"{}")}, content_type=f"text/x;{_echoed(h)}")


def _facts_texts(facts: ImageFacts) -> str:
    return " ".join((facts.detail, facts.endpoint, facts.rate_limit, facts.media_type or "", *facts.similar_tags))


def _finding_text(image: str, facts: ImageFacts) -> str:
    pod = PodContext("shop", image_pull_secrets=("regcred",))
    container = ContainerImage.create(
        kind=ContainerKind.CONTAINER, name="app", image=image, pointer="/spec/containers/0/image",
        display_path="spec.containers[0]", pod=pod,
    )  # fmt: skip
    policy = parse_policy("checks: {pullSecrets: {mode: off}}")  # imageExists words every class itself
    findings = image_exists.check(container, Facts(images={facts.reference: facts}), policy)
    return " ".join(f.message + " " + f.hint for f in findings)


@pytest.mark.parametrize("status", [403, 404, 400, 500])
async def test_basic_credentials_echoed_in_an_error_body(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path, status: int
) -> None:
    hostile.routes["/v2/team/app/manifests/1.0"] = echo_in_code(status)
    hostile.routes["/v2/team/app/tags/list"] = echo_in_code(status)
    hosts = map_host(tmp_path / "certs.d", "echo.example", hostile.url)
    facts = await lookup(client, "echo.example/team/app:1.0", config(hosts), (CREDENTIAL,))
    assert any(s.headers.get("authorization", "").startswith("Basic") for s in hostile.seen), "never authenticated"
    text = _facts_texts(facts) + _finding_text("echo.example/team/app:1.0", facts)
    assert not any(leak in text for leak in LEAKS), text


async def test_basic_credentials_echoed_in_the_content_type(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    hostile.routes["/v2/team/app/manifests/1.0"] = echo_in_content_type
    hosts = map_host(tmp_path / "certs.d", "echo.example", hostile.url)
    facts = await lookup(client, "echo.example/team/app:1.0", config(hosts), (CREDENTIAL,))
    text = _facts_texts(facts) + _finding_text("echo.example/team/app:1.0", facts)
    assert "text/x" in text  # what was said is still said, minus the secrets
    assert not any(leak in text for leak in LEAKS), text


async def test_a_bearer_token_echoed_back(client: RegistryClient, hostile: HostileRegistry, tmp_path: Path) -> None:
    realm = f"{hostile.url}/token"
    hostile.routes["/token"] = token(TOKEN)

    def manifests(h: RequestHandler) -> None:
        if h.headers.get("Authorization") != f"Bearer {TOKEN}":
            challenge(realm)(h)
            return
        said = _echoed(h)
        h.respond(403, json.dumps({"errors": [{"code": said}], "token": said}).encode(), {"X-Echo": said})

    hostile.routes["/v2/team/app/manifests/1.0"] = manifests
    hosts = map_host(tmp_path / "certs.d", "echo.example", hostile.url)
    facts = await lookup(client, "echo.example/team/app:1.0", config(hosts), (CREDENTIAL,))
    assert any(s.headers.get("authorization") == f"Bearer {TOKEN}" for s in hostile.seen), "never used the token"
    text = _facts_texts(facts) + _finding_text("echo.example/team/app:1.0", facts)
    assert not any(leak in text for leak in LEAKS), text
