"""Strict decoding and encoding the way Kubernetes' own codecs do it, for small typed documents.

Kubernetes (Apache-2.0) decodes kubelet files and plugin responses with
k8s.io/apimachinery/pkg/runtime/serializer/json (serializer.EnableStrict): JSON when the text starts with
'{' (utilyaml.IsJSONBuffer), else YAML converted to JSON (sigs.k8s.io/yaml), then sigs.k8s.io/json's
UnmarshalStrict: field names match case-sensitively, unknown and duplicate fields (map keys too) are
errors, `null` leaves a field at its zero value, and a value of the wrong JSON type fails the decode.
It encodes with encoding/json's Encoder (HTML-safe escaping, a trailing newline).

Error texts name a field path and a JSON type, never a value: some of these documents hold credentials.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NoReturn

import yaml

from policies.image.text import clip

__all__ = ["DecodeError", "Obj", "fields", "go_json_string", "kind_of", "load_document", "string", "strings"]


class DecodeError(ValueError):
    """The document does not decode; the text names where, never what was there."""


class Obj(list[tuple[str, object]]):
    """A JSON or YAML mapping as its (key, value) pairs in document order, duplicates kept."""


def kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Obj):
        return "object"
    return "array" if isinstance(value, list) else "non-JSON value"


def _raise(where: str, problem: str) -> NoReturn:
    raise DecodeError(f"{where}: {problem}" if where else problem)


def fields(value: object, where: str, known: tuple[str, ...], *, echo: bool = True) -> dict[str, object]:
    """An object's fields by exact name; null is an empty object. Unknown or repeated fields fail, as strict
    decoding does. An unknown field's name is echoed (clipped) only when `echo`: in a file an operator wrote it
    helps, in a plugin's answer it might be anything."""
    if value is None:
        return {}
    if not isinstance(value, Obj):
        _raise(where, f"expected an object, got {kind_of(value)}")
    found: dict[str, object] = {}
    for key, item in value:
        if key not in known:
            _raise(where, f"unknown field {clip(key, 100)!r}" if echo else "unknown field")
        if key in found:
            _raise(where, f"duplicate field {key!r}")
        found[key] = item
    return found


def string(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        _raise(where, f"expected a string, got {kind_of(value)}")
    return value


def strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        _raise(where, f"expected an array, got {kind_of(value)}")
    return tuple(string(item, f"{where}[{i}]") for i, item in enumerate(value))


# --- reading ------------------------------------------------------------------------------------


# go-yaml v2's resolve() for plain scalars (go.yaml.in/yaml/v2 resolve.go), as YAMLToJSON then sees them: its
# YAML 1.1 booleans include y/n, timestamps stay strings ("for backward compatibility" when decoding into
# interface{}), "1:20" is no number. PyYAML's own resolvers differ on all three.
_GO_TRUE: Final = frozenset(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"))
_GO_FALSE: Final = frozenset(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"))
_GO_NULL: Final = frozenset(("", "~", "null", "Null", "NULL"))
_GO_SPECIAL_FLOAT: Final = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}
_GO_INT: Final = re.compile(r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+)")  # strconv.ParseInt base 0
_GO_FLOAT: Final = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")  # yamlStyleFloat
_BOOL: Final = "tag:yaml.org,2002:bool"
_NULL: Final = "tag:yaml.org,2002:null"
_NUMBER: Final = "tag:yaml.org,2002:float"
_STR: Final = "tag:yaml.org,2002:str"


def _go_plain_tag(value: str) -> str:
    first = value[:1]
    if not first or first in "yYnNtTfFoO~.+-0123456789":
        if value in _GO_TRUE or value in _GO_FALSE:
            return _BOOL
        if value in _GO_NULL:
            return _NULL
        if value in _GO_SPECIAL_FLOAT:
            return _NUMBER
    if first == ".":
        return _NUMBER if _GO_FLOAT.fullmatch(value) else _STR
    if first and first in "+-0123456789":
        plain = value.replace("_", "")
        if _GO_INT.fullmatch(plain) or _GO_FLOAT.fullmatch(plain):
            return _NUMBER
    return _STR


def _go_number(value: str) -> int | float:
    """The value is never used (every field here is a string, list or object): only its JSON type matters."""
    plain = value.replace("_", "")
    if plain in _GO_SPECIAL_FLOAT:  # YAMLToJSON fails: JSON has no NaN or infinity
        raise DecodeError("invalid YAML: NaN and infinity have no JSON form")
    try:
        return int(plain, 0)
    except ValueError:
        return float(plain) if _GO_FLOAT.fullmatch(plain) else 0


class _Loader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it into JSON: plain scalars resolved as go-yaml v2 does, mappings with
    their duplicates (to be refused), non-string keys as their text (they can only be unknown fields here)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            return _go_plain_tag(value)
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Obj:
    loader.flatten_mapping(node)  # `<<` merge keys, which go-yaml also applies
    pairs = Obj()
    for key_node, value_node in node.value:
        key: Any = loader.construct_object(key_node, deep=True)
        text = key if isinstance(key, str) else json.dumps(key) if isinstance(key, bool | int | None) else str(key)
        pairs.append((text, loader.construct_object(value_node, deep=True)))
    return pairs


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor(_BOOL, lambda loader, node: node.value in _GO_TRUE)
_Loader.add_constructor(_NUMBER, lambda loader, node: _go_number(node.value))
_Loader.add_constructor("tag:yaml.org,2002:int", lambda loader, node: _go_number(node.value))


def _no_constant(name: str) -> NoReturn:
    raise DecodeError(f"invalid JSON ({name} is not a JSON value)")


def load_document(text: str, *, allow_yaml: bool) -> object:
    """The first document of `text`: JSON if it starts with '{' (or YAML is not allowed), else YAML.
    Errors name a line and column only; nothing keeps the text (no exception context refers to it)."""
    problem = ""
    if not allow_yaml or text.lstrip(" \t\r\n").startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=Obj, parse_constant=_no_constant)
        except json.JSONDecodeError as err:  # .doc is the whole text: only its position is kept
            problem = f"invalid JSON at line {err.lineno} column {err.colno}"
        except RecursionError:
            problem = "JSON nested too deeply"
    else:
        try:
            # go-yaml reads only the first document; later ones are never parsed
            return next(yaml.load_all(text, Loader=_Loader), None)  # _Loader is a SafeLoader
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = f"invalid YAML{where}: {err.problem or 'unreadable'}"
        except yaml.YAMLError:
            problem = "invalid YAML"
        except RecursionError:
            problem = "YAML nested too deeply"
    raise DecodeError(problem)


# --- writing ------------------------------------------------------------------------------------

_ESCAPES: Final = {
    **{c: f"\\u{c:04x}" for c in range(0x20)},
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x22: '\\"',
    0x5C: "\\\\",
    0x3C: "\\u003c",  # encoding/json escapes HTML metacharacters by default
    0x3E: "\\u003e",
    0x26: "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
_SURROGATES: Final = re.compile("[\ud800-\udfff]")


def go_json_string(text: str) -> str:
    """encoding/json's quoting of a string (invalid UTF-8, here lone surrogates, becomes U+FFFD)."""
    return '"' + _SURROGATES.sub("\ufffd", text).translate(_ESCAPES) + '"'
