"""Facts stay structured: which host failed a lookup (and in which role), and which nodes a finding is about,
are fields filled where they are known, never read back out of a detail or a message."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from policies.checks import image_exists, never_pull
from policies.config import DEFAULT_POLICY
from policies.decide import decide
from policies.lookup import RegistryConfig
from policies.model import ClusterFacts, Facts
from policies.registry_facts import ImageFacts, LookupStatus, OutboundRole
from tests.unit.cluster_helpers import node
from tests.unit.policy_helpers import workload
from tests.unit.registry_mock import (
    REGISTRY,
    ROBOT,
    Wire,
    answer,
    bearer_registry,
    lookup,
    no_dns,  # noqa: F401 - the autouse fixture: nothing is resolved
    serve,
)
from tests.unit.test_explain_verdicts import IMAGE, REF, event, pod
from webhook.explain.pods import failing_containers
from webhook.explain.verdict import judge
from webhook.review.workloads import extract

IMAGE_REF = "registry.example.com/team/app:1"


def _message(found: ImageFacts) -> str:
    image = workload(IMAGE_REF).images[0]
    (finding,) = image_exists.check(image, Facts(images={found.reference: found}), DEFAULT_POLICY)
    return finding.message


def test_image_exists_reads_the_failed_role_not_the_detail() -> None:
    ref = IMAGE_REF
    detail = "token realm https://auth.example.com: connection refused"
    worded_only = ImageFacts(ref, LookupStatus.REFUSED, "registry.example.com", detail=detail)
    assert "(for registry" not in _message(worded_only)  # a detail's words alone say nothing about the host
    marked = ImageFacts(
        ref,
        LookupStatus.REFUSED,
        "registry.example.com",
        detail="connection refused",
        failed_role=OutboundRole.REALM,
        failed_host="https://auth.example.com",
    )
    assert _message(marked).endswith("could not verify: connection refused (for registry registry.example.com)")


async def test_the_client_names_a_failing_token_realm_as_fields() -> None:
    wire = Wire({REGISTRY: bearer_registry({"tok"}), "auth.test": answer(503)})
    facts = await lookup(wire, credentials=(ROBOT,))
    assert facts.status is LookupStatus.SERVER_ERROR, facts
    assert (facts.failed_role, facts.failed_host) == (OutboundRole.REALM, "https://auth.test")
    assert facts.detail.startswith("token realm https://auth.test: ")  # the words users see are unchanged


async def test_the_client_names_a_refused_endpoint_as_fields(tmp_path: Path) -> None:
    directory = tmp_path / "certs.d" / REGISTRY
    directory.mkdir(parents=True)
    (directory / "hosts.toml").write_text('[host."https://169.254.169.254"]\n')
    config = RegistryConfig(timeout_seconds=3, hosts_dir=str(tmp_path / "certs.d"))
    facts = await lookup(Wire({"169.254.169.254": serve(), REGISTRY: answer(404)}), config=config)
    assert facts.status is LookupStatus.BLOCKED, facts
    assert (facts.failed_role, facts.failed_host) == (OutboundRole.ENDPOINT, "169.254.169.254")


async def test_an_answer_of_the_registry_itself_names_no_other_host() -> None:
    facts = await lookup(Wire({REGISTRY: answer(503)}))
    assert facts.status is LookupStatus.SERVER_ERROR and facts.failed_role is None and facts.failed_host == ""


@pytest.mark.parametrize("pod_node", ["n2", "n5"])
def test_never_pull_names_every_node_lacking_the_image_and_explain_reads_them(pod_node: str) -> None:
    nodes = (node("n1", images=(REF,)), *(node(f"n{i}") for i in range(2, 7)))
    image = replace(workload(IMAGE).images[0], pull_policy="Never")
    (finding,) = never_pull.check(image, Facts(cluster=ClusterFacts(known=True, nodes=nodes)), DEFAULT_POLICY)
    assert finding.advisory and finding.nodes == ("n2", "n3", "n4", "n5", "n6")
    assert "missing on nodes n2, n3, n4 and 2 more" in finding.message  # the words are unchanged
    # The pod ran on a node its message does not show (n5): the field still confirms it.
    p = pod({"waiting": {"reason": "ErrImageNeverPull"}}, pull_policy="Never")
    del p["spec"]["nodeName"]
    events = [event(f'Container image "{IMAGE}" is not present with pull policy of Never', reason="ErrImageNeverPull")]
    (failing,) = failing_containers(p, events)
    facts = Facts(cluster=ClusterFacts(known=True, nodes=nodes))
    decision = decide(extract("Pod", p), facts, DEFAULT_POLICY)
    verdict = judge(failing, decision, None, offline=False, node=pod_node)
    assert verdict.verdict == "confirmed", verdict
    assert judge(failing, decision, None, offline=False, node="n1").verdict != "confirmed"  # n1 holds it
