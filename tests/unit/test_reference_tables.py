"""The upstream Go test tables of github.com/distribution/reference, run against the Python port.

Each row of tests/data/reference/*.json is one test, asserting what the Go test asserts (see the
README there). `go_oracle_cases.json` adds the outputs the Go package itself gave for edge cases (its
`path_match` outputs are replayed by test_go_compat.py, against policies.image.go_ports).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from policies.image import reference as ref
from policies.image._reference_grammar import ANCHORED_NAME_RE, DOMAIN_RE, IDENTIFIER_RE, REFERENCE_RE

DATA = Path(__file__).resolve().parents[1] / "data" / "reference"


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return loaded


REFERENCE = _load("reference_cases.json")
NORMALIZE = _load("normalize_cases.json")
REGEXP = _load("regexp_cases.json")
ORACLE = _load("go_oracle_cases.json")

# Go error value -> the class the port raises for it.
GO_ERRORS: dict[str, type[ref.InvalidReference]] = {
    "ErrReferenceInvalidFormat": ref.InvalidFormat,
    "ErrTagInvalidFormat": ref.InvalidTagFormat,
    "ErrDigestInvalidFormat": ref.InvalidDigestFormat,
    "ErrNameContainsUppercase": ref.UppercaseName,
    "ErrNameEmpty": ref.EmptyName,
    "ErrNameTooLong": ref.NameTooLong,
    "ErrNameNotCanonical": ref.NameNotCanonical,
    "digest.ErrDigestInvalidFormat": ref.InvalidDigest,
    "digest.ErrDigestInvalidLength": ref.InvalidDigestLength,
    "digest.ErrDigestUnsupported": ref.UnsupportedDigest,
}


def text(value: Any) -> str:
    """A table string; `{"concat": [...]}` spells out Go's `"x" + strings.Repeat("a/", 127)`."""
    if isinstance(value, str):
        return value
    return "".join(part if isinstance(part, str) else part["repeat"] * part["count"] for part in value["concat"])


def rows(table: dict[str, Any], test: str, var: str = "tests") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = table[test][var]
    return found


def cases(items: Iterable[Any], key: Callable[[Any], str]) -> list[Any]:
    """pytest params with readable ids (long inputs are cut)."""
    return [pytest.param(item, id=repr(key(item))[:70]) for item in items]


def assert_go_error(raised: BaseException, go_error: str) -> None:
    assert type(raised) is GO_ERRORS[go_error]
    assert str(raised) == REFERENCE["errors"][go_error]


@pytest.mark.parametrize(("go_error", "cls"), GO_ERRORS.items())
def test_error_strings_are_gos(go_error: str, cls: type[ref.InvalidReference]) -> None:
    assert str(cls()) == REFERENCE["errors"][go_error]
    assert isinstance(cls(), ValueError)


# reference_test.go


@pytest.mark.parametrize("tc", cases(rows(REFERENCE, "TestReferenceParse"), lambda tc: text(tc["input"])))
def test_reference_parse(tc: dict[str, Any]) -> None:
    source = text(tc["input"])
    if "err" in tc:
        with pytest.raises(ref.InvalidReference) as raised:
            ref.parse(source)
        assert_go_error(raised.value, tc["err"])
        return
    parsed = ref.parse(source)
    assert str(parsed) == source
    assert parsed.name == text(tc.get("repository", ""))
    assert parsed.domain == tc.get("domain", "")
    assert parsed.tag == (tc.get("tag") or None)
    assert parsed.digest == (tc.get("digest") or None)


@pytest.mark.parametrize("tc", cases(rows(REFERENCE, "TestWithNameFailure"), lambda tc: text(tc["input"])))
def test_with_name_failure(tc: dict[str, Any]) -> None:
    with pytest.raises(ref.InvalidReference) as raised:
        ref.with_name(text(tc["input"]))
    assert_go_error(raised.value, tc["err"])


@pytest.mark.parametrize("tc", cases(rows(REFERENCE, "TestDomainAndPath"), lambda tc: tc["input"]))
def test_domain_and_path(tc: dict[str, Any]) -> None:
    named = ref.with_name(tc["input"])
    assert (named.domain, named.path) == (tc["domain"], tc["path"])


@pytest.mark.parametrize("tc", cases(rows(REFERENCE, "TestSerialization"), lambda tc: tc["description"]))
def test_serialization(tc: dict[str, Any]) -> None:
    # Go round-trips a Field through JSON text: Parse on the way in, String() on the way out.
    source = tc.get("input", "")
    if "err" in tc:
        with pytest.raises(ref.InvalidReference) as raised:
            ref.parse(source)
        assert_go_error(raised.value, tc["err"])
        return
    parsed = ref.parse(source)
    assert parsed.name == tc["name"]
    assert parsed.tag == tc.get("tag")
    assert parsed.digest == tc.get("digest")
    assert str(parsed) == source


