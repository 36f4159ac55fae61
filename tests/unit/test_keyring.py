"""Tests for policies.image.keyring.

Cases marked "upstream" are ported from Kubernetes (Apache-2.0),
pkg/credentialprovider/keyring_test.go: TestURLsMatch, TestDockerKeyringForGlob, TestKeyringMiss,
TestKeyringMissWithDockerHubCredentials, TestKeyringHitWithUnqualifiedDockerHub,
TestKeyringHitWithUnqualifiedLibraryDockerHub, TestKeyringHitWithQualifiedDockerHub,
TestIsDefaultRegistryMatch, TestDockerKeyringLookup and TestIssue3797 (TestProvidersDockerKeyring
tests node-level providers, which this port does not have).  Go's path/filepath.Match and
net.SplitHostPort tables are run against policies.image.go_ports in test_go_compat.py.
"""

from __future__ import annotations

import base64
import json

import pytest

from policies.image.keyring import (
    DEFAULT_REGISTRY_KEY,
    Credential,
    CredentialSource,
    Keyring,
    is_default_registry_match,
    repo_to_pull,
    urls_match_str,
)
from policies.image.pull_secret_parse import DockerConfigEntry, read_dockercfg

EMAIL, USERNAME, PASSWORD = "foo@bar.baz", "foo", "bar"  # fake values, as upstream
AUTH = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()


def keyring_from_json(url: str) -> Keyring:
    """Upstream builds each keyring from a dockercfg blob holding `auth` and `email`."""
    keyring = Keyring()
    keyring.add_config(read_dockercfg(json.dumps({url: {"email": EMAIL, "auth": AUTH}})))
    return keyring


def assert_sample_credential(credential: Credential) -> None:
    assert (credential.username, credential.password, credential.email) == (USERNAME, PASSWORD, EMAIL)


# upstream: TestURLsMatch
@pytest.mark.parametrize(
    ("glob", "target", "expected"),
    [
        # match when there is no path component
        ("*.kubernetes.io", "prefix.kubernetes.io", True),
        ("prefix.*.io", "prefix.kubernetes.io", True),
        ("prefix.kubernetes.*", "prefix.kubernetes.io", True),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io", True),
        # match with path components
        ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", True),
        ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", True),
        # match with path components and ports
        ("*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", True),
        ("prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", True),
        # no match when number of parts mismatch
        ("*.kubernetes.io", "kubernetes.io", False),
        ("*.*.kubernetes.io", "prefix.kubernetes.io", False),
        ("*.*.kubernetes.io", "kubernetes.io", False),
        ("*kubernetes.io", "a.kubernetes.io", False),
        # match when number of parts match
        ("*kubernetes.io", "kubernetes.io", True),
        ("*.*.*.kubernetes.io", "a.b.c.kubernetes.io", True),
        # no match when some parts mismatch
        ("kubernetes.io", "kubernetes.com", False),
        ("k*.io", "other.io", False),  # upstream's host renamed (no real registry names here)
        # no match when ports mismatch
        ("*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", False),
        ("prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", False),
    ],
)
def test_urls_match(glob: str, target: str, expected: bool) -> None:
    assert urls_match_str(glob, target) is expected


# upstream: TestDockerKeyringForGlob
@pytest.mark.parametrize(
    ("glob", "target"),
    [
        ("https://hello.kubernetes.io", "hello.kubernetes.io"),
        ("https://*.docker.io", "prefix.docker.io"),
        ("https://prefix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.*", "prefix.docker.io"),
        ("https://*.docker.io/path", "prefix.docker.io/path"),
        ("https://prefix.*.io/path", "prefix.docker.io/path/subpath"),
        ("https://prefix.docker.*/path", "prefix.docker.io/path"),
        ("https://*.docker.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.*.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.docker.*:8888", "prefix.docker.io:8888"),
        ("https://*.docker.io/path:1111", "prefix.docker.io/path:1111"),
        ("https://*.docker.io/v1/", "prefix.docker.io/path:1111"),
        ("https://*.docker.io/v2/", "prefix.docker.io/path:1111"),
        ("https://prefix.docker.*/path:1111", "prefix.docker.io/path:1111"),
        ("prefix.docker.io:1111", "prefix.docker.io:1111/path"),
        ("*.docker.io:1111", "prefix.docker.io:1111/path"),
    ],
)
def test_docker_keyring_for_glob(glob: str, target: str) -> None:
    credentials = keyring_from_json(glob).lookup(target + "/foo/bar")
    assert credentials, f"didn't find expected URL: {target}"
    assert_sample_credential(credentials[0])


# upstream: TestKeyringMiss
@pytest.mark.parametrize(
    ("glob", "lookup"),
    [
        ("https://hello.kubernetes.io", "world.mesos.org/foo/bar"),
        ("https://*.docker.com", "prefix.docker.io"),
        ("https://suffix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.c*", "prefix.docker.io"),
        ("https://prefix.*.io/path:1111", "prefix.docker.io/path/subpath:1111"),
        ("suffix.*.io", "prefix.docker.io"),
    ],
)
def test_keyring_miss(glob: str, lookup: str) -> None:
    assert keyring_from_json(glob).lookup(lookup + "/foo/bar") == []


