"""`latestTag`: a missing or floating tag means every node may run a different image, and `latest` makes the
kubelet pull on every start (imagePullPolicy defaults to Always), so a registry outage stops restarts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import translate
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from policies.checks.spec import CheckConfig, CheckSpec, RuleText
from policies.model import CheckName, ContainerImage, Facts, Finding, Reason
from policies.schema import MAX_PATTERNS

if TYPE_CHECKING:  # the policy schema is built from this module's record (policies.checks.spec)
    from policies.config import Policy

NAME = CheckName.LATEST_TAG
HINT = "pin a version tag or digest"


class LatestTagConfig(CheckConfig):
    floating_tags: Annotated[tuple[str, ...], Field(max_length=MAX_PATTERNS)] = ("latest",)  # moving tags
    # fnmatch patterns on the repository (normalized or familiar), e.g. docker.io/library/*: matched as one regex
    exempt_images: Annotated[tuple[str, ...], Field(max_length=MAX_PATTERNS)] = ()


def check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    reference = image.reference
    if reference is None or reference.digest is not None:
        return ()  # invalid references are the `reference` check's; a digest pins the content
    config = policy.checks.options_of(NAME)
    assert isinstance(config, LatestTagConfig)  # the schema's entry for this check is SPEC.options
    if config.exempt_images and _exempt(config.exempt_images, reference.name, reference.familiar_name):
        return ()
    if reference.tag is None:
        message = f"{image.label} has no tag (resolves to latest)"
    elif reference.tag in config.floating_tags:
        message = f'{image.label} uses the floating tag "{reference.tag}"'
    else:
        return ()
    return (Finding(check=NAME, container=image, reason=Reason.NOT_REPRODUCIBLE, message=message, hint=HINT),)


def _exempt(patterns: tuple[str, ...], name: str, familiar: str) -> bool:
    matcher = _matcher(patterns)
    return matcher.match(name) is not None or matcher.match(familiar) is not None


@lru_cache(maxsize=8)  # one per policy in force (a policy's tuple is its key); compiled once, not per pattern
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """fnmatchcase of any pattern, as one regex: fnmatch's own cache holds 32,768 patterns and a larger policy
    would compile them again on every review."""
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns))


SPEC = CheckSpec(
    NAME,
    check,
    needs_registry=False,
    rule=RuleText(
        "The image tag is pinned",
        "A floating tag (latest, or no tag at all) may resolve to different images on different nodes, and "
        "makes every container restart pull again.",
        "Pin a version tag or a digest (image: nginx:1.27.2 or image: nginx@sha256:...).",
    ),
    options=LatestTagConfig,
    explains_pull_failures=False,  # a floating tag is worth fixing, but it is not why a pull fails
)
