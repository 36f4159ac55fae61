# Cases ported from containerd (Apache-2.0, Copyright The containerd Authors):
#   core/remotes/docker/config/hosts_test.go  (TestDefaultHosts, TestParseHostFile, TestLoadCertFiles,
#                                             TestHTTPFallback, TestHostDirFromRootsEmptyEntries)
#   core/remotes/docker/config/config_unix_test.go (TestHostPathsUnix, see the note there)
#   core/remotes/docker/config/hosts_resolver_test.go (the hosts.toml of TestResolverWithHostsDir)
#   core/remotes/docker/registry_test.go       (TestHasCapability, TestMatchLocalhost)
"""containerd's own hosts.toml cases, ported: default hosts, parsing a full hosts.toml, certificate files, the HTTP
fallback, host directory lookup and paths, per-host headers, capabilities and localhost matching. pullguard's own
cases (what containerd leaves to logs) are in test_hosts_toml_pullguard.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.hosts_toml_helpers import ALL_CAPS, PULL_ONLY, TEST_KEY
from webhook.registry.hosts import (
    PULL,
    PUSH,
    REFERRERS,
    RESOLVE,
    RegistryEndpoint,
    endpoints_with,
    find_host_dir,
    host_directory,
    host_paths,
    is_localhost,
    load_host_dir,
    match_localhost,
    parse_hosts_toml,
    resolve_endpoints,
)

# -- TestDefaultHosts ---------------------------------------------------------------------------


def test_default_hosts_docker_io() -> None:
    assert resolve_endpoints(None, "docker.io") == [
        RegistryEndpoint(scheme="https", host="registry-1.docker.io", path="/v2", capabilities=ALL_CAPS)
    ]


# -- TestParseHostFile --------------------------------------------------------------------------

PARSE_HOST_FILE_TOML = """
server = "https://test-default.registry"
ca = "/etc/path/default"
[header]
  x-custom-1 = "custom header"

[host."https://mirror.registry"]
  capabilities = ["pull"]
  ca = "/etc/certs/mirror.pem"
  skip_verify = false
  [host."https://mirror.registry".header]
    x-custom-2 = ["value1", "value2"]

[host."https://mirror-bak.registry/us"]
  capabilities = ["pull"]
  skip_verify = true

[host."http://mirror.registry"]
  capabilities = ["pull"]

[host."https://test-1.registry"]
  capabilities = ["pull", "resolve", "push", "referrers"]
  ca = ["/etc/certs/test-1-ca.pem", "/etc/certs/special.pem"]
  client = [["/etc/certs/client.cert", "/etc/certs/client.key"],["/etc/certs/client.pem", ""]]

[host."https://test-2.registry"]
  client = "/etc/certs/client.pem"

[host."https://test-3.registry"]
  client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]

[host."https://no-referrers.registry"]
  capabilities = ["pull", "resolve", "push"]
  client = ["/etc/certs/client-1.pem", "/etc/certs/client-2.pem"]

[host."https://noncompliantmirror.registry/v2/namespaceprefix"]
  capabilities = ["pull"]
  override_path = true

[host."https://noprefixnoncompliant.registry"]
  override_path = true

[host."https://onlyheader.registry".header]
  x-custom-1 = "justaheader"

[host."https://dial-timeout.registry"]
  dial_timeout = "3s"
