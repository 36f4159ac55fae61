"""The Go ports in policies.image.go_ports, against Go's own tables and recorded Go outputs.

GO_MATCH_CASES is Go's path match_test.go TestMatch table (path/filepath's is the same; BSD-3-Clause,
The Go Authors); SPLIT_HOST_PORT_* are net/ip_test.go's TestSplitHostPort tables (BSD-3-Clause, The Go
Authors); test_go_path_match_oracle replays the `path_match` outputs of tests/data/reference/go_oracle_cases.json;
the splitDockerDomain cases are distribution/reference v0.6.0 normalize_test.go's TestNormalizedSplitHostname
(Apache-2.0), from tests/data/reference/normalize_cases.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from policies.image.go_ports import (
    BadPattern,
    go_lower,
    path_match,
    path_match_bytes,
    split_docker_domain,
    split_host_port,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "reference"

# --- path.Match ---------------------------------------------------------------------------------

# Go's path TestMatch table (pattern, name, match, bad pattern).
GO_MATCH_CASES = [
    ("abc", "abc", True, False),
    ("*", "abc", True, False),
    ("*c", "abc", True, False),
    ("a*", "a", True, False),
    ("a*", "abc", True, False),
    ("a*", "ab/c", False, False),
    ("a*/b", "abc/b", True, False),
    ("a*/b", "a/c/b", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True, False),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False, False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False, False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True, False),
    ("a*b?c*x", "abxbbxdbxebxczzy", False, False),
    ("ab[c]", "abc", True, False),
    ("ab[b-d]", "abc", True, False),
    ("ab[e-g]", "abc", False, False),
    ("ab[^c]", "abc", False, False),
    ("ab[^b-d]", "abc", False, False),
    ("ab[^e-g]", "abc", True, False),
    ("a\\*b", "a*b", True, False),
    ("a\\*b", "ab", False, False),
    ("a?b", "a☺b", True, False),
    ("a[^a]b", "a☺b", True, False),
    ("a???b", "a☺b", False, False),
    ("a[^a][^a][^a]b", "a☺b", False, False),
    ("[a-ζ]*", "\u03b1", True, False),  # alpha
    ("*[a-ζ]", "A", False, False),
    ("a?b", "a/b", False, False),
    ("a*b", "a/b", False, False),
    ("[\\]a]", "]", True, False),
    ("[\\-]", "-", True, False),
    ("[x\\-]", "x", True, False),
    ("[x\\-]", "-", True, False),
    ("[x\\-]", "z", False, False),
    ("[\\-x]", "x", True, False),
    ("[\\-x]", "-", True, False),
    ("[\\-x]", "a", False, False),
    ("[]a]", "]", False, True),
    ("[-]", "-", False, True),
    ("[x-]", "x", False, True),
    ("[x-]", "-", False, True),
    ("[x-]", "z", False, True),
    ("[-x]", "x", False, True),
    ("[-x]", "-", False, True),
    ("[-x]", "a", False, True),
    ("\\", "a", False, True),
    ("[a-b-c]", "a", False, True),
    ("[", "a", False, True),
    ("[^", "a", False, True),
    ("[^bc", "a", False, True),
    ("a[", "a", False, True),
    ("a[", "ab", False, True),
    ("a[", "x", False, True),
    ("a/b[", "x", False, True),
    ("*x", "xxx", True, False),
]


@pytest.mark.parametrize(("pattern", "name", "match", "bad"), GO_MATCH_CASES)
def test_go_path_match_table(pattern: str, name: str, match: bool, bad: bool) -> None:
    if bad:
        with pytest.raises(BadPattern, match="syntax error in pattern"):
            path_match(pattern, name)
        with pytest.raises(ValueError, match="syntax error in pattern"):
            path_match_bytes(pattern.encode(), name.encode())
    else:
        assert path_match(pattern, name) is match
        assert path_match_bytes(pattern.encode(), name.encode()) is match


def _path_match_oracle() -> list[dict[str, Any]]:
    loaded: dict[str, Any] = json.loads((DATA / "go_oracle_cases.json").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = loaded["path_match"]
    return cases


@pytest.mark.parametrize("tc", _path_match_oracle(), ids=lambda tc: f"{tc['pattern']} ~ {tc['name']}")
def test_go_path_match_oracle(tc: dict[str, Any]) -> None:
    if tc["bad_pattern"]:
        with pytest.raises(BadPattern):
            path_match(tc["pattern"], tc["name"])
    else:
        assert path_match(tc["pattern"], tc["name"]) is tc["matched"]


# Checked against Go 1.26's path.Match: Go strings are bytes, decoded as runes only by '?' and classes.
@pytest.mark.parametrize(
    ("pattern", "name", "match"),
    [
        (b"*\xa9", "\u00e9".encode(), True),  # a stray byte matches inside a multi-byte character
        (b"?\xa9", "\u00e9".encode(), False),  # '?' takes the whole rune
        (b"?", b"\xff", True),  # an invalid byte is one rune (U+FFFD)
        (b"[\xef\xbf\xbd]", b"\xff", True),  # ... that a class holding U+FFFD matches
        (b"[^a]", b"\xc3", True),
    ],
)
def test_path_match_walks_bytes_like_go(pattern: bytes, name: bytes, match: bool) -> None:
    assert path_match_bytes(pattern, name) is match


@pytest.mark.parametrize("pattern", [b"[\xff]", b"[a-\xc3]", b"[\xc3]x", "[\ud800]".encode("utf-8", "surrogatepass")])
def test_an_invalid_rune_in_a_class_is_a_bad_pattern(pattern: bytes) -> None:
    with pytest.raises(BadPattern):
        path_match_bytes(pattern, b"a")


def test_a_bad_pattern_is_reported_even_when_nothing_matched() -> None:
    with pytest.raises(BadPattern):
        path_match("x*[", "abc")


# --- net.SplitHostPort --------------------------------------------------------------------------

SPLIT_HOST_PORT_OK = [
    ("localhost:http", "localhost", "http"),
    ("localhost:80", "localhost", "80"),
    ("localhost%lo0:http", "localhost%lo0", "http"),
    ("localhost%lo0:80", "localhost%lo0", "80"),
    ("[localhost%lo0]:http", "localhost%lo0", "http"),
    ("[localhost%lo0]:80", "localhost%lo0", "80"),
    ("127.0.0.1:http", "127.0.0.1", "http"),
    ("127.0.0.1:80", "127.0.0.1", "80"),
    ("[::1]:http", "::1", "http"),
    ("[::1]:80", "::1", "80"),
    ("[::1%lo0]:http", "::1%lo0", "http"),
    ("[::1%lo0]:80", "::1%lo0", "80"),
    (":http", "", "http"),
    (":80", "", "80"),
    ("golang.org:", "golang.org", ""),
    ("127.0.0.1:", "127.0.0.1", ""),
    ("[::1]:", "::1", ""),
    ("golang.org:https%foo", "golang.org", "https%foo"),
]

SPLIT_HOST_PORT_ERRORS = [
    ("golang.org", "missing port in address"),
    ("127.0.0.1", "missing port in address"),
    ("[::1]", "missing port in address"),
    ("[fe80::1%lo0]", "missing port in address"),
    ("[localhost%lo0]", "missing port in address"),
    ("localhost%lo0", "missing port in address"),
    ("::1", "too many colons in address"),
    ("fe80::1%lo0", "too many colons in address"),
    ("fe80::1%lo0:80", "too many colons in address"),
    ("[foo:bar]", "missing port in address"),
    ("[foo:bar]baz", "missing port in address"),
    ("[foo]bar:baz", "missing port in address"),
    ("[foo]:[bar]:baz", "too many colons in address"),
    ("[foo]:[bar]baz", "unexpected '[' in address"),
    ("foo[bar]:baz", "unexpected '[' in address"),
    ("foo]bar:baz", "unexpected ']' in address"),
    ("[::1:80", "missing ']' in address"),  # not in Go's table; Go's text
]


@pytest.mark.parametrize(("hostport", "host", "port"), SPLIT_HOST_PORT_OK)
def test_split_host_port(hostport: str, host: str, port: str) -> None:
    assert split_host_port(hostport) == (host, port)


@pytest.mark.parametrize(("hostport", "error"), SPLIT_HOST_PORT_ERRORS)
def test_split_host_port_errors(hostport: str, error: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        split_host_port(hostport)


# --- distribution/reference splitDockerDomain ---------------------------------------------------


def _normalized_split_hostname() -> list[dict[str, str]]:
    loaded: dict[str, Any] = json.loads((DATA / "normalize_cases.json").read_text(encoding="utf-8"))
    rows: list[dict[str, str]] = loaded["TestNormalizedSplitHostname"]["tests"]
    return rows


@pytest.mark.parametrize("tc", _normalized_split_hostname(), ids=lambda tc: tc["input"])
def test_split_docker_domain_upstream(tc: dict[str, str]) -> None:
    # The inputs carry no tag, so splitDockerDomain alone gives ParseNormalizedNamed's domain and path.
    assert split_docker_domain(tc["input"]) == (tc["domain"], tc["path"])


@pytest.mark.parametrize(
    ("name", "domain", "remainder"),
    [
        ("nginx:1.25", "docker.io", "library/nginx:1.25"),  # a tag or digest stays in the remainder
        ("nginx@sha256:abc", "docker.io", "library/nginx@sha256:abc"),
        ("index.docker.io/nginx", "docker.io", "library/nginx"),  # the legacy name is docker.io
        ("index.docker.io/team/app:v1", "docker.io", "team/app:v1"),
        ("localhost/app", "localhost", "app"),
        ("localhost:5000/app", "localhost:5000", "app"),
        ("[::1]:5000/app", "[::1]:5000", "app"),
        ("Team/app", "Team", "app"),  # uppercase is never a path: a host
        ("\u0130/app", "\u0130", "app"),  # Go lowers U+0130 to 'i'
        ("team/app", "docker.io", "team/app"),
        ("", "docker.io", "library/"),
    ],
)
def test_split_docker_domain(name: str, domain: str, remainder: str) -> None:
    assert split_docker_domain(name) == (domain, remainder)


def test_go_lower_is_simple_case_mapping() -> None:
    assert go_lower("\u0130") == "i"  # Python's full mapping gives "i\u0307"
    assert go_lower("ABC") == "abc"
