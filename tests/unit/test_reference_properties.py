"""Properties of the distribution/reference port that hold for any input, not just the upstream tables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from policies.image import reference as ref

PARSERS: dict[str, Callable[[str], ref.Reference]] = {
    "parse": ref.parse,
    "parse_normalized": ref.parse_normalized,
    "parse_named": ref.parse_named,
    "parse_docker_ref": ref.parse_docker_ref,
    "parse_any_reference": ref.parse_any_reference,
    "with_name": ref.with_name,
}

# Characters that steer the grammar, plus the few non-ASCII ones Go and Python lowercase differently.
GRAMMAR_ALPHABET = "aAbzZ09f:/@._-[]%+~ \n\u0130\u212a\u03a3\u00e9"
SHA256 = "e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"

noise = st.one_of(
    st.text(),
    st.text(alphabet=GRAMMAR_ALPHABET, max_size=40),
    st.lists(st.sampled_from(["sha256:", SHA256, "docker.io/", "localhost", "[::1]", ":5000", "library/"])).map(
        "".join
    ),
)


@pytest.mark.parametrize("parser", PARSERS)
@settings(max_examples=300)
@given(source=noise)
@example(source="")
@example(source="nginx\n")
@example(source="\u0130")
def test_arbitrary_text_raises_only_invalid_reference(parser: str, source: str) -> None:
    try:
        parsed = PARSERS[parser](source)
    except ref.InvalidReference as exc:
        failure: ref.InvalidReference | None = exc
    else:
        failure = None
    if failure is not None:
        assert str(failure)
        return
    if parsed.is_named:  # a digest-only reference prints as a bare digest
        assert ref.parse(str(parsed)) == parsed
    if parser == "parse":
        assert str(parsed) == source  # Parse never rewrites, it only splits


lower_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
path_component = st.builds(
    lambda first, rest: first + "".join(sep + part for sep, part in rest),
    lower_alnum,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "---"]), lower_alnum), max_size=3),
)
path = st.lists(path_component, min_size=1, max_size=4).map("/".join)
label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
host = st.one_of(
    st.lists(label, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["localhost", "docker.io", "index.docker.io", "[::1]", "[2001:db8::1]", "10.0.0.1"]),
)
domain = st.builds(lambda h, port: h + port, host, st.sampled_from(["", ":5000", ":443"]))
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
digest = st.one_of(
    st.just("sha256:" + SHA256),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map("sha256:".__add__),
    st.text(alphabet="0123456789abcdef", min_size=96, max_size=96).map("sha384:".__add__),
    st.text(alphabet="0123456789abcdef", min_size=128, max_size=128).map("sha512:".__add__),
)
image = st.builds(
    lambda d, p, t, g: (d + "/" if d else "") + p + (":" + t if t else "") + ("@" + g if g else ""),
    st.one_of(st.just(""), domain),
    path,
    st.none() | tag,
    st.none() | digest,
)


def _hub_namespace_looks_like_a_host(parsed: ref.Reference) -> bool:
    # Go's familiarizeName drops docker.io even from "docker.io/example.com/app", whose familiar
    # form then names another registry. The port keeps that quirk; see test_familiar_quirk_matches_go.
    first, slash, _ = parsed.familiar_name.partition("/")
    return parsed.domain == ref.DEFAULT_DOMAIN and bool(slash) and (first == "localhost" or "." in first)


@given(source=image)
def test_normalized_references_round_trip(source: str) -> None:
    parsed = ref.parse_normalized(source)
    assert ref.parse_normalized(str(parsed)) == parsed
    assert ref.parse_named(str(parsed)) == parsed
    assert ref.parse(str(parsed)) == parsed
    assert str(parsed) == parsed.name + (f":{parsed.tag}" if parsed.tag else "") + (
        f"@{parsed.digest}" if parsed.digest else ""
    )


@given(source=image)
def test_familiar_form_normalizes_back(source: str) -> None:
    parsed = ref.parse_normalized(source)
    assume(not _hub_namespace_looks_like_a_host(parsed))
    assert str(ref.parse_normalized(parsed.familiar)) == str(parsed)
    assert ref.parse_normalized(parsed.familiar_name) == ref.trim_named(parsed)


def test_familiar_quirk_matches_go() -> None:
    parsed = ref.parse_normalized("docker.io/example.com/app")
    assert (parsed.domain, parsed.path, parsed.familiar) == ("docker.io", "example.com/app", "example.com/app")
    assert ref.parse_normalized(parsed.familiar).domain == "example.com"


@given(source=image)
def test_docker_ref_has_tag_xor_digest(source: str) -> None:
    docker = ref.parse_docker_ref(source)
    assert docker.has_tag != docker.has_digest
    normalized = ref.parse_normalized(source)
    assert docker.digest == normalized.digest
    assert docker.tag == (None if normalized.digest else normalized.tag or ref.DEFAULT_TAG)


@settings(max_examples=300)
@given(source=noise)
def test_docker_ref_of_any_text_has_tag_xor_digest(source: str) -> None:
    try:
        docker = ref.parse_docker_ref(source)
    except ref.InvalidReference:
        return
    assert docker.has_tag != docker.has_digest


def _kubelet_reads_as_registry(candidate: str) -> bool:
    # splitDockerDomain's rules, restated: localhost, a dot or colon, or uppercase.
    if candidate == ref.LEGACY_DEFAULT_DOMAIN:
        return False
    return candidate == "localhost" or "." in candidate or ":" in candidate or candidate.lower() != candidate


@given(source=image, new_domain=domain, new_tag=tag, new_digest=digest)
def test_rewrites_revalidate_and_keep_the_rest(source: str, new_domain: str, new_tag: str, new_digest: str) -> None:
    parsed = ref.parse_normalized(source)
    if not _kubelet_reads_as_registry(new_domain):
        with pytest.raises(ref.InvalidFormat):
            parsed.with_domain(new_domain)
    else:
        moved = parsed.with_domain(new_domain)
        # moving a one-component path onto Docker Hub gains "library/", as the kubelet would read it
        official = new_domain == ref.DEFAULT_DOMAIN and "/" not in parsed.path
        assert (moved.domain, moved.path, moved.tag, moved.digest) == (
            new_domain,
            f"library/{parsed.path}" if official else parsed.path,
            parsed.tag,
            parsed.digest,
        )
        assert ref.parse_normalized(str(moved)) == moved
    assert parsed.with_name(parsed.name) == parsed
    assert parsed.with_tag(new_tag).tag == new_tag
    assert parsed.with_tag(new_tag).digest == parsed.digest
    assert parsed.with_digest(new_digest).tag == parsed.tag
    assert ref.trim_named(parsed).is_name_only
    assert ref.tag_name_only(ref.trim_named(parsed)).tag == ref.DEFAULT_TAG


@given(source=image, bad_domain=st.sampled_from(["", "mirror", "a_b", "a/b", "-a", "a:b:c", "[::1", "index.docker.io"]))
def test_with_domain_refuses_what_the_kubelet_would_misread(source: str, bad_domain: str) -> None:
    parsed = ref.parse_normalized(source)
    with pytest.raises(ref.InvalidReference):
        parsed.with_domain(bad_domain)


def test_with_name_normalizes_and_refuses_tags() -> None:
    pinned = ref.parse_normalized("ghcr.io/org/app:v1@sha256:" + SHA256)
    assert str(pinned.with_name("nginx")) == "docker.io/library/nginx:v1@sha256:" + SHA256
    assert str(pinned.with_name("mirror.local:5000/hub/library/nginx")) == (
        "mirror.local:5000/hub/library/nginx:v1@sha256:" + SHA256
    )
    with pytest.raises(ref.InvalidFormat):
        pinned.with_name("nginx:1.25")
    with pytest.raises(ref.NameTooLong):
        pinned.with_name("mirror.local/" + "a" * 256)


@given(source=image)
def test_references_are_immutable_values(source: str) -> None:
    parsed = ref.parse_normalized(source)
    assert parsed == ref.parse_normalized(source)
    assert hash(parsed) == hash(ref.parse_normalized(source))
    with pytest.raises(AttributeError):
        parsed.tag = "x"  # type: ignore[misc]
