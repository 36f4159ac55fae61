"""Credential providers with tokenAttributes (KEP-4412): the service account token and annotations the kubelet
passes (pkg/credentialprovider/plugin/plugin.go provide, getServiceAccountData), the cases where it does not
call the plugin, the cache per service account or per token, and the echoed-token rule. The token source is
a small in-test implementation of pullguard's own ServiceAccountTokens protocol; the plugins are real."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from policies.credential_providers import request_body
from policies.model import PodContext
from tests.unit.credential_plugin_helpers import GENEROUS, RESPONDER, Clock, Plugin, response, write_config
from webhook.node.credential_providers import (
    NO_GRANT_DETAIL,
    CredentialProviders,
    ProviderCredentials,
    ProviderFailure,
    TokenUnavailable,
)

IMAGE = "registry.example.com/team/app"
POD = PodContext(namespace="team", service_account="builder")
ROLE, TEAM = "example.com/role", "example.com/team"
ANNOTATED = {("team", "builder"): {ROLE: "puller", TEAM: "a", "unrelated.io/x": "not passed"}}


class Tokens:
    """ServiceAccountTokens for tests: a fresh token per request (or a fixed one), annotations from a dict."""

    def __init__(
        self,
        annotations: Mapping[tuple[str, str], Mapping[str, str]] = ANNOTATED,
        *,
        fixed: str = "",
        unavailable: str = "",
        delay: float = 0.0,
    ) -> None:
        self._annotations = annotations
        self._fixed, self._unavailable, self._delay = fixed, unavailable, delay
        self.requested: list[tuple[str, str, str]] = []

    async def token(self, namespace: str, service_account: str, audience: str) -> str:
        self.requested.append((namespace, service_account, audience))
        await asyncio.sleep(self._delay)
        if self._unavailable:
            raise TokenUnavailable(self._unavailable)
        return self._fixed or f"token-{len(self.requested)}"

    def annotations(self, namespace: str, service_account: str) -> Mapping[str, str] | None:
        return self._annotations.get((namespace, service_account))


def attributes(cache_type: str = "ServiceAccount", *, require: bool = True, required: bool = True) -> dict[str, object]:
    return {
        "serviceAccountTokenAudience": "registry.example.com",
        "requireServiceAccount": require,
        "cacheType": cache_type,
        "requiredServiceAccountAnnotationKeys": [ROLE] if required else [],
        "optionalServiceAccountAnnotationKeys": [TEAM],
    }


def setup(
    tmp_path: Path, tokens: Tokens | None, token: dict[str, object], script: str | None = None
) -> tuple[Plugin, CredentialProviders, Clock]:
    plugin = Plugin(tmp_path, tmp_path / "bin", "p", script or RESPONDER)
    plugin.answer(response("Image", None, {"registry.example.com": ("robot", "from-plugin")}))
    clock = Clock()
    config = write_config(tmp_path / "providers.json", plugin.spec(token=token))
    return plugin, CredentialProviders.load(config, tmp_path / "bin", tokens=tokens, clock=clock), clock


async def ask(cp: CredentialProviders, pod: PodContext = POD, budget: float = GENEROUS) -> ProviderCredentials:
    return await cp.credentials(IMAGE, pod, budget_seconds=budget)


async def test_without_a_token_source_the_provider_cannot_be_asked(tmp_path: Path) -> None:
    plugin, cp, _ = setup(tmp_path, None, attributes())
    assert await ask(cp) == ProviderCredentials((), (ProviderFailure("p", NO_GRANT_DETAIL),), ("p",))
    assert "grant serviceaccounts/token create" in NO_GRANT_DETAIL
    assert plugin.execs == 0


async def test_the_plugin_gets_the_token_and_the_listed_annotations(tmp_path: Path) -> None:
    tokens = Tokens()
    plugin, cp, _ = setup(tmp_path, tokens, attributes())
    (credential,) = (await ask(cp)).credentials
    assert (credential.username, credential.password) == ("robot", "from-plugin")
    assert tokens.requested == [("team", "builder", "registry.example.com")]
    expected = request_body(cp.providers[0], IMAGE, "token-1", {ROLE: "puller", TEAM: "a"})
    assert plugin.request_lines() == [expected]


async def test_a_missing_required_annotation_means_no_call(tmp_path: Path) -> None:
    tokens = Tokens({("team", "builder"): {TEAM: "a"}})
    plugin, cp, _ = setup(tmp_path, tokens, attributes())
    assert await ask(cp) == ProviderCredentials((), (), ("p",))  # no credentials, and nothing failed
    assert plugin.execs == 0 and tokens.requested == []


async def test_a_pod_without_a_service_account(tmp_path: Path) -> None:
    tokens = Tokens()
    plugin, cp, _ = setup(tmp_path, tokens, attributes())
    anonymous = PodContext(namespace="team", service_account="")
    assert await ask(cp, anonymous) == ProviderCredentials((), (), ("p",))  # requireServiceAccount: not called
    assert plugin.execs == 0
    optional = tmp_path / "optional"
    plugin, cp, _ = setup(optional, tokens, attributes(require=False, required=False))
    assert len((await ask(cp, anonymous)).credentials) == 1  # called, without a token
    assert plugin.requests() == [
        {"kind": "CredentialProviderRequest", "apiVersion": plugin.spec()["apiVersion"], "image": IMAGE}
    ]
    assert tokens.requested == []


async def test_answers_are_cached_per_service_account(tmp_path: Path) -> None:
    tokens = Tokens({**ANNOTATED, ("team", "other"): {ROLE: "puller"}})
    plugin, cp, _ = setup(tmp_path, tokens, attributes("ServiceAccount"))
    await ask(cp)
    await ask(cp)  # a new token, the same service account and annotations: cached
    assert plugin.execs == 1
    await ask(cp, PodContext(namespace="team", service_account="other"))
    assert plugin.execs == 2


async def test_answers_are_cached_per_token(tmp_path: Path) -> None:
    tokens = Tokens()
    plugin, cp, _ = setup(tmp_path, tokens, attributes("Token"))
    await ask(cp)
    await ask(cp)  # another token: asked again
    assert plugin.execs == 2
    same = Tokens(fixed="the-same-token")
    plugin, cp, _ = setup(tmp_path / "same", same, attributes("Token"))
    await ask(cp)
    await ask(cp)
    assert plugin.execs == 1


async def test_no_token_is_a_failure_that_says_why(tmp_path: Path) -> None:
    denied = Tokens(unavailable="pullguard may not create one (grant serviceaccounts/token create)")
    plugin, cp, _ = setup(tmp_path, denied, attributes())
    (failure,) = (await ask(cp)).failures
    assert (
        failure.detail
        == "needs a service account token: pullguard may not create one (grant serviceaccounts/token create)"
    )
    slow = Tokens(delay=GENEROUS * 10)
    plugin, cp, _ = setup(tmp_path / "slow", slow, attributes())
    (failure,) = (await ask(cp, budget=0.2)).failures
    assert failure.detail == "needs a service account token, which was not issued within 0.2 s"
    plugin, cp, _ = setup(tmp_path / "unknown", Tokens({}), attributes())
    (failure,) = (await ask(cp)).failures
    assert failure.detail == "could not read ServiceAccount team/builder for its annotations"
    assert plugin.execs == 0


ECHO = f"""#!{sys.executable} -S
import json, sys
token = json.load(sys.stdin)["serviceAccountToken"]
if sys.argv[2:] == ["fail"]:
    sys.stderr.write("rejected " + token + "\\n")
    sys.exit(2)
