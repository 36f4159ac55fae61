# Cases ported from github.com/containerd/platforms (Apache-2.0, Copyright The containerd Authors):
#   platforms_test.go (TestParseSelector, TestFormatAllEncoding, TestParseSelectorInvalid, FuzzPlatformsParse)
#   compare_test.go   (TestOnly, TestOnlyStrict; the tables of two upstream revisions merged)
#   defaults_test.go  (TestMatchComparerMatch_ABICheckWCOW)
# "The running machine" is linux/amd64 here: parse() takes its defaults as arguments.
# Upstream cases using OS features ("linux(+gpu)") are checked to be rejected: not modelled.
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.image.platforms import (
    Platform,
    PlatformSpecError,
    best_match,
    format,
    format_all,
    from_goarch,
    is_attestation,
    matches,
    matches_strict,
    node_platform,
    normalize,
    parse,
    platform_vector,
    windows_compatible,
)

P = Platform

# -- TestParseSelector --------------------------------------------------------------------------
# (input, expected, extra platforms the specifier's NewMatcher must match, formatted, use FormatAll)
PARSE_SELECTOR = [
    (
        "linux/arm64",
        P("linux", "arm64"),
        [P("linux", "aarch64"), P("linux", "aarch64", "v8"), P("linux", "arm64", "v8")],
        "linux/arm64",
        False,
    ),
    (
        "linux/arm64/v8",
        P("linux", "arm64", "v8"),
        [P("linux", "aarch64"), P("linux", "aarch64", "v8"), P("linux", "arm64")],
        "linux/arm64/v8",
        False,
    ),
    (
        "linux/arm",
        P("linux", "arm"),
        [P("linux", "arm", "v7"), P("linux", "armhf"), P("linux", "arm", "7")],
        "linux/arm",
        False,
    ),
    ("linux/arm/v6", P("linux", "arm", "v6"), [P("linux", "armel")], "linux/arm/v6", False),
    (
        "linux/arm/v7",
        P("linux", "arm", "v7"),
        [P("linux", "arm"), P("linux", "armhf")],
        "linux/arm/v7",
        False,
    ),
    ("arm", P("linux", "arm"), [], "linux/arm", False),
    ("armel", P("linux", "arm", "v6"), [], "linux/arm/v6", False),
    ("armhf", P("linux", "arm"), [], "linux/arm", False),
    ("Aarch64", P("linux", "arm64"), [], "linux/arm64", False),
    ("x86_64", P("linux", "amd64"), [], "linux/amd64", False),
    ("Linux/x86_64", P("linux", "amd64"), [], "linux/amd64", False),
    ("i386", P("linux", "386"), [], "linux/386", False),
    ("linux", P("linux", "amd64"), [], "linux/amd64", False),
    ("s390x", P("linux", "s390x"), [], "linux/s390x", False),
    ("linux/s390x", P("linux", "s390x"), [], "linux/s390x", False),
    ("macOS", P("darwin", "amd64"), [], "darwin/amd64", False),
    ("windows", P("windows", "amd64"), [], "windows/amd64", False),
    ("windows()", P("windows", "amd64"), [], "windows/amd64", True),
    ("windows(10.0.17763)", P("windows", "amd64", "", "10.0.17763"), [], "windows(10.0.17763)/amd64", True),
    (
        "windows(10.0.17763%2Bbuild.42)",
        P("windows", "amd64", "", "10.0.17763+build.42"),
        [],
        "windows(10.0.17763%2Bbuild.42)/amd64",
        True,
    ),
    ("windows(50%25done)", P("windows", "amd64", "", "50%done"), [], "windows(50%25done)/amd64", True),
]


@pytest.mark.parametrize(
    ("spec", "expected", "also", "formatted", "v2"), PARSE_SELECTOR, ids=[c[0] for c in PARSE_SELECTOR]
)
def test_parse_selector(spec: str, expected: Platform, also: list[Platform], formatted: str, v2: bool) -> None:
    p = parse(spec)
    assert p == expected
    for other in [expected, *also]:
        assert matches_strict(other, p), other
    fmt = format_all if v2 else format
    assert fmt(p) == formatted
    assert fmt(parse(formatted)) == formatted


