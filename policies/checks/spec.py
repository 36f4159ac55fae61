"""The record a check declares about itself (`CheckSpec`), and the schema pieces a check's options build on.

Everything about a check has one home, its module: the policy schema (policies/config.py), the embedded default
policy, the SARIF rules and `explain` are built from these records, so none can name a check that has no record.
The records sit below the policy schema (it is built from them): a check sees the `Policy` only as the type of its
third argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

from policies.model import CheckName, ContainerImage, Facts, Finding, Mode

if TYPE_CHECKING:  # the schema is built from the records: a check only receives a Policy
    from policies.config import Policy

CheckFunction = Callable[[ContainerImage, Facts, "Policy"], Sequence[Finding]]

# How many entries a list of the policy may have: each is matched per image or per review, so the work a review
# costs stays bounded whatever policy was accepted (README "Limits").
MAX_PATTERNS = 1000


def _yaml_off(value: Any) -> Any:
    """YAML 1.1 reads an unquoted `off` as false; a mode of false can only mean `off`."""
    return "off" if value is False else value


ModeSetting = Annotated[Mode, BeforeValidator(_yaml_off)]


class Strict(BaseModel):
    """The base of every policy model: unknown keys rejected, camelCase keys, immutable."""

    model_config = ConfigDict(
        # Lax mode so YAML lists fill tuples and strings fill enums; scalars that must not be coerced are Strict*.
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


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

    @property
    def default_yaml(self) -> str:
        """Its entry in the embedded default policy's `checks:` block."""
        return f"{{mode: {self.default_mode}}}" if self.default_mode is not None else "{}"
