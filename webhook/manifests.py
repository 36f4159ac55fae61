"""Read Kubernetes manifests the way `kubectl apply -f` does: files, directories, stdin; YAML streams, JSON,
and `kind: List`. Errors name the file and line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(ValueError):
    """Input that cannot be read as manifests (exit 2)."""


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    line: int  # 1-based line where the document starts
    body: dict[str, Any]


def read(paths: list[str]) -> Iterator[Document]:
    for raw in paths:
        if raw == "-":
            yield from _documents(sys.stdin.read(), "<stdin>")
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        elif path.is_file():
            files = [path]
        else:
            raise ManifestError(f"{raw}: no such file or directory")
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ManifestError(f"{file}: cannot read: {exc}") from None
            yield from _documents(text, str(file))


def _documents(text: str, source: str) -> Iterator[Document]:
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1
            data = loader.construct_document(node)
            yield from _flatten(data, source, line)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{source}{where}: not valid YAML or JSON: {problem}") from None
    finally:
        loader.dispose()


def _flatten(data: Any, source: str, line: int) -> Iterator[Document]:
    if data is None:
        return  # an empty document between `---` separators
    if not isinstance(data, dict):
        raise ManifestError(f"{source}:{line}: a manifest must be an object, got {type(data).__name__}")
    if data.get("kind") == "List" or (str(data.get("kind", "")).endswith("List") and "items" in data):
        items = data.get("items") or []
        if not isinstance(items, list):
            raise ManifestError(f"{source}:{line}: {data.get('kind')}.items must be a list")
        for item in items:
            yield from _flatten(item, source, line)
        return
    yield Document(source, line, data)
