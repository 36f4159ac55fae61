"""One record per check: the policy schema, the default policy, the SARIF rules, `explain` and the README are
all built from (or held to) the records of ALL_CHECKS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from policies.checks import ALL_CHECKS, CheckSpec
from policies.config import (
    CHECK_RECORDS,
    DEFAULT_EXCLUDED_NAMESPACES,
    DEFAULT_POLICY,
    DEFAULT_POLICY_YAML,
    Checks,
    NamespaceChecks,
    PolicyError,
    parse_policy,
)
from policies.mirrors import CHECK, Outcome
from policies.model import CheckName, MirrorCheck, Mode
from webhook.explain import verdict
from webhook.formats import sarif

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_check_name_has_exactly_one_record_in_report_order() -> None:
    names = [spec.name for spec in ALL_CHECKS]
    assert names == list(CheckName)  # the enum's order is the report order: one list, no check without a record
    assert dict(CHECK_RECORDS) == {spec.name: spec for spec in ALL_CHECKS}


@pytest.mark.parametrize("spec", ALL_CHECKS, ids=lambda s: s.name)
def test_the_schema_is_built_from_the_record(spec: CheckSpec) -> None:
    for model in (Checks, NamespaceChecks):
        assert [f.alias for f in model.model_fields.values()] == [s.name for s in ALL_CHECKS]
        assert model.model_config.get("extra") == "forbid"
    policy_wide = DEFAULT_POLICY.checks.options_of(spec.name)
    assert type(policy_wide) is spec.options and policy_wide.mode == spec.default_mode
    assert DEFAULT_POLICY.check_mode(spec.name) is (spec.default_mode or DEFAULT_POLICY.mode)
    assert f"\n  {spec.name}: {spec.default_yaml}\n" in DEFAULT_POLICY_YAML
    namespaced = parse_policy(f"namespaces: {{a: {{checks: {{{spec.name}: {{mode: off}}}}}}}}")
    assert namespaced.mode_for(spec.name, "a") is Mode.OFF and namespaced.mode_for(spec.name, "b") is not Mode.OFF


def test_only_a_check_with_options_takes_them_and_only_policy_wide() -> None:
    assert parse_policy("checks: {latestTag: {floatingTags: [dev]}}").checks.options_of(CheckName.LATEST_TAG)
    with pytest.raises(PolicyError, match=r"checks\.imageExists\.floatingTags: unknown key"):
        parse_policy("checks: {imageExists: {floatingTags: [dev]}}")
    with pytest.raises(PolicyError, match=r"namespaces\.a\.checks\.latestTag\.floatingTags: unknown key"):
        parse_policy("namespaces: {a: {checks: {latestTag: {floatingTags: [dev]}}}}")
    with pytest.raises(PolicyError, match=r"checks\.mirror: unknown key"):
        parse_policy("checks: {mirror: {}}")  # the mutating side's findings are not a configurable check


@pytest.mark.parametrize("spec", ALL_CHECKS, ids=lambda s: s.name)
def test_sarif_rules_come_from_the_records_with_the_default_mode_as_level(spec: CheckSpec) -> None:
    rule = sarif._rule(spec, DEFAULT_POLICY)
    assert (rule["id"], rule["shortDescription"]["text"], rule["help"]["text"]) == (
        spec.name,
        spec.rule.short,
        spec.rule.help,
    )
    assert rule["fullDescription"]["text"] == spec.rule.full and spec.rule.short != spec.name
    enforced = DEFAULT_POLICY.check_mode(spec.name) is Mode.ENFORCE
    assert rule["defaultConfiguration"]["level"] == ("error" if enforced else "warning")


def test_the_reference_rule_is_an_error_because_the_default_policy_enforces_it() -> None:
    assert sarif._rule(CHECK_RECORDS[CheckName.REFERENCE], DEFAULT_POLICY)["defaultConfiguration"]["level"] == "error"
    latest = CHECK_RECORDS[CheckName.LATEST_TAG]
    assert sarif._rule(latest, DEFAULT_POLICY)["defaultConfiguration"]["level"] == "warning"


def test_sarif_rule_levels_follow_the_runs_policy() -> None:
    """A policy that enforces latestTag and only warns on reference: the rules say so, not the default policy."""
    policy = parse_policy("checks: {latestTag: {mode: enforce}, reference: {mode: warn}}")
    assert sarif._rule(CHECK_RECORDS[CheckName.LATEST_TAG], policy)["defaultConfiguration"]["level"] == "error"
    assert sarif._rule(CHECK_RECORDS[CheckName.REFERENCE], policy)["defaultConfiguration"]["level"] == "warning"


def test_explain_ignores_exactly_the_checks_whose_records_say_they_never_fail_a_pull() -> None:
    irrelevant = {spec.name for spec in ALL_CHECKS if not spec.explains_pull_failures}
    assert irrelevant == verdict._IRRELEVANT_CHECKS == {CheckName.LATEST_TAG}


def test_the_readme_checks_table_lists_exactly_the_checks_in_order() -> None:
    table = README[README.index("| check | default mode |") :].split("\n\n", 1)[0]
    listed = re.findall(r"^\| `([A-Za-z]+)` \|", table, flags=re.MULTILINE)
    assert listed == [spec.name for spec in ALL_CHECKS]
    header = [cell.strip() for cell in table.splitlines()[0].strip("|").split("|")]
    column = header.index("default mode")
    for line, spec in zip(table.splitlines()[2:], ALL_CHECKS, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[column].strip("`") == DEFAULT_POLICY.check_mode(spec.name)


def test_the_readme_policy_block_gives_each_check_its_default_mode() -> None:
    section = README[README.index("## Policy") :]
    block = section[section.index("```yaml") + len("```yaml") : section.index("```", section.index("```yaml") + 7)]
    documented = parse_policy(block)
    for spec in ALL_CHECKS:
        assert documented.check_mode(spec.name) is DEFAULT_POLICY.check_mode(spec.name), spec.name


def test_the_excluded_namespaces_are_written_once() -> None:
    assert DEFAULT_POLICY.exclude_namespaces == DEFAULT_EXCLUDED_NAMESPACES == ("kube-system", "pullguard")
    assert "excludeNamespaces: [kube-system, pullguard]" in DEFAULT_POLICY_YAML
    assert parse_policy(DEFAULT_POLICY_YAML) == DEFAULT_POLICY


def test_mirror_outcomes_are_one_enum_with_the_wire_strings() -> None:
    assert {o.value for o in Outcome} == {
        "rewritten",
        "optedOut",
        "invalidName",
        "mirrorMissing",
        "mirrorDenied",
        "mirrorFailed",
        "mirrorUnknown",
        "mirrorDiffers",
        "privateSource",
        "namespaceUnknown",
        "patchFailed",
    }
    assert Outcome("patchFailed") is Outcome.PATCH_FAILED and Outcome.PATCH_FAILED == "patchFailed"
    assert CHECK is MirrorCheck.MIRROR and f"{CHECK}" == "mirror"
    assert CHECK not in set(CheckName)
