"""The running code goes one way (tests/support/trace_review.py): nothing calls back against the layers, and the
review passes through webhook.review.review, the plan, the fact gathering and the decision in that order."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from tests.support.trace_review import against_the_layers, calls, trace
from webhook.check.command import run_check

MANIFESTS = Path(__file__).parents[1] / "data" / "manifests"


def test_one_review_goes_one_way() -> None:
    edges, answer = trace()
    assert answer["response"]["allowed"] is True  # both images exist: the registry was really asked
    assert against_the_layers(edges) == []
    taken = [edge for edge in edges if edge[0] == "webhook.review.review"]
    assert [callee for _, callee in taken] == ["policies.plan", "webhook.review.facts", "policies.decide"]
    assert ("webhook.review.facts", "webhook.registry.client") in edges


def test_the_check_sees_a_call_back() -> None:
    assert against_the_layers([("webhook.registry.client", "policies.config")]) != []
    assert against_the_layers([("policies.decide", "webhook.review.facts")]) != []
    assert against_the_layers([("webhook.registry.client", "policies.model")]) == []


def test_check_enters_through_the_same_review() -> None:
    def check() -> None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_check([str(MANIFESTS / "deployment.yaml")], None, offline=True, output="json")

    edges = calls(check)
    assert ("webhook.check.command", "webhook.review.review") in edges
    assert ("webhook.review.review", "policies.decide") in edges
    assert not [edge for edge in edges if edge[0].startswith("webhook.check") and edge[1] == "policies.decide"]
    assert against_the_layers(edges) == []
