"""The checks, in the order their findings are reported. Each is a pure function of (image, facts, policy).

A new check is one module here (with `NAME` and `check`), one `CheckName` member and one line below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from policies.checks import architecture, image_exists, latest_tag, never_pull, pull_secrets, reference
from policies.config import Policy
from policies.model import CheckName, ContainerImage, Facts, Finding

CheckFunction = Callable[[ContainerImage, Facts, Policy], Sequence[Finding]]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: CheckName
    run: CheckFunction
    needs_registry: bool  # its findings come from registry lookups: the webhook looks images up only for these


ALL_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(reference.NAME, reference.check, needs_registry=False),
    CheckSpec(latest_tag.NAME, latest_tag.check, needs_registry=False),
    CheckSpec(image_exists.NAME, image_exists.check, needs_registry=True),
    CheckSpec(pull_secrets.NAME, pull_secrets.check, needs_registry=True),
    CheckSpec(architecture.NAME, architecture.check, needs_registry=True),
    CheckSpec(never_pull.NAME, never_pull.check, needs_registry=False),
)
