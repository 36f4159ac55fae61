"""A LIST page read one item at a time.

Parsing a whole page makes every object of it at once (a page of 250 Nodes is about 8 MiB of dicts and strings)
while the cache's own values are made between them. The page is freed afterwards, but the small-object arenas that
also hold cache values stay, partly empty: at 5,000 Secrets / 2,000 ServiceAccounts / 1,000 Nodes a process that
listed its caches was ~6 MiB larger than one that received the same objects as watch events, one at a time.
`list_page` parses the page's envelope, then each item on its own, as it is asked for, so a LIST holds one item's
objects at a time, like a watch; the raw page (one large buffer, mmapped and returned when freed) is all that is
kept in between.

Items are found by their separator as the API server writes a list (compact JSON, each item beginning with its
metadata): `},{"metadata":`. No guess is trusted: a piece that is not one whole JSON value is not an item (the
separator was inside an item: the piece grows to the next one), and a page that does not look as expected (no
`"items":[`, whitespace, another key order) is parsed whole, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

ITEMS = b'"items":['
NEXT_ITEM = b'},{"metadata":'
_WHITESPACE = b" \t\r\n"


def list_page(raw: bytes) -> tuple[dict[str, Any], Iterator[Any]]:
    """(the page without its items, its items one at a time). Each item is parsed when the iterator reaches it
    and yielded once; nothing of it is kept here after. The first dict is complete once the items are exhausted
    (keys after the items are only known then). A non-list body (e.g. a Table) comes back whole with no items."""
    head = raw.find(ITEMS)
    stop = _items_end(raw)
    if 0 <= head < stop:
        try:
            # Closing the envelope right after "items":[ parses only if that key is the body's own (not inside a
            # string or a nested object).
            envelope = orjson.loads(raw[:head] + ITEMS + b"]}")
        except orjson.JSONDecodeError:
            envelope = None
        if isinstance(envelope, dict):
            envelope.pop("items", None)
            return envelope, _items(raw, head + len(ITEMS), stop, envelope)
    return _whole(raw, 0)


def _items_end(raw: bytes) -> int:
    """Where the items array closes when the body ends with it (`...]}`, trailing whitespace allowed); else -1."""
    end = len(raw)
    while end and raw[end - 1] in _WHITESPACE:
        end -= 1
    return end - 2 if raw[end - 2 : end] == b"]}" else -1


def _items(raw: bytes, start: int, stop: int, envelope: dict[str, Any]) -> Iterator[Any]:
    """The items of the array between `start` and `stop`, each parsed alone. A piece that parses is exactly one
    item (a JSON value's end is fixed by its start), so the next item starts after it; a piece that does not
    parse ended inside an item and is extended to the next separator. Pieces that parse up to `stop` prove that
    the array ends there, the body's last key. Otherwise the page is parsed whole: the items not yet given are
    given from it, and `envelope` gets what it lacked."""
    given = 0
    begin = cut = start
    with memoryview(raw) as view:
        while begin < stop:
            found = raw.find(NEXT_ITEM, cut, stop)
            end = stop if found < 0 else found + 1
            try:
                item = orjson.loads(view[begin:end])
            except orjson.JSONDecodeError:
                if found < 0:
                    break
                cut = found + 1
                continue
            yield item
            given += 1
            begin = cut = end + 1  # past the comma
        else:
            return
    body, rest = _whole(raw, given)
    envelope.clear()
    envelope.update(body)
    yield from rest


def _whole(raw: bytes, skip: int) -> tuple[dict[str, Any], Iterator[Any]]:
    """The page parsed in one go; its items (after the first `skip`) are dropped from it as they are given."""
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise ValueError(f"a list response is a JSON object, not {type(body).__name__}")
    page = body.pop("items", None)
    if not isinstance(page, list):
        return body, iter(())
    del page[:skip]
    page.reverse()
    return body, _drain(page)


def _drain(page: list[Any]) -> Iterator[Any]:
    while page:  # from the end (the list is reversed): each item's objects are freed once the caller is done
        yield page.pop()
