"""Does a JSON patch apply to the object it was made for? A patch that does not fails the whole request at the
API server, so pullguard checks each one before sending it.

pullguard emits only `test`, `replace` and `add`. The usual patch (a `test` and a `replace` per rewritten image,
one `add` of an annotation) touches paths that do not overlap and adds no list element, so it is checked in place,
reading the object without changing it. Any other patch is applied, in order, to a copy of the object made only
along the patched paths, by RFC 6902. jsonpatch (85 us of a 250 us mutating review) stays the independent oracle
in the tests.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_OPERATIONS = ("test", "replace", "add")


def patch_problem(document: dict[str, Any], operations: list[dict[str, Any]]) -> str | None:
    """The first operation that would fail, described; None when the whole patch applies. `document` is not
    changed."""
    written = _Writes()
    nodes: dict[str, Any] = {"": document}  # each prefix resolved once: the containers share most of theirs
    tested = None  # the previous operation's path when it was a `test` that held
    for operation in operations:
        op, path, value = operation["op"], operation["path"], operation["value"]
        if op == "replace" and path == tested:  # the member is there: the test just compared it
            written.add(path)
            tested = None
            continue
        if written.touch(path):
            return _apply(_copied_along(document, operations), operations)  # reads what an earlier one wrote
        if op not in _OPERATIONS:
            return f"{op} {path}: not an operation pullguard emits"
        cut = path.rfind("/")
        if not path.startswith("/"):
            return f"{op} {path}: not a pointer to a member"
        parent = _node_at(path[:cut], nodes)
        if parent is _MISSING:
            return f"{op} {path}: no such path"
        last = _unescape(path[cut + 1 :])
        if isinstance(parent, dict):
            if op != "add" and last not in parent:
                return f"{op} {path}: no such member"
            if op == "test" and parent[last] != value:
                return f"test {path}: the value differs"
        elif isinstance(parent, list) and op != "add":
            if not (last.isdecimal() and int(last) < len(parent)):
                return f"{op} {path}: no such member"
            if op == "test" and parent[int(last)] != value:
                return f"test {path}: the value differs"
        elif isinstance(parent, list):
            return _apply(_copied_along(document, operations), operations)  # an insert shifts later indices
        else:
            return f"{op} {path}: no such member"
        if op != "test":
            written.add(path)
        tested = path if op == "test" else None
    return None


class _Writes:
    """The paths earlier operations wrote, and whether a path is one of them, above or below one. A short list is
    scanned (the usual patch: a few images); past LINEAR writes, sets answer in time independent of their number,
    so a patch for a thousand containers is not checked in quadratic time."""

    LINEAR = 16

    def __init__(self) -> None:
        self._paths: list[str] = []
        self._exact: set[str] | None = None
        self._above: set[str] = set()  # every path above a written one

    def add(self, path: str) -> None:
        self._paths.append(path)
        if self._exact is not None:
            self._index(path)
        elif len(self._paths) > self.LINEAR:
            self._exact = set()
            for written in self._paths:
                self._index(written)

    def _index(self, path: str) -> None:
        assert self._exact is not None
        self._exact.add(path)
        cut = path.rfind("/")
        while cut > 0:
            self._above.add(path[:cut])
            cut = path.rfind("/", 0, cut)

    def touch(self, path: str) -> bool:
        if self._exact is None:
            for w in self._paths:  # noqa: SIM110 - a plain loop: any() with a generator is slower here
                if path == w or path.startswith(w + "/") or w.startswith(path + "/"):
                    return True
            return False
        if path in self._above:
            return True
        while path:  # the path itself, or a path above it
            if path in self._exact:
                return True
            path = path[: path.rfind("/")]
        return False


def _node_at(pointer: str, nodes: dict[str, Any]) -> Any:
    """The node at `pointer` (a prefix of an operation's path), through `nodes`, which holds the root at ""."""
    found = nodes.get(pointer, _UNSEEN)
    if found is _UNSEEN:
        cut = pointer.rfind("/")
        parent = _node_at(pointer[:cut], nodes)
        token = _unescape(pointer[cut + 1 :])
        found = nodes[pointer] = _MISSING if parent is _MISSING else _child(parent, token)
    return found


_UNSEEN = object()


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~") if "~" in token else token


def _apply(document: dict[str, Any], operations: list[dict[str, Any]]) -> str | None:
    """Apply `test`/`replace`/`add` operations in place (RFC 6902); the first that fails, described, or None."""
    for operation in operations:
        op, path, value = operation["op"], operation["path"], operation["value"]
        if op not in ("test", "replace", "add"):
            return f"{op} {path}: not an operation pullguard emits"
        tokens = _tokens(path)
        if tokens is None or not tokens:
            return f"{op} {path}: not a pointer to a member"
        parent: Any = document
        for token in tokens[:-1]:
            parent = _child(parent, token)
            if parent is _MISSING:
                return f"{op} {path}: no such path"
        last = tokens[-1]
        if isinstance(parent, dict):
            if op in ("test", "replace") and last not in parent:
                return f"{op} {path}: no such member"
            if op == "test" and parent[last] != value:
                return f"test {path}: the value differs"
            if op in ("replace", "add"):
                parent[last] = value
        elif isinstance(parent, list) and last.isdecimal() and int(last) < len(parent) + (op == "add"):
            index = int(last)
            if op == "test" and parent[index] != value:
                return f"test {path}: the value differs"
            if op == "replace":
                parent[index] = value
            elif op == "add":
                parent.insert(index, value)
        elif isinstance(parent, list) and last == "-" and op == "add":
            parent.append(value)
        else:
            return f"{op} {path}: no such member"
    return None


_MISSING = object()


@lru_cache(maxsize=4096)  # the same few pointers in every review
def _tokens(pointer: str) -> tuple[str, ...] | None:
    if not pointer.startswith("/"):
        return None
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token, _MISSING)
    if isinstance(node, list) and token.isdecimal() and int(token) < len(node):
        return node[int(token)]
    return _MISSING


def _copied_along(document: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of `document` that shares everything but the objects and lists on the operations' paths."""
    root = dict(document)
    copies = {id(root)}
    for operation in operations:
        node: Any = root
        for token in (_tokens(operation["path"]) or ())[:-1]:
            if isinstance(node, dict) and token in node:
                key: str | int = token
            elif isinstance(node, list) and token.isdecimal() and int(token) < len(node):
                key = int(token)
            else:
                break  # jsonpatch reports it
            child = node[key]
            if not isinstance(child, dict | list):
                break
            if id(child) not in copies:
                child = dict(child) if isinstance(child, dict) else list(child)
                copies.add(id(child))
                node[key] = child
            node = child
    return root