@pytest.mark.parametrize(
    "spec",
    [
        "*",
        "linux/*",
        "*/arm64",  # upstream skips these: wildcards are not supported
        "windows(10.0.17763+win32k)",
        "linux(+gpu)",
        "linux(+gpu+simd)",
        "linux(+unsorted+erofs)",
        "windows(10.0.17763%2Bbuild.42+win32k)",  # OS features: not modelled
    ],
)
def test_parse_selector_unsupported(spec: str) -> None:
    with pytest.raises(PlatformSpecError):
        parse(spec)


def test_parse_selector_uses_the_given_machine() -> None:
    assert parse("linux", default_arch="arm", default_variant="v6") == P("linux", "arm", "v6")
    assert parse("linux", default_arch="arm", default_variant="v7") == P("linux", "arm")
    assert parse("arm64", default_os="windows") == P("windows", "arm64")


# -- TestFormatAllEncoding (the cases without OS features) ---------------------------------------


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        (P("windows", "amd64", os_version="10.0.17763+build.42"), "windows(10.0.17763%2Bbuild.42)/amd64"),
        (P("windows", "amd64", os_version="50%done"), "windows(50%25done)/amd64"),
        (P("windows", "amd64", os_version="1.0(beta)"), "windows(1.0%28beta%29)/amd64"),
        (P("windows", "amd64", os_version="a/b"), "windows(a%2Fb)/amd64"),
        (P("windows", "amd64", os_version="10.0.17763"), "windows(10.0.17763)/amd64"),
    ],
)
def test_format_all_encoding(platform: Platform, expected: str) -> None:
    assert format_all(platform) == expected
    assert parse(expected).os_version == platform.os_version


# -- TestParseSelectorInvalid -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "/linux/arm",
        "linux/arm/",
        "linux /arm",
        "linux/&arm",
        "linux/arm/foo/bar",
        "windows(%zz)",
        "sparkle",
    ],
)
def test_parse_selector_invalid(spec: str) -> None:
    with pytest.raises(PlatformSpecError):
        parse(spec)


# -- FuzzPlatformsParse -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="linuxamd64rv78/().%_-*+ AW", max_size=30))
def test_parse_fuzz(spec: str) -> None:
    try:
        p = parse(spec)
    except PlatformSpecError:
        return
    assert p.os
    assert p.architecture


# -- TestOnly / TestOnlyStrict ------------------------------------------------------------------

_COMPARE = json.loads((Path(__file__).parents[1] / "data" / "platforms" / "compare_cases.json").read_text())
# wanted platform -> (images its matcher accepts, images it rejects)
ONLY = {wanted: (case["match"], case["noMatch"]) for wanted, case in _COMPARE["only"].items()}

ONLY_STRICT = {wanted: (case["match"], case["noMatch"]) for wanted, case in _COMPARE["onlyStrict"].items()}


def _cases(table: dict[str, tuple[list[str], list[str]]]) -> list[tuple[str, str, bool]]:
    return [
        (w, spec, ok) for w, (yes, no) in table.items() for ok, specs in ((True, yes), (False, no)) for spec in specs
    ]


@pytest.mark.parametrize(("wanted", "image", "ok"), _cases(ONLY))
def test_only(wanted: str, image: str, ok: bool) -> None:
    assert matches(parse(image), parse(wanted)) is ok


@pytest.mark.parametrize(("wanted", "image", "ok"), _cases(ONLY_STRICT))
def test_only_strict(wanted: str, image: str, ok: bool) -> None:
    assert matches_strict(parse(image), parse(wanted)) is ok


# -- TestMatchComparerMatch_ABICheckWCOW --------------------------------------------------------

WS2019, WS2022, WIN11 = "10.0.17763", "10.0.20348", "10.0.22621"


@pytest.mark.parametrize(
    ("host", "image", "ok"),
    [
        (WS2019, WS2019, True),
        (WS2019, WS2022, False),
        (WS2022, WS2019, False),
        (WS2022, WS2022, True),
        (WIN11, WS2019, False),
        (WIN11, WS2022, True),
        ("", WS2019, True),
        ("", "", True),
        ("", WIN11, True),
    ],
)
def test_windows_abi_compatibility(host: str, image: str, ok: bool) -> None:
    assert matches_strict(P("windows", "amd64", os_version=image), P("windows", "amd64", os_version=host)) is ok
    assert windows_compatible(host, image) is ok


