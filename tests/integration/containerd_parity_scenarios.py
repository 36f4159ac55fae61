"""The containerd parity scenarios (test_containerd_parity.py): each an image, the credentials the pod has and the
kubelet would hand containerd, and containerd's outcome class, which pullguard must give too. The hosts they name
are set up by the test module's `world` fixture (hosts.toml mappings to the loopback registries)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.support.registry import DEFAULT_BASIC_USERS, DEFAULT_TOKEN_USERS

NAMESPACE = "shop"
BASIC_USER, BASIC_PASSWORD = next(iter(DEFAULT_BASIC_USERS.items()))
READER = ("reader", DEFAULT_TOKEN_USERS["reader"].password)
LIMITED = ("limited", DEFAULT_TOKEN_USERS["limited"].password)
GOOD = (BASIC_USER, BASIC_PASSWORD)
STALE = (BASIC_USER, BASIC_PASSWORD + "-expired")
MISSING_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True)
class Scenario:
    id: str
    image: str  # {multi} etc. are filled in with the pushed digests
    expected: str  # containerd's outcome class, which pullguard must give too
    arch: str = "amd64"
    secrets: Mapping[str, Mapping[str, tuple[str, str]]] = field(default_factory=dict)  # name -> key -> (u, p)
    from_service_account: bool = False
    kubelet_users: tuple[tuple[str, str], ...] = ()  # what the kubelet's keyring hands containerd, in order


def secret(key: str, credential: tuple[str, str]) -> dict[str, tuple[str, str]]:
    return {key: credential}


SCENARIOS = (
    # public registry, plain HTTP (server = "http://...")
    Scenario("public multi-arch on amd64", "pub.example/pub/multi:1.0", "exists"),
    Scenario("public multi-arch on arm64", "pub.example/pub/multi:1.0", "exists", arch="arm64"),
    Scenario("public arm64-only index on amd64", "pub.example/pub/arm64only:1.0", "noMatchingPlatform"),
    Scenario("public arm64-only index on arm64", "pub.example/pub/arm64only:1.0", "exists", arch="arm64"),
    # the root manifest's platform is never matched: pulled, then `exec format error` at start
    Scenario("public single-arch amd64 on arm64", "pub.example/pub/single:1.0", "exists", arch="arm64"),
    Scenario("public missing tag", "pub.example/pub/multi:9.9", "notFound"),
    Scenario("public missing repository", "pub.example/pub/nothing:1.0", "notFound"),
    Scenario("public by digest", "pub.example/pub/multi@{multi}", "exists", arch="arm64"),
    Scenario("public missing digest", f"pub.example/pub/multi@{MISSING_DIGEST}", "notFound"),
    Scenario("public tag and digest: the digest is pulled", "pub.example/pub/multi:9.9@{multi}", "exists"),
    Scenario(
        "public secret for it is harmless",
        "pub.example/pub/multi:1.0",
        "exists",
        secrets={"regcred": secret("pub.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    # private registry (TLS with its own CA, htpasswd) as the server
    Scenario("private without secret", "priv.example/team/app:1.0", "unauthorized"),
    Scenario(
        "private with a secret for it",
        "priv.example/team/app:1.0",
        "exists",
        secrets={"regcred": secret("priv.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "private key with scheme and path",
        "priv.example/team/app:1.0",
        "exists",
        secrets={"regcred": secret("https://priv.example/v1/", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "private wildcard key",
        "priv.example/team/app:1.0",
        "exists",
        secrets={"regcred": secret("*.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "private path-prefix key that matches",
        "priv.example/team/app:1.0",
        "exists",
        secrets={"regcred": secret("priv.example/team", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "private path-prefix key for another path",
        "priv.example/team/app:1.0",
        "unauthorized",
        secrets={"regcred": secret("priv.example/other", GOOD)},
    ),
    Scenario(
        "private secret for another host",
        "priv.example/team/app:1.0",
        "unauthorized",
        secrets={"regcred": secret("elsewhere.example", GOOD)},
    ),
    Scenario(
        "private wrong password",
        "priv.example/team/app:1.0",
        "unauthorized",
        secrets={"regcred": secret("priv.example", STALE)},
        kubelet_users=(STALE,),
    ),
    Scenario(
        "private stale secret then a good one",
        "priv.example/team/app:1.0",
        "exists",
        secrets={"a-stale": secret("priv.example", STALE), "b-good": secret("priv.example", GOOD)},
        kubelet_users=(STALE, GOOD),
    ),
    Scenario(
        "private secret from the ServiceAccount",
        "priv.example/team/app:1.0",
        "exists",
        secrets={"regcred": secret("priv.example", GOOD)},
        from_service_account=True,
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "private missing tag with credentials",
        "priv.example/team/app:9.9",
        "notFound",
        secrets={"regcred": secret("priv.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario("private missing tag without credentials", "priv.example/team/app:9.9", "unauthorized"),
    Scenario(
        "private multi-arch on arm64",
        "priv.example/team/app:1.0",
        "exists",
        arch="arm64",
        secrets={"regcred": secret("priv.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "private arm64-only index on amd64",
        "priv.example/team/arm64only:1.0",
        "noMatchingPlatform",
        secrets={"regcred": secret("priv.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "private by digest",
        "priv.example/team/app@{team}",
        "exists",
        secrets={"regcred": secret("priv.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    # the registry's own endpoint as a [host] table (the usual way to hand nodes a CA or an internal address)
    Scenario(
        "host table: credentials reach it",
        "privhost.example/team/app:1.0",
        "exists",
        secrets={"regcred": secret("privhost.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "host table: arm64-only behind it",
        "privhost.example/team/arm64only:1.0",
        "noMatchingPlatform",
        secrets={"regcred": secret("privhost.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "host table: missing tag",
        "privhost.example/team/app:9.9",
        "notFound",
        secrets={"regcred": secret("privhost.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario(
        "host table: wrong password",
        "privhost.example/team/app:1.0",
        "unauthorized",
        secrets={"regcred": secret("privhost.example", STALE)},
        kubelet_users=(STALE,),
    ),
    # an anonymous mirror first, the private server last
    Scenario(
        "mirror lacks it: falls through to the server",
        "mirrored.example/team/app:1.0",
        "exists",
        secrets={"regcred": secret("mirrored.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario("mirror serves it", "mirrored.example/shared/app:1.0", "exists"),
    Scenario(
        "mirror and server lack it",
        "mirrored.example/team/app:9.9",
        "notFound",
        secrets={"regcred": secret("mirrored.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario("mirror lacks it, server wants credentials", "mirrored.example/team/app:1.0", "unauthorized"),
    # token authentication (distribution's token spec, realm on loopback)
    Scenario(
        "token: reader pulls",
        "tok.example/private/app:1.0",
        "exists",
        secrets={"regcred": secret("tok.example", READER)},
        kubelet_users=(READER,),
    ),
    Scenario(
        "token: account without the repository in scope",
        "tok.example/private/app:1.0",
        "denied",
        secrets={"regcred": secret("tok.example", LIMITED)},
        kubelet_users=(LIMITED,),
    ),
    Scenario(
        "token: account with the repository in scope",
        "tok.example/allowed/app:1.0",
        "exists",
        secrets={"regcred": secret("tok.example", LIMITED)},
        kubelet_users=(LIMITED,),
    ),
    Scenario(
        "token: wrong password",
        "tok.example/private/app:1.0",
        "unauthorized",
        secrets={"regcred": secret("tok.example", (READER[0], "wrong"))},
        kubelet_users=((READER[0], "wrong"),),
    ),
    Scenario("token: anonymous", "tok.example/private/app:1.0", "denied"),
    # transport failures
    Scenario(
        "server with an unknown CA",
        "untrusted.example/team/app:1.0",
        "tls",
        secrets={"regcred": secret("untrusted.example", GOOD)},
        kubelet_users=(GOOD,),
    ),
    Scenario("server refuses connections", "down.example/team/app:1.0", "refused"),
)
