"""The checks, in the order their findings are reported. Each is a pure function of (image, facts, policy).

A new check is one module here declaring its record (`SPEC = CheckSpec(...)`, see spec.py), one `CheckName` member
(the one list of names, in policies.model) and one line below. The policy schema, the default policy, the SARIF
rules and `explain` read everything else from the record.
"""

from __future__ import annotations

from policies.checks import architecture, image_exists, latest_tag, never_pull, pull_secrets, reference
from policies.checks.spec import CheckFunction, CheckSpec

__all__ = ["ALL_CHECKS", "CheckFunction", "CheckSpec"]

ALL_CHECKS: tuple[CheckSpec, ...] = (
    reference.SPEC,
    latest_tag.SPEC,
    image_exists.SPEC,
    pull_secrets.SPEC,
    architecture.SPEC,
    never_pull.SPEC,
)
