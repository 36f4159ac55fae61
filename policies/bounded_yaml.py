"""YAML whose cost is bounded before anything is built from it: size, nodes once every alias is expanded, depth.

PyYAML keeps an alias as a reference to its anchor's node, so composing is linear in the text; walking what the
aliases expand to (as validating a policy does) can be exponential ("billion laughs"). The expanded size and height
are computed once per distinct node, and a recursive alias is refused, before the document is constructed from the
same composed nodes (parsed once).
"""

from __future__ import annotations

from typing import Any

import yaml


class TooMuchYAML(ValueError):
    """The document is over a bound; the message, a predicate ("nests deeper than 32 levels"), says which."""


def load_bounded(text: str, *, max_chars: int, max_nodes: int, max_depth: int) -> Any:
    """`yaml.safe_load(text)`, refusing with TooMuchYAML what is over a bound. Raises yaml.YAMLError as usual."""
    if len(text) > max_chars:
        raise TooMuchYAML(f"is {len(text)} characters, over the {max_chars} limit")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _within_bounds(node, max_nodes, max_depth)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _within_bounds(root: yaml.Node, max_nodes: int, max_depth: int) -> None:
    """The node count and height with every alias expanded, each computed once per distinct node (an alias is the
    same node object): linear in the text, whatever it expands to. Iterative: no recursion on a deep document."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered, children not done: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in size:
            continue
        children = _children(node)
        if not children_done:
            if key in open_nodes:
                raise TooMuchYAML("refers to itself (a recursive YAML alias)")
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        open_nodes.discard(key)
        size[key] = 1 + sum(size[id(c)] for c in children)
        height[key] = 1 + max((height[id(c)] for c in children), default=0)
        if size[key] > max_nodes:
            raise TooMuchYAML(f"expands to over {max_nodes} YAML nodes (aliases counted out)")
        if height[key] > max_depth:
            raise TooMuchYAML(f"nests deeper than {max_depth} levels")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
