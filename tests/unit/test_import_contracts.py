"""The import contracts name modules one by one where import-linter needs them to: a module added later must not
slip past them."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _contract(start: str) -> dict[str, object]:
    return next(c for c in CONTRACTS if c["name"].startswith(start))


def _core_modules() -> set[str]:
    policies = REPO / "policies"
    found = {f"policies.{p.stem}" for p in policies.glob("*.py") if p.stem != "__init__"}
    return found | {f"policies.{p.name}" for p in policies.iterdir() if (p / "__init__.py").exists()}


def test_the_image_library_is_forbidden_every_other_module_of_the_core() -> None:
    forbidden = set(_contract("the image library is pure and imports nothing else of the core")["forbidden_modules"])
    assert _core_modules() - {"policies.image"} <= forbidden


def test_the_layers_name_every_package_of_the_service() -> None:
    layers = _contract(
        "the service's layers: commands over the review over facts over the registry and cluster clients"
    )
    named = {name.strip() for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    webhook = REPO / "webhook"
    packages = {p.name for p in webhook.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in webhook.glob("*.py") if p.stem != "__init__"}
    assert packages | modules == named