# upstream: TestKeyringMissWithDockerHubCredentials
def test_keyring_miss_with_docker_hub_credentials() -> None:
    assert keyring_from_json("https://" + DEFAULT_REGISTRY_KEY).lookup("world.mesos.org/foo/bar") == []


# upstream: TestKeyringHitWithUnqualifiedDockerHub, TestKeyringHitWithUnqualifiedLibraryDockerHub
@pytest.mark.parametrize("image", ["google/docker-registry", "jenkins"])
def test_keyring_hit_with_unqualified_docker_hub(image: str) -> None:
    credentials = keyring_from_json("https://" + DEFAULT_REGISTRY_KEY).lookup(image)
    assert len(credentials) == 1
    assert_sample_credential(credentials[0])


# upstream: TestKeyringHitWithQualifiedDockerHub
def test_keyring_hit_with_qualified_docker_hub() -> None:
    credentials = keyring_from_json("https://" + DEFAULT_REGISTRY_KEY).lookup(
        DEFAULT_REGISTRY_KEY + "/google/docker-registry"
    )
    assert 1 <= len(credentials) <= 2
    assert_sample_credential(credentials[0])


# upstream: TestIsDefaultRegistryMatch
@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("foo/bar", True),
        ("docker.io/foo/bar", True),
        ("index.docker.io/foo/bar", True),
        ("foo", True),
        ("", False),
        ("registry.tld/foo/bar", False),
        ("registry:5000/foo/bar", False),
        ("myhostdocker.io/foo/bar", False),
    ],
)
def test_is_default_registry_match(image: str, expected: bool) -> None:
    assert is_default_registry_match(image) is expected


ADA = Credential("ada", "smash", "ada@example.com")  # fake values, as upstream
GRACE = Credential("grace", "squash", "grace@example.com")


def _entry(credential: Credential) -> DockerConfigEntry:
    return DockerConfigEntry(credential.username, credential.password, credential.email)


# upstream: TestDockerKeyringLookup
@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("bar.example.com", [ADA]),  # direct match
        ("bar.example.com/pong", [GRACE, ADA]),  # direct match deeper than other possible matches
        ("bar.example.com/ping", [ADA]),  # no direct match, deeper path ignored
        ("bar.example.com/pongz", [GRACE, ADA]),  # match first part of path token
        ("bar.example.com/pong/pang", [GRACE, ADA]),  # match regardless of sub-path
        ("example.com", []),  # no host match
        ("foo.example.com", []),
    ],
)
def test_docker_keyring_lookup(image: str, expected: list[Credential]) -> None:
    keyring = Keyring()
    keyring.add_config({"bar.example.com/pong": _entry(GRACE), "bar.example.com": _entry(ADA)})
    assert keyring.lookup(image) == expected


# upstream: TestIssue3797 -- an entry with a scheme and /v1/ path matches on the host alone
@pytest.mark.parametrize("image", ["registry.example.com", "registry.example.com/foo", "registry.example.com/foo/bar"])
def test_issue_3797(image: str) -> None:
    rex = Credential("rex", "tiny arms", "rex@example.com")
    keyring = Keyring()
    keyring.add_config({"https://registry.example.com/v1/": _entry(rex)})  # upstream: a real registry
    assert keyring.lookup(image) == [rex]


# --- beyond upstream --------------------------------------------------------------------------


def cred(name: str) -> Credential:
    return Credential(name, f"{name}-pw")


def test_matches_come_reverse_sorted_then_in_add_order() -> None:
    keyring = Keyring.from_entries([("registry.example.com", cred("host")), ("*.example.com", cred("glob"))])
    keyring.add([("https://registry.example.com/v2/team", cred("team")), ("registry.example.com", cred("host2"))])
    assert keyring.keys == ["registry.example.com/team", "registry.example.com", "*.example.com"]
    assert [c.username for c in keyring.lookup("registry.example.com/team/app")] == ["team", "host", "host2", "glob"]
    assert [c.username for c in keyring.lookup("registry.example.com/other")] == ["host", "host2", "glob"]


@pytest.mark.parametrize(
    ("location", "key"),
    [
        ("registry.example.com", "registry.example.com"),
        ("https://registry.example.com", "registry.example.com"),
        ("http://registry.example.com/", "registry.example.com"),
        ("https://registry.example.com/v1/", "registry.example.com"),
        ("https://registry.example.com/v2/", "registry.example.com"),
        ("registry.example.com/v2/team", "registry.example.com/team"),
        ("registry.example.com/v3/team", "registry.example.com/v3/team"),
        ("https://user:pw@registry.example.com:5000/team?x=1#frag", "registry.example.com:5000/team"),
        ("registry.example.com/a%20b", "registry.example.com/a b"),
        # The scheme check is case-sensitive: this becomes host "HTTPS:" plus path "//registry...".
        ("HTTPS://registry.example.com", "HTTPS://registry.example.com"),
        ("[::1]:5000/team", "[::1]:5000/team"),
        ("https://index.docker.io/v1/", "index.docker.io"),
    ],
)
def test_add_keys_entries_like_the_kubelet(location: str, key: str) -> None:
    assert Keyring.from_entries([(location, cred("x"))]).keys == [key]


