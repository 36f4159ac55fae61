"""pullguard's own hosts.toml cases, beyond the ones ported from containerd (test_hosts_toml_upstream.py): finding
and reading host directories, server URLs and request paths, errors that name the file and the key, which
endpoints a lookup uses, and a fuzz-style property (any input parses or raises HostsConfigError)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.hosts_toml_helpers import ALL_CAPS, PULL_ONLY, TEST_KEY
from webhook.registry.hosts import (
    HostsConfigError,
    RegistryEndpoint,
    configure_endpoints,
    find_host_dir,
    is_proxy,
    lookup_endpoints,
    parse_hosts_toml,
    request_url,
    resolve_endpoints,
)

# -- pullguard: finding and reading host directories --------------------------------------------


def _write(root: Path, name: str, toml: str) -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "hosts.toml").write_text(toml)
    return root / name


def test_port_directory_spelled_with_underscores_wins_then_colon_then_default(tmp_path: Path) -> None:
    _write(tmp_path, "_default", 'server = "https://default.example.com"')
    assert find_host_dir(str(tmp_path), "registry.example.com:5000") == str(tmp_path / "_default")
    _write(tmp_path, "registry.example.com:5000", 'server = "https://colon.example.com"')
    assert find_host_dir(str(tmp_path), "registry.example.com:5000") == str(tmp_path / "registry.example.com:5000")
    _write(tmp_path, "registry.example.com_5000_", 'server = "https://underscore.example.com"')
    hosts = resolve_endpoints(str(tmp_path), "registry.example.com:5000")
    assert [h.host for h in hosts] == ["underscore.example.com"]


def test_default_directory_applies_to_any_host(tmp_path: Path) -> None:
    _write(tmp_path, "_default", '[host."https://mirror.example.com"]\n  capabilities = ["pull"]\n')
    hosts = resolve_endpoints(str(tmp_path), "docker.io")
    assert [(h.host, h.capabilities) for h in hosts] == [
        ("mirror.example.com", PULL_ONLY),
        ("registry-1.docker.io", ALL_CAPS),
    ]


def test_roots_in_order_and_a_roots_default_beats_a_later_roots_host(tmp_path: Path) -> None:
    _write(tmp_path / "a", "_default", 'server = "https://a-default.example.com"')
    _write(tmp_path / "b", "registry.example.com", 'server = "https://b-host.example.com"')
    roots = f"{tmp_path / 'a'}:{tmp_path / 'b'}"
    assert [h.host for h in resolve_endpoints(roots, "registry.example.com")] == ["a-default.example.com"]
    only_b = [str(tmp_path / "missing"), str(tmp_path / "b")]
    assert [h.host for h in resolve_endpoints(only_b, "registry.example.com")] == ["b-host.example.com"]


def test_no_directory_means_the_default_endpoint(tmp_path: Path) -> None:
    assert resolve_endpoints(str(tmp_path), "registry.example.com") == [
        RegistryEndpoint("https", "registry.example.com")
    ]


def test_no_server_keeps_top_level_tls_for_the_default_endpoint(tmp_path: Path) -> None:
    _write(tmp_path, "registry.example.com", 'ca = "ca.pem"\ncapabilities = ["pull"]\n[header]\n  x-a = "1"\n')
    (hosts,) = [resolve_endpoints(str(tmp_path), "registry.example.com")]
    assert hosts == [
        RegistryEndpoint(
            "https",
            "registry.example.com",
            "/v2",
            ALL_CAPS,
            ca_files=(str(tmp_path / "registry.example.com/ca.pem"),),
            headers=(("x-a", ("1",)),),
            tls_configured=True,
        )
    ]


def test_localhost_without_server_skips_verify_and_falls_back(tmp_path: Path) -> None:
    _write(tmp_path, "localhost_5000_", '[host."http://127.0.0.1:5001"]\n  capabilities = ["pull", "resolve"]\n')
    first, last = resolve_endpoints(str(tmp_path), "localhost:5000")
    assert (first.scheme, first.host, first.http_fallback) == ("http", "127.0.0.1:5001", False)
    assert (last.scheme, last.host, last.skip_verify, last.http_fallback) == (
        "https",
        "localhost:5000",
        True,
        True,
    )


def test_http_mirror_with_tls_settings_tries_https_first(tmp_path: Path) -> None:
    toml = (
        '[host."http://mirror.example.com:5000"]\n  skip_verify = true\n'
        '[host."http://mirror.example.com:80"]\n  ca = "c.pem"\n'
    )
    hosts = parse_hosts_toml(str(tmp_path), toml)
    configured = configure_endpoints("registry.example.com", hosts)
    assert [(h.scheme, h.http_fallback) for h in configured] == [
        ("https", True),
        ("http", False),
        ("https", False),
    ]


def test_empty_hosts_toml_falls_back_to_cert_files(tmp_path: Path) -> None:
    host_dir = _write(tmp_path, "registry.example.com", "")
    (host_dir / "ca.crt").write_bytes(TEST_KEY)
    (host_dir / "client.cert").write_bytes(TEST_KEY)
    (host_dir / "sub.crt").mkdir()
    (hosts,) = [resolve_endpoints(str(tmp_path), "registry.example.com")]
    assert hosts == [
        RegistryEndpoint(
            "https",
            "registry.example.com",
            ca_files=(str(host_dir / "ca.crt"),),
            client_pairs=((str(host_dir / "client.cert"), ""),),
            tls_configured=True,
        )
    ]


@pytest.mark.parametrize(
    ("server", "scheme", "host", "path"),
    [
        ("registry.example.com", "https", "registry.example.com", "/v2"),
        ("http://registry.example.com:5000", "http", "registry.example.com:5000", "/v2"),
        ("https://user:secret@registry.example.com/", "https", "registry.example.com", "//v2"),  # as Go
        ("https://registry.example.com/a/../b//", "https", "registry.example.com", "/b/v2"),
        ("https://registry.example.com/v2/", "https", "registry.example.com", "/v2"),
        ("https://[::1]:5000/x%20y", "https", "[::1]:5000", "/x y/v2"),
    ],
)
def test_server_urls(server: str, scheme: str, host: str, path: str) -> None:
    (endpoint,) = parse_hosts_toml("", f'server = "{server}"')
    assert (endpoint.scheme, endpoint.host, endpoint.path) == (scheme, host, path)


def test_request_urls_join_like_containerd() -> None:
    (endpoint,) = parse_hosts_toml("", 'server = "https://registry.example.com/"')
    assert request_url(endpoint, "library/busybox", "manifests", "latest") == (
        "https://registry.example.com/v2/library/busybox/manifests/latest"
    )
    assert (
        request_url(endpoint, "team/app", "blobs", "uploads/")
        == "https://registry.example.com/v2/team/app/blobs/uploads/"
    )


def test_relative_paths_resolve_against_the_host_directory() -> None:
    toml = 'ca = ["ca.pem", "../shared/ca.pem", "/abs/ca.pem"]\nclient = [["c.pem", "k.pem"]]\n'
    (endpoint,) = parse_hosts_toml("/etc/containerd/certs.d/registry.example.com", toml)
    base = "/etc/containerd/certs.d"
    assert endpoint.ca_files == (
        f"{base}/registry.example.com/ca.pem",
        f"{base}/shared/ca.pem",
        "/abs/ca.pem",
    )
    assert endpoint.client_pairs == ((f"{base}/registry.example.com/c.pem", f"{base}/registry.example.com/k.pem"),)


def test_host_order_follows_containerd_header_scan() -> None:
    toml = (
        'host."https://dotted.example.com".capabilities = ["pull"]\n'  # a dotted key is no table header
        '[host."https://a.example.com"]\n[host."https://b.example.com"]\n'
        '[host."https://a.example.com".header]\n  x = "1"\n'  # re-opened after b: listed again
    )
    hosts = parse_hosts_toml("", toml)
    assert [h.host for h in hosts] == ["a.example.com", "b.example.com", "a.example.com", ""]
    assert all(h.headers == (("x", ("1",)),) for h in hosts if h.host == "a.example.com")


def test_keys_match_case_insensitively_like_go_toml() -> None:
    (endpoint,) = parse_hosts_toml("", 'Server = "https://r.example.com"\nSKIP_VERIFY = true\nCapabilities = ["PULL"]')
    assert (endpoint.host, endpoint.skip_verify, endpoint.capabilities) == ("r.example.com", True, PULL_ONLY)


def test_empty_lists() -> None:
    (endpoint,) = parse_hosts_toml("", "capabilities = []\nclient = []\n")
    assert (endpoint.capabilities, endpoint.tls_configured) == (ALL_CAPS, False)  # as in Go: nil pairs
    (endpoint,) = parse_hosts_toml("", "ca = []\n")
    assert endpoint.tls_configured  # an empty, non-nil CA list still counts as explicit TLS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3s", 3.0), ("1m30s", 90.0), ("1.5h", 5400.0), ("250ms", 0.25), ("-2s", -2.0), ("0", 0.0)],
)
def test_dial_timeout_durations(text: str, seconds: float) -> None:
    (endpoint,) = parse_hosts_toml("", f'dial_timeout = "{text}"')
    assert endpoint.dial_timeout == pytest.approx(seconds)


# -- pullguard: errors name the file and the key ------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("server = [", "not valid TOML"),
        ("server = 5", "'server'"),
        ('capabilities = "pull"', "'capabilities'"),
        ('capabilities = ["pull", "delete"]', "unknown capability 'delete'"),
        ('skip_verify = "yes"', "'skip_verify'"),
        ("override_path = 1", "'override_path'"),
        ("ca = 5", "'ca'"),
        ("ca = [1]", "'ca'"),
        ('client = [["a"]]', "'client'"),
        ("client = [1]", "'client'"),
        ('header = "x"', "'header'"),
        ("[header]\n  x = 1", "'header.x'"),
        ('dial_timeout = "3"', "'dial_timeout'"),
        ('host = "x"', "'host'"),
        ('[host."https://m.example.com"]\n  skip_verify = 1', "'host.\"https://m.example.com\".skip_verify'"),
        ('server = "https://bad host.example.com"', "unable to parse server"),
        ('server = "https://registry.example.com:port"', "unable to parse server"),
        ('server = "https://registry.example.com/%zz"', "invalid escape"),
    ],
)
def test_malformed_hosts_toml(tmp_path: Path, toml: str, key: str) -> None:
    host_dir = _write(tmp_path, "registry.example.com", toml)
    (host_dir / "ca.crt").write_bytes(TEST_KEY)
    with pytest.raises(HostsConfigError) as info:
        resolve_endpoints(str(tmp_path), "registry.example.com")
    assert str(host_dir / "hosts.toml") in str(info.value)
    assert key in str(info.value)
    lenient = resolve_endpoints(str(tmp_path), "registry.example.com", strict=False)  # containerd's fallback
    assert lenient == [
        RegistryEndpoint("https", "registry.example.com", ca_files=(str(host_dir / "ca.crt"),), tls_configured=True)
    ]


def test_unreadable_hosts_toml_is_an_error_even_when_lenient(tmp_path: Path) -> None:
    (tmp_path / "registry.example.com" / "hosts.toml").mkdir(parents=True)
    with pytest.raises(HostsConfigError, match=r"hosts\.toml"):
        resolve_endpoints(str(tmp_path), "registry.example.com", strict=False)


# -- pullguard: which endpoints a lookup uses ---------------------------------------------------


def test_lookup_by_tag_needs_resolve_by_digest_pull_only() -> None:
    toml = (
        '[host."https://public-mirror.example.com"]\n  capabilities = ["pull"]\n'
        '[host."https://private-mirror.example.com"]\n  capabilities = ["pull", "resolve"]\n'
        '[host."https://push-only.example.com"]\n  capabilities = ["push"]\n'
    )
    hosts = configure_endpoints("docker.io", parse_hosts_toml("", toml))
    assert [h.host for h in lookup_endpoints(hosts, by_digest=False)] == [
        "private-mirror.example.com",
        "registry-1.docker.io",
    ]
    assert [h.host for h in lookup_endpoints(hosts, by_digest=True)] == [
        "public-mirror.example.com",
        "private-mirror.example.com",
        "registry-1.docker.io",
    ]
    assert [is_proxy(h, "docker.io") for h in hosts] == [True, True, True, False]


# -- FuzzParseHostsFile-style property: any input parses or raises HostsConfigError -------------


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[].\"=\n #abchostrverpulcaintkyfs_-:/1'", max_size=120))
def test_parse_never_fails_otherwise(text: str) -> None:
    try:
        hosts = parse_hosts_toml("/certs", text)
    except HostsConfigError:
        return
    assert hosts
    assert all(isinstance(h, RegistryEndpoint) for h in hosts)
