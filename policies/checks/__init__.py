"""The checks, in the order their findings are reported. Each is a pure function of (image, facts, policy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from policies.checks import architecture, image_exists, latest_tag, never_pull, pull_secrets, reference
from policies.config import Policy
from policies.model import ContainerImage, Facts, Finding

CheckFunction = Callable[[ContainerImage, Facts, Policy], Sequence[Finding]]

ALL_CHECKS: tuple[tuple[str, CheckFunction], ...] = (
    (reference.NAME, reference.check),
    (latest_tag.NAME, latest_tag.check),
    (image_exists.NAME, image_exists.check),
    (pull_secrets.NAME, pull_secrets.check),
    (architecture.NAME, architecture.check),
    (never_pull.NAME, never_pull.check),
)
