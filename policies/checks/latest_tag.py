"""`latestTag`: a missing or floating tag means every node may run a different image, and `latest` makes the
kubelet pull on every start (imagePullPolicy defaults to Always), so a registry outage stops restarts."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from policies.config import Policy
from policies.model import CheckName, ContainerImage, Facts, Finding, Reason

NAME = CheckName.LATEST_TAG
HINT = "pin a version tag or digest"


def check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    reference = image.reference
    if reference is None or reference.digest is not None:
        return ()  # invalid references are the `reference` check's; a digest pins the content
    config = policy.checks.latest_tag
    if any(fnmatchcase(reference.name, p) or fnmatchcase(reference.familiar_name, p) for p in config.exempt_images):
        return ()
    if reference.tag is None:
        message = f"{image.label} has no tag (resolves to latest)"
    elif reference.tag in config.floating_tags:
        message = f'{image.label} uses the floating tag "{reference.tag}"'
    else:
        return ()
    return (Finding(check=NAME, container=image, reason=Reason.NOT_REPRODUCIBLE, message=message, hint=HINT),)
