"""The record a check declares about itself (`CheckSpec`); its options build on policies/schema.py.

Everything about a check has one home, its module: the policy schema (policies/config.py), the embedded default
policy, the SARIF rules and `explain` are built from these records, so none can name a check that has no record.
The records sit below the policy schema (it is built from them): a check sees the `Policy` only as the type of its
third argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from policies.model import CheckName, ContainerImage, Facts, Finding, Gap, Mode
from policies.schema import ModeSetting, Strict

if TYPE_CHECKING:  # the schema is built from the records: a check only receives a Policy
    from policies.config import Policy

CheckFunction = Callable[[ContainerImage, Facts, "Policy"], Sequence[Finding]]
# Rewords a check's findings across a workload's images (same findings, same order): a fix that must be one
# command for several images (one pull secret for several registries) is only known from all of them.
RewordFunction = Callable[[Sequence[Finding]], Sequence[Finding]]
# What the check could not see for an image (None: it ran on everything it needs).
BlindFunction = Callable[[ContainerImage, Facts], Gap | None]


def sees_all(image: ContainerImage, facts: Facts) -> Gap | None:
    """A check of the image string alone always runs."""
    return None


class CheckConfig(Strict):
    """A check's entry under `checks:`; a check with options of its own declares a subclass in its module."""

    mode: ModeSetting | None = None  # None: inherit the namespace's or the policy's mode


@dataclass(frozen=True, slots=True)
class RuleText:
    """How SARIF describes the check (tool.driver.rules): what it predicts, from what, and how to fix it."""

    short: str
    full: str
    help: str


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: CheckName
    run: CheckFunction
    needs_registry: bool  # its findings come from registry lookups: the webhook looks images up only for these
    rule: RuleText
    default_mode: Mode | None = None  # None: the policy's own `mode` (warn in the default policy)
    options: type[CheckConfig] = CheckConfig  # its entry under `checks:` (a subclass when it has options)
    explains_pull_failures: bool = True  # False: worth fixing, but never why a pull failed (`explain` skips it)
    blind: BlindFunction = sees_all  # when it could not run: said so in every output, never a pass
    reword: RewordFunction | None = None  # its findings worded across the workload's images (None: each alone)

    @property
    def default_yaml(self) -> str:
        """Its entry in the embedded default policy's `checks:` block."""
        return f"{{mode: {self.default_mode}}}" if self.default_mode is not None else "{}"