@pytest.mark.parametrize("tc", cases(rows(REFERENCE, "TestWithTag"), lambda tc: tc["combined"]))
def test_with_tag(tc: dict[str, Any]) -> None:
    named = ref.with_name(tc["name"])
    if "digest" in tc:
        named = named.with_digest(tc["digest"])
    assert str(named.with_tag(tc["tag"])) == tc["combined"]


@pytest.mark.parametrize("tc", cases(rows(REFERENCE, "TestWithDigest"), lambda tc: tc["combined"]))
def test_with_digest(tc: dict[str, Any]) -> None:
    named = ref.with_name(tc["name"])
    if "tag" in tc:
        named = named.with_tag(tc["tag"])
    assert str(named.with_digest(tc["digest"])) == tc["combined"]


@pytest.mark.parametrize("tc", cases(rows(REFERENCE, "TestParseNamed"), lambda tc: tc["input"]))
def test_parse_named(tc: dict[str, Any]) -> None:
    if "err" in tc:
        with pytest.raises(ref.InvalidReference) as raised:
            ref.parse_named(tc["input"])
        assert_go_error(raised.value, tc["err"])
        return
    named = ref.parse_named(tc["input"])
    assert (named.domain, named.path) == (tc["domain"], tc["path"])


# normalize_test.go


def _name_lists(test: str, valid: str, invalid: str) -> list[Any]:
    table = NORMALIZE[test]
    return [pytest.param(name, True, id=f"valid-{name[:60]!r}") for name in table[valid]] + [
        pytest.param(name, False, id=f"invalid-{name[:60]!r}") for name in table[invalid]
    ]


@pytest.mark.parametrize(
    ("name", "valid"),
    _name_lists("TestValidateReferenceName", "validRepoNames", "invalidRepoNames")
    + _name_lists("TestValidateRemoteName", "validRepositoryNames", "invalidRepositoryNames"),
)
def test_validate_names(name: str, valid: bool) -> None:
    if valid:
        ref.parse_normalized(name)
    else:
        with pytest.raises(ref.InvalidReference):
            ref.parse_normalized(name)


def _repository_info() -> list[Any]:
    params = []
    for i, tc in enumerate(rows(NORMALIZE, "TestParseRepositoryInfo")):
        spellings = [tc["FamiliarName"], tc["FullName"]] + ([tc["AmbiguousName"]] if tc["AmbiguousName"] else [])
        params += [pytest.param(tc, spelling, id=f"{i}/{spelling}") for spelling in spellings]
    return params


@pytest.mark.parametrize(("tc", "spelling"), _repository_info())
def test_parse_repository_info(tc: dict[str, Any], spelling: str) -> None:
    named = ref.parse_normalized(spelling)
    assert named.familiar_name == ref.familiar_name(named) == tc["FamiliarName"]
    assert str(named) == tc["FullName"]
    assert named.domain == tc["Domain"]
    assert named.path == tc["RemoteName"]


def test_parse_reference_with_tag_and_digest() -> None:
    short_ref = NORMALIZE["TestParseReferenceWithTagAndDigest"]["shortRef"]
    parsed = ref.parse_normalized(short_ref)
    assert str(parsed) == "docker.io/library/" + short_ref
    assert parsed.has_tag
    assert parsed.has_digest
    assert parsed.familiar == ref.familiar_string(parsed) == short_ref


@pytest.mark.parametrize("tc", rows(NORMALIZE, "TestInvalidReferenceComponents"))
def test_invalid_reference_components(tc: dict[str, Any]) -> None:
    with pytest.raises(ref.InvalidReference):
        ref.parse_normalized(tc["invalidName"])
    named = ref.parse_normalized(tc["name"])
    with pytest.raises(ref.InvalidTagFormat):
        named.with_tag(tc["invalidTag"])
    with pytest.raises(ref.InvalidDigestFormat):
        named.with_digest(tc["invalidDigest"])


@pytest.mark.parametrize("tc", cases(rows(NORMALIZE, "TestParseAnyReference"), lambda tc: tc["Reference"]))
def test_parse_any_reference(tc: dict[str, Any]) -> None:
    parsed = ref.parse_any_reference(tc["Reference"])
    assert str(parsed) == tc["Equivalent"]
    if "Expected" in tc:
        expected = ref.Reference("", "", digest=tc["Expected"]["digestReference"])
        assert not parsed.is_named
    else:
        expected = ref.parse(tc["Equivalent"])
    assert parsed == expected


@pytest.mark.parametrize("tc", cases(rows(NORMALIZE, "TestNormalizedSplitHostname"), lambda tc: tc["input"]))
def test_normalized_split_hostname(tc: dict[str, Any]) -> None:
    named = ref.parse_normalized(tc["input"])
    assert (named.domain, named.path) == (tc["domain"], tc["path"])


