"""`latestTag`: a missing or floating tag means every node may run a different image, and `latest` makes the
kubelet pull on every start (imagePullPolicy defaults to Always), so a registry outage stops restarts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import translate
from functools import lru_cache

from policies.config import Policy
from policies.model import CheckName, ContainerImage, Facts, Finding, Reason

NAME = CheckName.LATEST_TAG
HINT = "pin a version tag or digest"


def check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    reference = image.reference
    if reference is None or reference.digest is not None:
        return ()  # invalid references are the `reference` check's; a digest pins the content
    config = policy.checks.latest_tag
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
