from __future__ import annotations

import pytest

from policies.checks import latest_tag, reference
from policies.config import DEFAULT_POLICY, parse_policy
from policies.model import Facts, Reason
from tests.unit.policy_helpers import image


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", 'container "app" image "nginx" has no tag (resolves to latest)'),
        ("nginx:latest", 'container "app" image "nginx:latest" uses the floating tag "latest"'),
        ("registry.example.com:5000/team/app", 'image "registry.example.com:5000/team/app" has no tag'),
        ("nginx:1.25", None),
        ("nginx@sha256:" + "a" * 64, None),
        ("nginx:latest@sha256:" + "a" * 64, None),  # the digest pins it, whatever the tag says
        ("Not Valid", None),  # the reference check's business
    ],
)
def test_latest_tag(text: str, expected: str | None) -> None:
    findings = latest_tag.check(image(text), Facts(), DEFAULT_POLICY)
    if expected is None:
        assert findings == ()
    else:
        (finding,) = findings
        assert expected in finding.message
        assert finding.hint == "pin a version tag or digest"
        assert finding.reason is Reason.NOT_REPRODUCIBLE


def test_latest_tag_configurable_tags_and_exemptions() -> None:
    policy = parse_policy("checks: {latestTag: {floatingTags: [latest, main], exemptImages: ['docker.io/library/*']}}")
    assert latest_tag.check(image("registry.example.com/a:main"), Facts(), policy)
    assert latest_tag.check(image("nginx"), Facts(), policy) == ()
    assert latest_tag.check(image("library/nginx:latest"), Facts(), policy) == ()
    assert latest_tag.check(image("example/app:latest"), Facts(), policy)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "set the image"),
        ("https://registry.example.com/app:1", "drop the scheme"),
        ("nginx :1", "remove the whitespace"),
        ("registry.example.com/Team/app:1", "must be lowercase"),
        ("MyApp:1", "must be lowercase"),
        ("nginx@md5:abc", "a digest is algorithm:hex"),
        ("nginx:-bad", "use [registry[:port]/]repository"),
    ],
)
def test_invalid_references(text: str, hint: str) -> None:
    (finding,) = reference.check(image(text), Facts(), DEFAULT_POLICY)
    assert finding.reason is Reason.INVALID_IMAGE_NAME
    assert hint in finding.hint
    assert f'image "{text}" is not a valid image reference (' in finding.message


def test_valid_references_pass() -> None:
    for text in ("nginx", "Registry.Example.com:5000/team/app:1.0", "[::1]:5000/a/b@sha256:" + "0" * 64):
        assert reference.check(image(text), Facts(), DEFAULT_POLICY) == ()