print(json.dumps({{"kind": "CredentialProviderResponse", "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
                  "cacheKeyType": "Image", "auth": {{"registry.example.com": {{"username": "", "password": token}}}}}}))
"""


@pytest.mark.parametrize(("cache_type", "allowed"), [("ServiceAccount", False), ("Token", True)])
async def test_an_echoed_token_is_a_password_only_per_token(tmp_path: Path, cache_type: str, allowed: bool) -> None:
    _, cp, _ = setup(tmp_path, Tokens(fixed="sa-token-value"), attributes(cache_type), ECHO)
    found = await ask(cp)
    if allowed:
        assert [c.password for c in found.credentials] == ["sa-token-value"]
    else:
        assert found.credentials == ()
        assert found.failures[0].detail.startswith("credential provider plugin returned the service account token")


async def test_a_token_in_stderr_is_not_repeated(tmp_path: Path) -> None:
    plugin = Plugin(tmp_path, tmp_path / "bin", "p", ECHO)
    config = write_config(tmp_path / "c.json", plugin.spec(args=["fail"], token=attributes()))
    cp = CredentialProviders.load(config, tmp_path / "bin", tokens=Tokens(fixed="sa-token-value"))
    assert (await ask(cp)).failures == (ProviderFailure("p", "exited with status 2: rejected <redacted>"),)
