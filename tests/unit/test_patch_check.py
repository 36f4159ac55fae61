"""The hot-path patch check (webhook.admission.patch_check) against jsonpatch as the oracle: the same verdict and the
same document for every kind of operation pullguard emits, including the ones that must fail; the in-place
check agrees with applying the patch to a copy, and leaves the object as it was."""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import jsonpatch
import orjson
import pytest

from webhook.admission.patch_check import _apply, patch_problem

DOCUMENT: dict[str, Any] = {
    "metadata": {"name": "web", "annotations": {"a/b": "1"}},
    "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx"}, {"image": "redis"}]}}},
}
IMAGE = "/spec/template/spec/containers/0/image"
CASES: list[list[dict[str, Any]]] = [
    [{"op": "test", "path": IMAGE, "value": "nginx"}, {"op": "replace", "path": IMAGE, "value": "m.example/nginx"}],
    [{"op": "test", "path": IMAGE, "value": "redis"}],  # the value differs
    [{"op": "replace", "path": "/spec/template/spec/containers/2/image", "value": "x"}],  # no such index
    [{"op": "replace", "path": "/spec/template/spec/initContainers/0/image", "value": "x"}],  # no such member
    [{"op": "add", "path": "/metadata/annotations/pullguard.io~1original-images", "value": "{}"}],  # ~1 is /
    [
        {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}},
        {"op": "add", "path": "/metadata/labels/x", "value": "y"},
    ],
    [{"op": "add", "path": "/metadata/missing/x", "value": "y"}],  # the parent does not exist
    [{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"image": "z"}}],
    [{"op": "add", "path": "/spec/template/spec/containers/2", "value": {"image": "z"}}],
    [{"op": "add", "path": "/spec/template/spec/containers/3", "value": {"image": "z"}}],  # past the end
    [{"op": "test", "path": "/metadata/annotations/a~1b", "value": "1"}],
    [{"op": "replace", "path": "", "value": {}}],  # the whole document: never emitted, refused
    # Later operations reading what earlier ones wrote: checked on a copy, not in place.
    [{"op": "replace", "path": IMAGE, "value": "m.example/nginx"}, {"op": "test", "path": IMAGE, "value": "nginx"}],
    [{"op": "replace", "path": IMAGE, "value": "m.example/x"}, {"op": "test", "path": IMAGE, "value": "m.example/x"}],
    [
        {"op": "add", "path": "/spec/template/spec/containers/0", "value": {"image": "z"}},
        {"op": "test", "path": "/spec/template/spec/containers/1/image", "value": "nginx"},
    ],
    [{"op": "test", "path": "/spec/template/spec/containers/1/image", "value": "redis"}],
    [{"op": "test", "path": "/spec/template/spec/containers/x/image", "value": "redis"}],
    [{"op": "replace", "path": "/metadata/name/x", "value": "y"}],  # a string has no members
    # "labels-x" sorts between "labels" and "labels/x": the overlap of the first and third is still seen.
    [
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
        {"op": "add", "path": "/metadata/labels-x", "value": "1"},
        {"op": "test", "path": "/metadata/labels/x", "value": "y"},
    ],
    [  # siblings sharing a prefix do not overlap
        {"op": "test", "path": "/metadata/annotations/a~1b", "value": "1"},
        {"op": "add", "path": "/metadata/annotations/a~1bc", "value": "2"},
    ],
]


