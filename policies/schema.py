"""The pieces every policy model is built from: the strict base, a mode as YAML writes it, the list bound.

Its own module so that the parts of the policy read below the policy proper (the registry settings a lookup is
asked with, policies/lookup.py; the checks' records) share one base without importing the policy.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

from policies.model import Mode

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