@pytest.mark.parametrize(
    "location",
    [
        "registry.example.com:abc",  # invalid port
        "registry.example.com:5000:1",  # Go 1.25+: an http(s) host's first ':' starts the port
        "registry example.com",  # invalid character in host
        "reg%41.example.com",  # a host may only %-encode non-ASCII bytes
        "registry.example.com/%zz",  # bad escape in the path
        "a[0-9].example.com",  # '[' only opens an IPv6 literal
        "[1.2.3.4]:5000",  # ... and not an IPv4 one
        "[::1",  # missing ']'
        "https://us er@registry.example.com",  # invalid userinfo
        "registry.example.com\x7f",  # control character
    ],
)
def test_add_ignores_entries_url_parse_rejects(location: str) -> None:
    keyring = Keyring()
    assert keyring.add([(location, cred("x"))]) == [location]
    assert keyring.keys == []


def test_port_must_match_exactly() -> None:
    keyring = Keyring.from_entries([("registry.example.com:5000", cred("x"))])
    assert keyring.lookup("registry.example.com:5000/app")
    assert not keyring.lookup("registry.example.com/app")
    assert not keyring.lookup("registry.example.com:5001/app")
    assert urls_match_str("[::1]:5000", "[::1]:5000/app")


def test_path_is_a_plain_prefix() -> None:
    keyring = Keyring.from_entries([("registry.example.com/team", cred("x"))])
    assert keyring.lookup("registry.example.com/teamx/app")  # like upstream's "pongz"
    assert not keyring.lookup("registry.example.com/tea")


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.25", "docker.io/library/nginx"),
        ("nginx@sha256:" + "a" * 64, "docker.io/library/nginx"),
        ("team/app:v1", "docker.io/team/app"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("index.docker.io/team/app", "docker.io/team/app"),
        ("localhost/app", "localhost/app"),
        ("registry.example.com:5000/team/app:v1@sha256:" + "b" * 64, "registry.example.com:5000/team/app"),
        ("Team/app", "Team/app"),  # an upper-case first component is a domain
    ],
)
def test_repo_to_pull(image: str, repo: str) -> None:
    assert repo_to_pull(image) == repo


def test_docker_hub_images_reach_default_credentials_only_as_fallback() -> None:
    hub = Keyring.from_entries([("https://index.docker.io/v1/", cred("hub"))])
    assert [c.username for c in hub.lookup(repo_to_pull("nginx"))] == ["hub"]  # docker.io/library/nginx
    # Any other matching key wins and the default registry's credentials are not added.
    both = Keyring.from_entries([("https://index.docker.io/v1/", cred("hub")), ("*.io", cred("glob"))])
    assert [c.username for c in both.lookup("docker.io/library/nginx")] == ["glob"]
    assert [c.username for c in both.lookup("index.docker.io/library/nginx")] == ["hub"]  # "*.io" has 2 labels
    plain = Keyring.from_entries([("docker.io", cred("plain"))])
    assert [c.username for c in plain.lookup("docker.io/library/nginx")] == ["plain"]


def test_unparsable_image_still_gets_the_default_fallback() -> None:
    keyring = Keyring.from_entries([("index.docker.io", cred("hub")), ("*", cred("any"))])
    assert [c.username for c in keyring.lookup("team/a%zz")] == ["hub"]


def test_add_config_records_the_source() -> None:
    keyring = Keyring()
    source = CredentialSource("default", "regcred", "uid-1")
    keyring.add_config({"registry.example.com": DockerConfigEntry("u", "p", "e")}, source)
    (credential,) = keyring.lookup("registry.example.com/app")
    assert credential == Credential(
        "u", "p", "e", CredentialSource("default", "regcred", "uid-1", "registry.example.com")
    )
    assert credential.basic_auth() == base64.b64encode(b"u:p").decode()


def test_reprs_carry_no_credential_material() -> None:
    source = CredentialSource("ns", "regcred", registry_key="https://leakuser:leakpass@registry.example.com/v2/")
    credential = Credential("leakuser", "leakpass", "leak@example.com", source)
    text = repr(credential) + str(credential) + repr([credential])
    for secret in ("leakuser", "leakpass", "leak@example.com", credential.basic_auth()):
        assert secret not in text
    assert "regcred" in text
    assert "registry.example.com/v2/" in text
    assert "''" in repr(Credential("", ""))  # empty fields stay visible as empty


def test_glob_is_bytewise_like_go() -> None:
    # A %-escaped stray byte can match inside a multi-byte character, as in Go.
    assert urls_match_str("*%A9.example.com", "\u00e9.example.com")
    assert not urls_match_str("x%A9.example.com", "\u00e9.example.com")