# -- pullguard: normalize, vectors, selection, attestations, nodes ------------------------------


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        (P("Linux", "AARCH64", "8"), P("linux", "arm64")),
        (P("linux", "arm64", "v8.0"), P("linux", "arm64")),
        (P("linux", "arm64", "9.0"), P("linux", "arm64", "v9")),
        (P("linux", "arm64", "v8.2"), P("linux", "arm64", "v8.2")),
        (P("linux", "arm"), P("linux", "arm", "v7")),
        (P("linux", "arm", "6"), P("linux", "arm", "v6")),
        (P("linux", "armhf", "v6"), P("linux", "arm", "v7")),
        (P("linux", "x86-64", "v1"), P("linux", "amd64")),
        (P("linux", "amd64", "v3"), P("linux", "amd64", "v3")),
        (P("linux", "i386", "v9"), P("linux", "386")),
        (P("macos", "arm64"), P("darwin", "arm64")),
        (P("", "amd64"), P("linux", "amd64")),
        (P("windows", "amd64", "", "10.0.17763"), P("windows", "amd64", "", "10.0.17763")),
    ],
)
def test_normalize(given_: Platform, expected: Platform) -> None:
    assert normalize(given_) == expected


def test_platform_vectors() -> None:
    assert [format(p) for p in platform_vector(parse("linux/amd64/v3"))] == [
        "linux/amd64/v3",
        "linux/amd64/v2",
        "linux/amd64/v1",
        "linux/386",
    ]
    assert [format(p) for p in platform_vector(normalize(parse("linux/arm64")))] == [
        "linux/arm64",
        "linux/arm/v8",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/arm/v5",
    ]
    assert len(platform_vector(parse("linux/amd64/v99999999999"))) < 100  # bounded, unlike upstream


def test_best_match_prefers_the_exact_platform_then_list_order() -> None:
    index = [
        parse("linux/arm/v7"),
        None,
        P("unknown", "unknown"),
        parse("linux/arm64"),
        parse("linux/arm64/v8"),
    ]
    assert best_match(index, parse("linux/arm64")) == 3
    assert best_match(index, parse("linux/arm/v7")) == 0
    assert best_match(index, parse("linux/amd64")) == 1  # an entry without a platform matches, last
    assert best_match([parse("linux/386"), parse("linux/amd64")], parse("linux/amd64")) == 1
    assert best_match([parse("linux/s390x")], parse("linux/amd64")) is None


@pytest.mark.parametrize(
    ("platform", "annotations", "expected"),
    [
        (P("unknown", "unknown"), None, True),
        (P("unknown", "unknown"), {"vnd.docker.reference.digest": "sha256:00"}, True),
        (None, {"vnd.docker.reference.type": "attestation-manifest"}, True),
        (P("linux", "amd64"), {"vnd.docker.reference.type": "attestation-manifest"}, True),
        (P("linux", "amd64"), {}, False),
        (P("unknown", "amd64"), None, False),
        (None, None, False),
    ],
)
def test_is_attestation(platform: Platform | None, annotations: dict[str, str] | None, expected: bool) -> None:
    assert is_attestation(platform, annotations) is expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}, P("linux", "amd64")),
        ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}, P("linux", "arm64")),
        ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm"}, P("linux", "arm", "v7")),
        ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "ppc64le"}, P("linux", "ppc64le")),
        ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "s390x"}, P("linux", "s390x")),
        ({"kubernetes.io/os": "linux", "kubernetes.io/arch": "riscv64"}, P("linux", "riscv64")),
        ({"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}, P("linux", "amd64")),
        (
            {
                "kubernetes.io/os": "windows",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/windows-build": WS2022,
            },
            P("windows", "amd64", "", WS2022),
        ),
        ({"kubernetes.io/os": "linux"}, None),
        ({}, None),
    ],
)
def test_node_platform(labels: dict[str, str], expected: Platform | None) -> None:
    assert node_platform(labels) == expected


def test_node_platform_matching() -> None:
    arm64 = node_platform({"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"})
    assert arm64 is not None
    assert matches(parse("linux/arm/v7"), arm64)  # documented choice: containerd's Only()
    assert not matches(parse("linux/amd64"), arm64)
    amd64 = from_goarch("linux", "amd64")
    assert not matches(parse("linux/amd64/v3"), amd64)  # the labels carry no microarchitecture level
    assert matches(parse("linux/amd64/v3"), from_goarch("linux", "amd64", "v3"))
    ws2022 = node_platform(
        {
            "kubernetes.io/os": "windows",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/windows-build": WS2022,
        }
    )
    assert ws2022 is not None
    assert not matches(P("windows", "amd64", "", WS2019 + ".1"), ws2022)
    assert matches(P("windows", "amd64", "", WS2022 + ".2700"), ws2022)
