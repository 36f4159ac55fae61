"""Read Kubernetes manifests the way `kubectl apply -f` does: files, directories, stdin; YAML streams, JSON,
and `kind: List`.

Nothing stops the whole read: a file that cannot be read or parsed is recorded as `Unreadable` (with the line
where known) and the other files are still read. Each document keeps where its image fields are written, so a
finding can point at the line of its `image:`; JSON is read by the same loader (JSON is YAML), so it gets lines
too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = (".yaml", ".yml", ".json")
# The safe loaders only build plain data: a tag such as !!python/name is an error, never code that runs.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
STDIN = "<stdin>"


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    line: int  # 1-based line where the document (or the `kind: List` item) starts
    body: dict[str, Any]
    # 1-based (line, column) of each `image:` / `reference:` key and container or volume entry, by JSON pointer
    positions: Mapping[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)

    def position(self, pointer: str) -> tuple[int, int]:
        """Where the field a pointer names is written (its key: the `image:` itself), else its closest recorded
        parent (an `image` left out points at its container), else the document's start."""
        while pointer:
            found = self.positions.get(pointer)
            if found is not None:
                return found
            pointer = pointer.rpartition("/")[0]
        return self.line, 1


_KEYS = frozenset({"image", "reference"})
_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers", "volumes"})


def _positions(root: yaml.Node) -> dict[str, tuple[int, int]]:
    """A few marks are kept, not the node tree: holding every node (and its two marks) made the garbage
    collector rescan them over and over, tripling the time to read a 2,000-document file."""
    found: dict[str, tuple[int, int]] = {}
    seen: set[int] = set()  # anchors and aliases share nodes, and may even form a cycle
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, pointer = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, str]] = []
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                name = str(key.value).replace("~", "~0").replace("/", "~1")
                if name in _KEYS:
                    found[f"{pointer}/{name}"] = (key.start_mark.line + 1, key.start_mark.column + 1)
                if isinstance(value, yaml.ScalarNode):
                    continue
                if name in _LISTS and isinstance(value, yaml.SequenceNode):
                    for index, item in enumerate(value.value):
                        found[f"{pointer}/{name}/{index}"] = (item.start_mark.line + 1, item.start_mark.column + 1)
                children.append((value, f"{pointer}/{name}"))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, f"{pointer}/{index}") for index, item in enumerate(node.value)]
        stack.extend(reversed(children))  # in document order, so a shared node is found where it is written
    return found


@dataclass(frozen=True, slots=True)
class Unreadable:
    source: str
    line: int | None  # None: the file as a whole (missing, not UTF-8)
    reason: str


@dataclass(slots=True)
class Manifests:
    files: list[str] = field(default_factory=list)  # every file read or tried (stdin included)
    documents: list[Document] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    ignored: int = 0  # files in the given directories without a manifest suffix
    excluded: int = 0  # files in the given directories matched by an exclude pattern


def excluded_by(path: Path, patterns: Sequence[str]) -> bool:
    """`--exclude` patterns (fnmatch) match the path as given or any one of its parts: `*/templates/*`,
    `templates`, `*.tpl.yaml`."""
    text = path.as_posix()
    return any(fnmatch(text, pattern) or any(fnmatch(part, pattern) for part in path.parts) for pattern in patterns)


def read(paths: list[str], exclude: Sequence[str] = ()) -> Manifests:
    """Files named are read whatever `exclude` says; it only filters what a directory holds."""
    found = Manifests()
    for raw in paths:
        if raw == "-":
            _read_text(sys.stdin.read(), STDIN, found)
            continue
        path = Path(raw)
        if path.is_dir():
            entries = sorted(p for p in path.rglob("*") if p.is_file())
            kept = [p for p in entries if not excluded_by(p, exclude)]
            found.excluded += len(entries) - len(kept)
            files = [p for p in kept if p.suffix in SUFFIXES]
            found.ignored += len(kept) - len(files)
        elif path.is_file():
            files = [path]
        else:
            found.unreadable.append(Unreadable(raw, None, "no such file or directory"))
            continue
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                found.files.append(str(file))
                found.unreadable.append(Unreadable(str(file), None, f"cannot read: {exc}"))
                continue
            _read_text(text, str(file), found)
    return found


def _read_text(text: str, source: str, into: Manifests) -> None:
    """All of a file or none of it: a stream that breaks halfway is not applied halfway by kubectl either."""
    into.files.append(source)
    documents: list[Document] = []
    problems: list[Unreadable] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            for item, item_node in _flatten(loader.construct_document(node), node, source, problems):
                line = item_node.start_mark.line + 1
                documents.append(Document(source, line, item, _positions(item_node)))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        template = " (it looks like an unrendered template: render it first, e.g. helm template)"
        template = template if "{{" in text else ""
        line = mark.line + 1 if mark is not None else None
        into.unreadable.append(Unreadable(source, line, f"not valid YAML or JSON: {problem}{template}"))
        return
    finally:
        loader.dispose()
    into.documents += documents
    into.unreadable += problems


def _flatten(data: Any, node: yaml.Node, source: str, problems: list[Unreadable]) -> Iterator[tuple[Any, yaml.Node]]:
    line = node.start_mark.line + 1
    if data is None:
        return  # an empty document between `---` separators
    if not isinstance(data, dict):
        problems.append(Unreadable(source, line, f"a manifest must be an object, got {type(data).__name__}"))
        return
    kind = data.get("kind")
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and "items" in data):
        items = data.get("items") or []
        nodes = _items(node)
        if not isinstance(items, list) or nodes is None:
            if items:
                problems.append(Unreadable(source, line, f"{kind}.items must be a list"))
            return
        for item, item_node in zip(items, nodes, strict=True):
            yield from _flatten(item, item_node, source, problems)
        return
    yield data, node


def _items(node: yaml.Node) -> list[yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "items" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return None
