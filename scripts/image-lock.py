"""requirements.lock: the exact versions, from this venv, of what `pip install .` needs at run time.

Walks pullguard's declared dependencies (extras included, markers evaluated for the image: Linux, CPython 3.11)
through the installed distributions' metadata, so dev tools never enter the image.

    .venv/bin/python scripts/image-lock.py           rewrite requirements.lock from the venv
    .venv/bin/python scripts/image-lock.py --check   exit 1 when a dependency is missing from the lock or no longer
                                                     needed (version drift in the venv is only reported: the lock
                                                     is what the image installs)
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
HEADER = "# Runtime dependencies of pullguard, pinned (scripts/image-lock.py writes this from the dev venv).\n"
# the image runs Linux/CPython 3.11 whatever the host is
ENV: dict[str, str] = {key: str(value) for key, value in default_environment().items()}
ENV.update(sys_platform="linux", platform_system="Linux", os_name="posix", python_version="3.11")
ENV.update(platform_python_implementation="CPython", implementation_name="cpython")


def _wanted(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**ENV, "extra": extra}) for extra in extras or {""})


def resolved() -> dict[str, str]:
    """Canonical name -> installed version for everything pullguard needs at run time."""
    pins: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [("pullguard", set())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), frozenset(extras))
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(name)
        if key[0] != "pullguard":
            pins[key[0]] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            if _wanted(requirement, extras):
                todo.append((requirement.name, set(requirement.extras)))
    return pins


def locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def main() -> int:
    pins = resolved()
    if sys.argv[1:] == ["--check"]:
        lock = locked() if LOCK.exists() else {}
        missing, extra = sorted(pins.keys() - lock.keys()), sorted(lock.keys() - pins.keys())
        drift = sorted(name for name in pins.keys() & lock.keys() if pins[name] != lock[name])
        if drift:
            print(f"image-lock: the venv differs from {LOCK.name} (the image uses the lock): "
                  + ", ".join(f"{name} {lock[name]} -> {pins[name]}" for name in drift), file=sys.stderr)  # fmt: skip
        if missing or extra:
            print(f"image-lock: {LOCK.name} is stale (missing: {missing}, no longer needed: {extra}); "
                  "run .venv/bin/python scripts/image-lock.py", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    LOCK.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    print(f"{LOCK}: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
