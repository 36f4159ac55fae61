"""The running code goes one way (tests/support/trace_review.py): nothing calls back against the layers, and the
review passes through webhook.review.review, the plan, the fact gathering and the decision in that order."""

from __future__ import annotations

from tests.support.trace_review import against_the_layers, trace


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