@pytest.mark.parametrize("tc", rows(NORMALIZE, "TestMatchError"))
def test_match_error(tc: dict[str, Any]) -> None:
    named = ref.parse_any_reference(tc["reference"])
    with pytest.raises(ref.BadPattern):
        ref.familiar_match(tc["pattern"], named)


@pytest.mark.parametrize("tc", cases(rows(NORMALIZE, "TestMatch"), lambda tc: f"{tc['reference']} ~ {tc['pattern']}"))
def test_match(tc: dict[str, Any]) -> None:
    named = ref.parse_any_reference(tc["reference"])
    assert ref.familiar_match(tc["pattern"], named) is tc["expected"]


@pytest.mark.parametrize("tc", cases(rows(NORMALIZE, "TestParseDockerRef"), lambda tc: tc["name"]))
def test_parse_docker_ref(tc: dict[str, Any]) -> None:
    output = str(ref.parse_docker_ref(tc["input"]))
    assert output == tc["expected"]
    ref.parse(output)


# regexp_test.go


@pytest.mark.parametrize("tc", cases(rows(REGEXP, "TestDomainRegexp", "tests"), lambda tc: tc["input"]))
def test_domain_regexp(tc: dict[str, Any]) -> None:
    assert (DOMAIN_RE.fullmatch(tc["input"]) is not None) is tc["match"]


def _check_regexp(pattern: Any, tc: dict[str, Any]) -> None:
    source = text(tc["input"])
    found = pattern.fullmatch(source)
    assert (found is not None) is tc["match"]
    if found is not None:
        # Go reports an unmatched group as "".
        assert [group or "" for group in found.groups()][: len(tc.get("subs", []))] == [
            text(sub) for sub in tc.get("subs", [])
        ]


def test_regexp_group_counts() -> None:
    assert ANCHORED_NAME_RE.groups == REGEXP["TestFullNameRegexp"]["NumSubexp"]
    assert REFERENCE_RE.groups == REGEXP["TestReferenceRegexp"]["NumSubexp"]


@pytest.mark.parametrize("tc", cases(rows(REGEXP, "TestFullNameRegexp"), lambda tc: text(tc["input"])))
def test_full_name_regexp(tc: dict[str, Any]) -> None:
    _check_regexp(ANCHORED_NAME_RE, tc)


@pytest.mark.parametrize("tc", cases(rows(REGEXP, "TestReferenceRegexp"), lambda tc: tc["input"]))
def test_reference_regexp(tc: dict[str, Any]) -> None:
    _check_regexp(REFERENCE_RE, tc)


@pytest.mark.parametrize("tc", cases(rows(REGEXP, "TestIdentifierRegexp"), lambda tc: tc["input"]))
def test_identifier_regexp(tc: dict[str, Any]) -> None:
    assert (IDENTIFIER_RE.fullmatch(tc["input"]) is not None) is tc["match"]


# Outputs recorded from the Go package itself.

ORACLE_FUNCTIONS: dict[str, Callable[[str], ref.Reference]] = {
    "parse": ref.parse,
    "normalized": ref.parse_normalized,
    "named": ref.parse_named,
    "docker": ref.parse_docker_ref,
    "any": ref.parse_any_reference,
    "with_name": ref.with_name,
}
_SENTINELS = {message: GO_ERRORS[go_error] for go_error, message in REFERENCE["errors"].items()}


def _error_class(message: str) -> type[ref.InvalidReference]:
    if message.startswith("invalid reference format: repository name ("):
        return ref.UppercaseName
    if message.startswith("invalid repository name ("):
        return ref.HexadecimalName
    return _SENTINELS[message]


def _describe(function: Callable[[str], ref.Reference], source: str) -> dict[str, str]:
    """The fields the Go recorder printed: err, or String(), the familiar forms and the parts."""
    try:
        parsed = function(source)
    except ref.InvalidReference as exc:
        failure: ref.InvalidReference | None = exc
    else:
        failure = None
    if failure is not None:
        assert type(failure) is _error_class(str(failure))
        return {"err": str(failure)}
    out = {"str": str(parsed), "fam": ref.familiar_string(parsed)}
    if parsed.is_named:
        out |= {"domain": parsed.domain, "path": parsed.path, "famname": parsed.familiar_name}
    if parsed.tag is not None:
        out["tag"] = parsed.tag
    if parsed.digest is not None:
        out["digest"] = parsed.digest
    return out


@pytest.mark.parametrize("function", ORACLE_FUNCTIONS)
@pytest.mark.parametrize("tc", cases(ORACLE["cases"], lambda tc: tc["input"]))
def test_go_oracle(tc: dict[str, Any], function: str) -> None:
    assert _describe(ORACLE_FUNCTIONS[function], tc["input"]) == tc[function]
