"""`reference`: the image string must parse the way the kubelet parses it, or the pod ends in InvalidImageName."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from policies.checks.spec import CheckSpec, RuleText
from policies.model import CheckName, ContainerImage, Facts, Finding, Mode, Reason

if TYPE_CHECKING:  # the policy schema is built from this module's record (policies.checks.spec)
    from policies.config import Policy

NAME = CheckName.REFERENCE


def check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    if image.reference_error is None:
        return ()
    return (
        Finding(
            check=NAME,
            container=image,
            reason=Reason.INVALID_IMAGE_NAME,
            message=f"{image.label} is not a valid image reference ({image.reference_error})",
            hint=_hint(image.image, image.reference_error),
        ),
    )


def _hint(text: str, error: str) -> str:
    """The usual ways a reference goes wrong, most specific first."""
    if not text.strip():
        return "set the image, e.g. registry.example.com/team/app:1.2.3"
    if "://" in text:
        return "drop the scheme: write host/path:tag, not a URL"
    if any(c.isspace() for c in text):
        return "remove the whitespace from the image"
    if "must be lowercase" in error:
        return "repository names must be lowercase (only the registry host may have capitals)"
    if "@" in text:
        return "a digest is algorithm:hex, e.g. @sha256:<64 hex digits>"
    return "use [registry[:port]/]repository[:tag][@digest] with a lowercase repository"


SPEC = CheckSpec(
    NAME,
    check,
    needs_registry=False,
    rule=RuleText(
        "The image reference is valid",
        "The image string must parse under the reference grammar the kubelet uses (distribution/reference); "
        "an invalid one ends in InvalidImageName and is never pulled.",
        "Fix the image string: a lowercase repository path, a tag of at most 128 characters of [A-Za-z0-9_.-], "
        "a digest written as sha256:<64 hex digits>.",
    ),
    default_mode=Mode.ENFORCE,  # an invalid name can never be pulled
)