"""

CLIENT_1_2 = (("/etc/certs/client-1.pem", ""), ("/etc/certs/client-2.pem", ""))
PARSE_HOST_FILE_EXPECTED = [
    RegistryEndpoint(
        "https",
        "mirror.registry",
        "/v2",
        PULL_ONLY,
        ca_files=("/etc/certs/mirror.pem",),
        skip_verify=False,
        headers=(("x-custom-2", ("value1", "value2")),),
        tls_configured=True,
    ),
    RegistryEndpoint("https", "mirror-bak.registry", "/us/v2", PULL_ONLY, skip_verify=True, tls_configured=True),
    RegistryEndpoint("http", "mirror.registry", "/v2", PULL_ONLY),
    RegistryEndpoint(
        "https",
        "test-1.registry",
        "/v2",
        ALL_CAPS | {REFERRERS},
        ca_files=("/etc/certs/test-1-ca.pem", "/etc/certs/special.pem"),
        client_pairs=(("/etc/certs/client.cert", "/etc/certs/client.key"), ("/etc/certs/client.pem", "")),
        tls_configured=True,
    ),
    RegistryEndpoint(
        "https",
        "test-2.registry",
        "/v2",
        ALL_CAPS,
        client_pairs=(("/etc/certs/client.pem", ""),),
        tls_configured=True,
    ),
    RegistryEndpoint("https", "test-3.registry", "/v2", ALL_CAPS, client_pairs=CLIENT_1_2, tls_configured=True),
    RegistryEndpoint("https", "no-referrers.registry", "/v2", ALL_CAPS, client_pairs=CLIENT_1_2, tls_configured=True),
    RegistryEndpoint("https", "noncompliantmirror.registry", "/v2/namespaceprefix", PULL_ONLY),
    RegistryEndpoint("https", "noprefixnoncompliant.registry", "", ALL_CAPS),
    RegistryEndpoint("https", "onlyheader.registry", "/v2", ALL_CAPS, headers=(("x-custom-1", ("justaheader",)),)),
    RegistryEndpoint("https", "dial-timeout.registry", "/v2", ALL_CAPS, dial_timeout=3.0),
    RegistryEndpoint(
        "https",
        "test-default.registry",
        "/v2",
        ALL_CAPS,
        ca_files=("/etc/path/default",),
        headers=(("x-custom-1", ("custom header",)),),
        tls_configured=True,
    ),
]


@pytest.mark.parametrize("index", range(len(PARSE_HOST_FILE_EXPECTED)))
def test_parse_host_file(index: int) -> None:
    hosts = parse_hosts_toml("", PARSE_HOST_FILE_TOML)
    assert len(hosts) == len(PARSE_HOST_FILE_EXPECTED)
    assert hosts[index] == PARSE_HOST_FILE_EXPECTED[index]


# -- TestLoadCertFiles --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cas", "pairs"),
    [
        pytest.param(["ca.crt"], [], id="crt only"),
        pytest.param(["ca.crt"], [("client.cert", "client.key")], id="crt and cert pair"),
        pytest.param([], [("client.cert", "client.key")], id="cert pair only"),
    ],
)
def test_load_cert_files(tmp_path: Path, cas: list[str], pairs: list[tuple[str, str]]) -> None:
    host_dir = tmp_path / "testing.io"
    host_dir.mkdir()
    for name in [*cas, *(f for pair in pairs for f in pair)]:
        (host_dir / name).write_bytes(TEST_KEY)
    configs = load_host_dir(str(host_dir))
    assert len(configs) == 1
    assert configs[0].ca_files == tuple(str(host_dir / n) for n in cas)
    assert configs[0].client_pairs == tuple((str(host_dir / c), str(host_dir / k)) for c, k in pairs)
    assert (configs[0].scheme, configs[0].host, configs[0].path, configs[0].skip_verify) == ("", "", "", None)
    assert configs[0].tls_configured


# -- TestHTTPFallback ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "default_scheme", "default_tls", "scheme", "fallback"),
    [
        ("localhost:8080", "http", True, "https", True),
        ("localhost:8080", "https", True, "https", False),
        ("localhost:8080", "", False, "https", True),
        ("localhost:80", "", False, "http", False),
        ("localhost:443", "", False, "https", False),
        ("localhost:80", "http", True, "http", False),
        ("localhost", "http", True, "https", True),
        ("localhost", "https", True, "https", False),
        ("localhost", "", False, "https", False),
        ("localhost:5000", "", False, "https", True),
        ("example.com", "", False, "https", False),
        ("example.com", "http", True, "https", True),
        ("example.com:5000", "http", True, "https", True),
        ("example.com:5000", "", False, "https", False),
        ("example2.com", "http", False, "http", False),
        ("127.0.0.254:5000", "", False, "https", True),
        ("127.0.0.254", "", False, "https", False),
        ("[::1]:5000", "", False, "https", True),
        ("::1", "", False, "https", False),
    ],
)
def test_http_fallback(host: str, default_scheme: str, default_tls: bool, scheme: str, fallback: bool) -> None:
    hosts = resolve_endpoints(None, host, default_scheme=default_scheme, default_tls=default_tls)
    assert len(hosts) == 1
    assert (hosts[0].scheme, hosts[0].http_fallback, hosts[0].host) == (scheme, fallback, host)


# -- TestHostDirFromRootsEmptyEntries -----------------------------------------------------------


@pytest.mark.parametrize("roots", [[], [""], ["", "<tmp>", ""]])
def test_host_dir_from_roots_empty_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, roots: list[str]) -> None:
    (tmp_path / "cwd" / "_default").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    roots = [str(tmp_path / "other") if r == "<tmp>" else r for r in roots]
    assert find_host_dir(roots, "registry.invalid") is None


# -- TestHostPathsUnix --------------------------------------------------------------------------
# The newest upstream copy of this test also expects a parent-domain directory (".docker.io")
# between the host and "_default"; its hostSuffix code was not in the hosts.go/config_unix.go we
# ported (nor in remotes/docker/config of containerd 1.x), so these expectations drop that entry.


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("docker.io", ["docker.io", "_default"]),
        ("test.docker.io", ["test.docker.io", "_default"]),
        ("foo.bar.test.docker.io", ["foo.bar.test.docker.io", "_default"]),
        ("foo.bar.test.docker.com", ["foo.bar.test.docker.com", "_default"]),
        ("localhost", ["localhost", "_default"]),
        ("localhost:5555", ["localhost_5555_", "localhost:5555", "_default"]),
        ("test.localhost", ["test.localhost", "_default"]),
        ("specific.test.localhost", ["specific.test.localhost", "_default"]),
        (
            "specific.test.localhost:5555",
            ["specific.test.localhost_5555_", "specific.test.localhost:5555", "_default"],
        ),
        ("docker.us", ["docker.us", "_default"]),
        ("test.docker.us", ["test.docker.us", "_default"]),
        ("docker.co.uk", ["docker.co.uk", "_default"]),
        ("test.docker.co.uk", ["test.docker.co.uk", "_default"]),
        ("more.test.docker.co.uk", ["more.test.docker.co.uk", "_default"]),
        ("more.test.docker.org.uk", ["more.test.docker.org.uk", "_default"]),
        ("test.docker.co.uk:5555", ["test.docker.co.uk_5555_", "test.docker.co.uk:5555", "_default"]),
    ],
)
def test_host_paths_unix(host: str, expected: list[str]) -> None:
    assert host_paths("", host) == expected


# -- TestResolverWithHostsDir (the configuration half) ------------------------------------------


@pytest.mark.parametrize("mirror", [True, False])
def test_resolver_with_hosts_dir_headers_stay_per_host(tmp_path: Path, mirror: bool) -> None:
    base = "127.0.0.1:5443"
    host_dir = tmp_path / host_directory(base)
    host_dir.mkdir()
    mirror_table = '[host."https://127.0.0.1:5444".header]\n  User-Agent = "mirror"\n  x-mirror-custom-1 = "m"\n'
    (host_dir / "hosts.toml").write_text(
        'server = "https://127.0.0.1:5445"\n[header]\n  User-Agent = "server"\n  x-server-custom-1 = "s"\n'
        + (mirror_table if mirror else "")
    )
    hosts = resolve_endpoints(str(tmp_path), base)
    server = RegistryEndpoint(
        "https", "127.0.0.1:5445", headers=(("User-Agent", ("server",)), ("x-server-custom-1", ("s",)))
    )
    expected = [
        RegistryEndpoint(
            "https", "127.0.0.1:5444", headers=(("User-Agent", ("mirror",)), ("x-mirror-custom-1", ("m",)))
        )
    ]
    assert hosts == [*(expected if mirror else []), server]


# -- TestHasCapability (registry_test.go) -------------------------------------------------------

_ALL = frozenset({PULL, RESOLVE, PUSH})


@pytest.mark.parametrize(
    ("caps", "wanted", "has"),
    [
        (_ALL, {PULL}, True),
        (_ALL, {PULL, RESOLVE}, True),
        (_ALL, {PULL, PUSH}, True),
        (_ALL, _ALL, True),
        ({PULL}, _ALL, False),
        ({PULL}, {PUSH}, False),
        ({RESOLVE}, {PULL}, False),
        ({PULL, RESOLVE}, {PUSH}, False),
        ({PULL, RESOLVE}, {RESOLVE}, True),
    ],
)
def test_has_capability(caps: set[str], wanted: set[str], has: bool) -> None:
    endpoint = RegistryEndpoint("https", "registry.example.com", capabilities=frozenset(caps))
    assert bool(endpoints_with([endpoint], *wanted)) is has


# -- TestMatchLocalhost (registry_test.go), and IsLocalhost -------------------------------------


@pytest.mark.parametrize(
    ("host", "match"),
    [
        ("", False),
        ("127.1.1.1", True),
        ("127.0.0.1", True),
        ("127.256.0.1", False),
        ("127.23.34.52", True),
        ("127.0.0.1:5000", True),
        ("registry.org", False),
        ("126.example.com", False),
        ("localhost", True),
        ("localhost:5000", True),
        ("[127:0:0:1]", False),
        ("[::1]", True),
        ("[::1]:", False),
        ("127.0.1.1:", False),
        ("[::1]:5000", True),
        ("::1", True),
    ],
)
def test_match_localhost(host: str, match: bool) -> None:
    assert match_localhost(host) is match


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.2:80", True),
        ("::1", True),
        ("[::1]:5000", True),
        ("[::1]", False),
        ("::ffff:127.0.0.1", True),
        ("registry.example.com", False),
        ("10.0.0.1:5000", False),
        ("fe80::1%eth0", False),
    ],
)
def test_is_localhost(host: str, local: bool) -> None:
    assert is_localhost(host) is local
