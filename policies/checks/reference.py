"""`reference`: the image string must parse the way the kubelet parses it, or the pod ends in InvalidImageName."""

from __future__ import annotations

from collections.abc import Sequence

from policies.config import Policy
from policies.model import CheckName, ContainerImage, Facts, Finding, Reason

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
