"""A LIST page read one item at a time (webhook/kube/pages.py) gives exactly what parsing it whole gives, whatever
the body looks like: the API server's compact lists take the item-by-item path, anything else is parsed whole."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from webhook.kube import pages
from webhook.kube.pages import list_page
from webhook.kube.reflector import Reflector
from webhook.kube.view import secret_facts


def _secret(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"s{i}", "namespace": "team", "labels": {"app": "x"}},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": "e30="},
        **extra,
    }


def _page(items: list[dict[str, Any]], **envelope: Any) -> dict[str, Any]:
    return {
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "42", "continue": "abc"},
        **envelope,
        "items": items,
    }


def _compact(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)  # as the API server writes it: no whitespace, keys in order


def _read(raw: bytes) -> tuple[dict[str, Any], list[Any]]:
    envelope, items = list_page(raw)
    return envelope, list(items)


def _same(got: list[Any], want: list[Any]) -> None:
    """The same items, each once (the whole-page fallback gives the rest in another order)."""
    key = json.dumps
    assert sorted(map(key, got)) == sorted(map(key, want))
    assert len(got) == len(want)


ITEMS = [_secret(i) for i in range(5)]
NESTED = [  # inside an item, an array of objects whose first key is "metadata": the separator, but not an item's end
    _secret(0),
    _secret(1, spec={"templates": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}),
    _secret(2),
]
QUOTED = [_secret(0, data={"k": '},{"metadata":{"name":"fake"}}'}), _secret(1)]  # the separator, escaped in a string


@pytest.mark.parametrize(
    ("items", "label"),
    [(ITEMS, "plain"), ([], "empty"), ([_secret(0)], "one"), (NESTED, "nested"), (QUOTED, "quoted")],
)
def test_compact_pages_give_every_item_once(
    items: list[dict[str, Any]], label: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def parsed_whole(raw: bytes, skip: int) -> None:
        raise AssertionError("a compact page is read item by item")

    monkeypatch.setattr(pages, "_whole", parsed_whole)
    envelope, got = _read(_compact(_page(items)))
    assert envelope == {k: v for k, v in _page([]).items() if k != "items"}
    assert got == items, label  # the item-by-item path keeps the page's order


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(_page(ITEMS)).encode(),  # whitespace after separators
        json.dumps(_page(ITEMS), indent=2).encode() + b"\n",  # pretty, as for curl
        _compact({"items": ITEMS, "kind": "SecretList", "metadata": {"resourceVersion": "42"}}),  # items first
        _compact({**_page(ITEMS), "extra": [1]}),  # items not last, the body still ending in "]}"
        _compact(_page([{"kind": "Secret", **item} for item in ITEMS])),  # items not starting with metadata
        _compact(_page([*ITEMS[:2], {"kind": "Secret", **ITEMS[2]}, *ITEMS[3:]])),  # one of them, midway
        _compact(_page(ITEMS[:3])) + b" \r\n",
    ],
)
def test_other_shapes_give_the_same_items(raw: bytes) -> None:
    want = orjson.loads(raw)
    envelope, got = _read(raw)
    _same(got, want.pop("items"))
    assert envelope == want


def test_items_key_inside_a_string_or_an_object_is_not_the_list() -> None:
    raw = _compact({"kind": "SecretList", "metadata": {"note": '"items":['}, "items": ITEMS})
    envelope, got = _read(raw)
    assert got == ITEMS and envelope["metadata"] == {"note": '"items":['}
    nested = _compact({"kind": "X", "metadata": {"items": [1]}, "items": ITEMS})
    _same(_read(nested)[1], ITEMS)


def test_a_table_comes_back_whole() -> None:
    table = {"kind": "Table", "columnDefinitions": [{"name": "Name"}], "rows": [{"cells": ["a"]}]}
    envelope, got = _read(_compact(table))
    assert envelope == table and got == []


def test_null_items_and_broken_json() -> None:
    assert _read(b'{"kind":"SecretList","metadata":{},"items":null}') == ({"kind": "SecretList", "metadata": {}}, [])
    with pytest.raises(orjson.JSONDecodeError):
        _read(b'{"kind":"SecretList","metadata":{},"items":[{"metadata":{"name":"a"}},{"metadata":')
    with pytest.raises(ValueError, match="JSON object"):
        _read(b"[1]")


def test_the_reflector_reduces_a_compact_page() -> None:
    reflector: Reflector[Any] = Reflector("secrets", lambda **_: None, secret_facts)
    store: dict[tuple[str, str], Any] = {}
    version, token = reflector._reduce_page(_compact(_page(NESTED)), store)
    assert (version, token) == ("42", "abc")
    assert sorted(store) == [("team", "s0"), ("team", "s1"), ("team", "s2")]
    assert store[("team", "s1")].data == {".dockerconfigjson": "e30="}
