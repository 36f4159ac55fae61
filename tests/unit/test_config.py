from __future__ import annotations

from pathlib import Path

import pytest

from policies.config import DEFAULT_POLICY, DEFAULT_POLICY_YAML, PolicyError, parse_policy
from policies.model import Mode


def test_embedded_default() -> None:
    assert DEFAULT_POLICY.mode is Mode.WARN
    assert DEFAULT_POLICY.failure_policy == "open"
    assert DEFAULT_POLICY.exclude_namespaces == ("kube-system", "pullguard")
    assert DEFAULT_POLICY.checks.reference.mode is Mode.ENFORCE
    assert DEFAULT_POLICY.registry.timeout_seconds == 3
    assert DEFAULT_POLICY.registry.cache.positive_seconds == 300
    assert parse_policy(DEFAULT_POLICY_YAML) == DEFAULT_POLICY
    assert parse_policy("") == parse_policy("{}") == DEFAULT_POLICY


def test_design_example_parses() -> None:
    policy = parse_policy(
        """
mode: warn
failurePolicy: open
excludeNamespaces: [kube-system]
checks:
  reference: {mode: enforce}
  latestTag: {mode: warn}
  imageExists: {}
  pullSecrets: {}
  architecture: {}
  neverPull: {}
mirrors:
  - {registry: docker.io, mirror: mirror.example.com, verify: true}
  - {prefix: k8s.gcr.io, mirror: registry.example.com/google_containers}
registry:
  timeoutSeconds: 3
  hostsDir: /etc/containerd/certs.d
  cache: {positiveSeconds: 300, negativeSeconds: 30}
namespaces:
  team-a: {mode: enforce}
"""
    )
    assert policy.mirrors[1].prefix == "k8s.gcr.io" and policy.mirrors[1].verify is True
    assert policy.registry.hosts_dir == "/etc/containerd/certs.d"
    assert policy.mode_for("latestTag", "team-a") is Mode.ENFORCE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode: block", "mode: Input should be 'enforce', 'warn' or 'off'"),
        ("modes: warn", "modes: unknown key"),
        ("checks: {latestTag: {mode: warn, color: red}}", "checks.latestTag.color: unknown key"),
        ("checks: {lastTag: {}}", "checks.lastTag: unknown key"),
        ("failurePolicy: maybe", "failurePolicy: Input should be 'open' or 'closed'"),
        ("excludeNamespaces: kube-system", "excludeNamespaces: Input should be a valid tuple"),
        ("registry: {timeoutSeconds: '3'}", "registry.timeoutSeconds: Input should be a valid number"),
        ("registry: {timeoutSeconds: 0}", "registry.timeoutSeconds: Input should be greater than 0"),
        ("mirrors: [{mirror: m.example.com}]", "mirrors.0: give exactly one of 'registry' or 'prefix'"),
        ("mirrors: [{registry: docker.io, mirror: 'https://m.example.com'}]", "without scheme"),
        ("mirrors: [{registry: docker.io, mirror: m.example.com, verify: 'yes'}]", "mirrors.0.verify"),
        ("namespaces: {team-a: {mode: loud}}", "namespaces.team-a.mode"),
        ("- a\n- b", "the policy must be a mapping, got list"),
        ("mode: [warn", "line 1: not valid YAML"),
    ],
)
def test_bad_policies_name_the_key(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=r"^my\.yaml: ") as raised:
        parse_policy(text, "my.yaml")
    assert message in str(raised.value)


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy("mode: x\nfailurePolicy: y\n")
    assert "mode:" in str(raised.value) and "failurePolicy:" in str(raised.value)


@pytest.mark.parametrize(
    ("namespace", "check", "expected"),
    [
        ("other", "latestTag", Mode.WARN),  # policy mode
        ("other", "reference", Mode.ENFORCE),  # check mode beats policy mode
        ("team-a", "latestTag", Mode.ENFORCE),  # namespace mode beats check and policy
        ("team-a", "reference", Mode.ENFORCE),
        ("team-b", "reference", Mode.OFF),  # namespace check mode beats everything
        ("team-b", "latestTag", Mode.WARN),  # team-b has no namespace-wide mode
    ],
)
def test_mode_precedence(namespace: str, check: str, expected: Mode) -> None:
    policy = parse_policy(
        """
mode: warn
checks: {reference: {mode: enforce}}
namespaces:
  team-a: {mode: enforce}
  team-b: {checks: {reference: {mode: "off"}}}
"""
    )
    assert policy.mode_for(check, namespace) is expected


def test_unquoted_off_means_off() -> None:
    policy = parse_policy("mode: off\nchecks: {latestTag: {mode: off}}\nnamespaces: {a: {mode: off}}")
    assert policy.mode is Mode.OFF and policy.checks.latest_tag.mode is Mode.OFF
    assert policy.namespaces["a"].mode is Mode.OFF
    with pytest.raises(PolicyError, match="mode"):
        parse_policy("mode: on")


def test_the_readme_policy_block_is_the_embedded_default() -> None:
    """The README documents the default policy; it must say what the code does."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Policy") :]
    block = section[section.index("```yaml") + len("```yaml") : section.index("```", section.index("```yaml") + 7)]
    assert parse_policy(block) == DEFAULT_POLICY


def test_the_policy_has_a_mode_for_every_check_and_nothing_else() -> None:
    """The check list (CheckName, ALL_CHECKS) and the policy's `checks:` table cannot drift apart."""
    from policies.checks import ALL_CHECKS
    from policies.config import NamespaceChecks
    from policies.model import CheckName

    aliases = {info.alias for info in NamespaceChecks.model_fields.values()}
    assert aliases == set(CheckName) == {spec.name for spec in ALL_CHECKS}
    for check in CheckName:
        assert DEFAULT_POLICY.mode_for(check, "any") is not None