@pytest.mark.parametrize("operations", CASES)
def test_same_verdict_and_document_as_jsonpatch(operations: list[dict[str, Any]]) -> None:
    mine = copy.deepcopy(DOCUMENT)
    problem = _apply(mine, operations)
    try:
        expected = jsonpatch.apply_patch(copy.deepcopy(DOCUMENT), operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
        assert problem is not None
        return
    if operations[0]["path"] == "":
        assert problem is not None  # valid JSON Patch, but pullguard never replaces the whole object
        return
    assert problem is None and mine == expected


@pytest.mark.parametrize("operations", CASES)
def test_the_in_place_check_agrees_and_changes_nothing(operations: list[dict[str, Any]]) -> None:
    document = copy.deepcopy(DOCUMENT)
    assert patch_problem(document, operations) == _apply(copy.deepcopy(DOCUMENT), operations)
    assert document == DOCUMENT


def test_an_operation_pullguard_never_emits_is_refused() -> None:
    assert _apply(copy.deepcopy(DOCUMENT), [{"op": "remove", "path": IMAGE, "value": None}]) is not None


def _many(containers: int) -> dict[str, Any]:
    return {"spec": {"containers": [{"image": f"app-{i}"} for i in range(containers)]}}


@pytest.mark.parametrize("late_overlap", [False, True])
def test_a_large_patch_is_checked_in_linear_time_and_still_sees_overlaps(late_overlap: bool) -> None:
    """The in-place check sorts the paths once to find overlaps: 2,000 containers take milliseconds, not the
    seconds a pairwise scan took (the event loop waited on it), and a late read-after-write still falls back."""
    document = _many(2000)
    operations: list[dict[str, Any]] = []
    for i in range(2000):
        path = f"/spec/containers/{i}/image"
        operations += [{"op": "test", "path": path, "value": f"app-{i}"}, {"op": "replace", "path": path, "value": "m"}]
    if late_overlap:  # reads what the first replace wrote: the original value is gone
        operations.append({"op": "test", "path": "/spec/containers/0/image", "value": "app-0"})
    started = time.perf_counter()
    problem = patch_problem(document, operations)
    assert time.perf_counter() - started < 0.5
    assert problem == _apply(copy.deepcopy(document), operations)
    assert (problem is not None) is late_overlap
    assert document == _many(2000)


_PATHS = [
    IMAGE,
    "/spec/template/spec/containers/1/image",
    "/spec/template/spec/containers/0",
    "/spec/template/spec/containers/1",
    "/spec/template/spec/containers/2",
    "/spec/template/spec/containers/-",
    "/spec/template/spec/containers",
    "/metadata/annotations",
    "/metadata/annotations/a~1b",
    "/metadata/annotations/a~1bc",
    "/metadata/labels",
    "/metadata/labels/x",
    "/metadata/labels-x",
    "/metadata/name",
]
_VALUES: list[Any] = ["nginx", "redis", "1", "y", {"x": "y"}, {"image": "z"}, {"a/b": "1"}]


def test_random_patches_agree_with_applying_them_in_order() -> None:
    """Seeded, bounded: whatever mix of operations and overlapping paths, the in-place check says what applying the
    patch in order says (and jsonpatch agrees whether it applies), and changes neither the object nor the patch
    (a list insert once made the copy share an element with the object, and a later operation could change a
    value an earlier one put in)."""
    chooser = random.Random(11)
    for _ in range(1500):
        operations = [
            {"op": chooser.choice(("test", "replace", "add")), "path": chooser.choice(_PATHS), "value": v}
            for v in (chooser.choice(_VALUES) for _ in range(chooser.randint(1, 5)))
        ]
        document, sent = copy.deepcopy(DOCUMENT), copy.deepcopy(operations)
        problem = patch_problem(document, operations)
        assert document == DOCUMENT and operations == sent, operations  # the object and the patch as they were
        assert problem == _apply(copy.deepcopy(DOCUMENT), operations), operations
        try:
            jsonpatch.apply_patch(copy.deepcopy(DOCUMENT), operations)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
            assert problem is not None, operations
        else:
            assert problem is None, operations


def test_a_deep_object_is_checked_without_recursion() -> None:
    """The in-order path copies only what each operation walks through: an object nested 1,000 deep (orjson parses
    up to 1,024 levels of a request) costs no stack, where a deep copy of it raised RecursionError."""
    document: dict[str, Any] = orjson.loads('{"a":' * 1000 + "{}" + "}" * 1000)
    operations: list[dict[str, Any]] = [
        {"op": "add", "path": "/a/k", "value": "1"},
        {"op": "test", "path": "/a/k", "value": "1"},  # reads what the first wrote: applied in order
    ]
    assert patch_problem(document, operations) is None
    assert "k" not in document["a"]
