"""The node's side of a registry answer (policies.node_pull): images already on the candidate nodes, the kubelet's
credential re-verification policy, registries the nodes authorize themselves, credential provider failures and
nodes that do not run containerd. Each case is a finding that would deny a pod the kubelet may run."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from policies.checks import architecture, image_exists, pull_secrets
from policies.config import DEFAULT_POLICY, Policy, parse_policy
from policies.credentials import NodeCredentials
from policies.image.platforms import Platform
from policies.model import ClusterFacts, Facts, Finding, NodeFacts, Reason
from policies.node_pull import OnNodes, placement
from policies.registry_facts import ImageFacts, LookupStatus
from tests.unit.cluster_helpers import container, node

IMAGE = "registry.example.com/team/app:1.0"
DIGEST = "registry.example.com/team/app@sha256:" + "a" * 64
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1.0"


def facts(image: str, status: LookupStatus, *nodes: NodeFacts, **extra: object) -> Facts:
    registry = image.split("/", 1)[0]
    found = ImageFacts(image, status, registry, detail="manifest unknown")
    return Facts(images={image: found}, cluster=ClusterFacts(known=True, nodes=nodes), **extra)  # type: ignore[arg-type]


def policy(text: str) -> Policy:
    return parse_policy(text)


def only(findings: Sequence[Finding]) -> Finding:
    (finding,) = findings
    return finding


# --- images already on the nodes --------------------------------------------------------------------------------


def test_on_every_candidate_node_the_registry_answer_is_only_advisory() -> None:
    view = facts(IMAGE, LookupStatus.NOT_FOUND, node("a", images=(IMAGE,)), node("b", images=(IMAGE,)))
    finding = only(image_exists.check(container(IMAGE), view, DEFAULT_POLICY))
    assert finding.advisory and not finding.unknown
    assert "runs from the copy on all 2 nodes it may run on" in finding.message
    assert "not found in registry registry.example.com" in finding.message


def test_a_digest_on_the_node_counts_like_a_tag() -> None:
    view = facts(DIGEST, LookupStatus.NOT_FOUND, node("a", images=(DIGEST,)))
    assert only(image_exists.check(container(DIGEST), view, DEFAULT_POLICY)).advisory


@pytest.mark.parametrize("pull_policy", ["Always", None])
def test_always_pulls_whatever_the_nodes_hold(pull_policy: str | None) -> None:
    image = IMAGE if pull_policy else "registry.example.com/team/app:latest"  # defaulted: Always for :latest
    view = facts(image, LookupStatus.NOT_FOUND, node("a", images=(image,)))
    finding = only(image_exists.check(container(image, pull_policy=pull_policy), view, DEFAULT_POLICY))
    assert not finding.advisory and not finding.unknown
    assert finding.reason is Reason.ERR_IMAGE_PULL


def test_nowhere_on_the_nodes_the_registry_answer_stands() -> None:
    view = facts(IMAGE, LookupStatus.NOT_FOUND, node("a"), node("b", images=("registry.example.com/other:1",)))
    finding = only(image_exists.check(container(IMAGE), view, DEFAULT_POLICY))
    assert not finding.advisory and not finding.unknown


def test_some_nodes_hold_it_the_finding_names_where_the_pull_fails() -> None:
    nodes = (node("a", images=(IMAGE,)), node("b"), node("c"))
    finding = only(image_exists.check(container(IMAGE), facts(IMAGE, LookupStatus.NOT_FOUND, *nodes), DEFAULT_POLICY))
    assert finding.advisory  # the pod may land where it runs: never a denial
    assert "2 of 3 candidate nodes lack it (nodes b, c), node a hold it" in finding.message


def test_only_candidate_nodes_count() -> None:
    nodes = (node("a", "arm64", images=(IMAGE,)), node("b"), node("c", ready=False, images=(IMAGE,)))
    pod = container(IMAGE, selector={"kubernetes.io/arch": "amd64"})
    finding = only(image_exists.check(pod, facts(IMAGE, LookupStatus.NOT_FOUND, *nodes), DEFAULT_POLICY))
    assert not finding.advisory and not finding.unknown  # b, the only candidate, lacks it


def test_a_bound_pod_has_one_candidate_its_node() -> None:
    nodes = (node("a", images=(IMAGE,)), node("b"))
    bound = facts(IMAGE, LookupStatus.NOT_FOUND, *nodes)
    assert only(image_exists.check(container(IMAGE, node_name="a"), bound, DEFAULT_POLICY)).advisory
    on_b = only(image_exists.check(container(IMAGE, node_name="b"), bound, DEFAULT_POLICY))
    assert not on_b.advisory and not on_b.unknown


def test_a_full_image_list_may_hide_it() -> None:
    view = facts(IMAGE, LookupStatus.NOT_FOUND, node("a", listed=50), node("b"))
    finding = only(image_exists.check(container(IMAGE), view, DEFAULT_POLICY))
    assert finding.unknown and finding.reason is Reason.UNVERIFIED
    assert "node a list the maximum of 50 images and may hold it" in finding.message
    unlimited = policy("kubelet: {nodeStatusMaxImages: -1}")
    assert not only(image_exists.check(container(IMAGE), view, unlimited)).unknown
    assert placement(container(IMAGE), view, policy("kubelet: {nodeStatusMaxImages: 60}")).where is OnNodes.NOWHERE


# --- the kubelet's credential re-verification (KEP-2535) ---------------------------------------------------------


def _private_on_every_node(verification: str, allowlist: str = "[]") -> Finding:
    view = facts(IMAGE, LookupStatus.UNAUTHORIZED, node("a", images=(IMAGE,)))
    text = f"kubelet: {{imagePullCredentialsVerificationPolicy: {verification}, "
    text += f"preloadedImagesVerificationAllowlist: {allowlist}}}"
    return only(pull_secrets.check(container(IMAGE), view, policy(text)))


def test_default_policy_a_private_copy_may_have_been_pulled_with_another_pods_secret() -> None:
    finding = _private_on_every_node("NeverVerifyPreloadedImages")
    assert finding.unknown
    assert "could not verify: it is on all 1 node it may run on" in finding.message
    assert "another pod's pull secret" in finding.message


def test_never_verify_trusts_every_copy() -> None:
    finding = _private_on_every_node("NeverVerify")
    assert finding.advisory and not finding.unknown


def test_allowlisted_images_are_trusted_by_name_as_written() -> None:
    assert _private_on_every_node("NeverVerifyAllowlistedImages", '["registry.example.com/team/*"]').advisory
    assert _private_on_every_node("NeverVerifyAllowlistedImages", '["registry.example.com/team/app"]').advisory
    missed = _private_on_every_node("NeverVerifyAllowlistedImages", '["registry.example.com/other/*"]')
    assert not missed.advisory and not missed.unknown


def test_always_verify_pulls_for_a_pod_without_credentials() -> None:
    finding = _private_on_every_node("AlwaysVerify")
    assert not finding.advisory and not finding.unknown
    assert "requires credentials and the pod has none" in finding.message


def test_a_public_copy_is_open_to_every_pod_under_the_default_policy() -> None:
    view = facts(IMAGE, LookupStatus.NOT_FOUND, node("a", images=(IMAGE,)))
    assert only(image_exists.check(container(IMAGE), view, DEFAULT_POLICY)).advisory


# --- registries the nodes authorize themselves ------------------------------------------------------------------


@pytest.mark.parametrize("status", [LookupStatus.UNAUTHORIZED, LookupStatus.DENIED])
def test_managed_registry_unauthorized_is_could_not_verify(status: LookupStatus) -> None:
    finding = only(pull_secrets.check(container(ECR), facts(ECR, status, node("a")), DEFAULT_POLICY))
    assert finding.unknown and finding.reason is Reason.UNVERIFIED
    assert "the nodes may hold credentials for 123456789012.dkr.ecr.eu-west-1.amazonaws.com" in finding.message
    assert "*.dkr.ecr.*.amazonaws.com" in finding.message
    assert "credentialProviderConfig" in finding.hint


def test_managed_registry_not_found_stays_definite() -> None:
    finding = only(image_exists.check(container(ECR), facts(ECR, LookupStatus.NOT_FOUND, node("a")), DEFAULT_POLICY))
    assert not finding.unknown


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("123.dkr.ecr.cn-north-1.amazonaws.com.cn/a:1", True),
        ("europe-docker.pkg.dev/p/r/a:1", True),
        ("gcr.io/p/a:1", True),
        ("eu.gcr.io/p/a:1", True),
        ("team.azurecr.io/a:1", True),
        ("fra.ocir.io/ns/a:1", True),
        ("registry.example.com/a:1", False),
        ("amazonaws.com/a:1", False),
    ],
)
def test_default_managed_registries(image: str, expected: bool) -> None:
    finding = only(pull_secrets.check(container(image), facts(image, LookupStatus.UNAUTHORIZED), DEFAULT_POLICY))
    assert finding.unknown is expected


def test_operators_choose_the_list() -> None:
    custom = policy('nodeCredentials: {registries: ["registry.example.com"]}')
    finding = only(pull_secrets.check(container(IMAGE), facts(IMAGE, LookupStatus.UNAUTHORIZED), custom))
    assert finding.unknown
    none = policy("nodeCredentials: {registries: []}")
    assert not only(pull_secrets.check(container(ECR), facts(ECR, LookupStatus.UNAUTHORIZED), none)).unknown


# --- credential provider failures and other runtimes ------------------------------------------------------------


def test_a_failed_credential_provider_makes_the_answer_unverifiable() -> None:
    failed = NodeCredentials(failures={"registry.example.com/team/app": ("credential provider ecr: timed out",)})
    view = facts(IMAGE, LookupStatus.UNAUTHORIZED, node("a"), node_credentials=failed)
    finding = only(pull_secrets.check(container(IMAGE), view, DEFAULT_POLICY))
    assert finding.unknown
    assert "could not verify: credential provider ecr: timed out" in finding.message
    tls = facts(IMAGE, LookupStatus.TLS, node("a"), node_credentials=failed)  # no credential changes a TLS failure
    assert not only(image_exists.check(container(IMAGE), tls, DEFAULT_POLICY)).unknown


def test_cri_o_nodes_are_not_judged_by_containerd_rules() -> None:
    view = facts(IMAGE, LookupStatus.NOT_FOUND, node("a", runtime="cri-o://1.30.2"), node("b"))
    finding = only(image_exists.check(container(IMAGE), view, DEFAULT_POLICY))
    assert finding.unknown
    assert "node a run cri-o, whose registry configuration (registries.conf" in finding.message
    unreported = facts(IMAGE, LookupStatus.NOT_FOUND, node("a", runtime=""))
    assert not only(image_exists.check(container(IMAGE), unreported, DEFAULT_POLICY)).unknown


def test_architecture_of_a_copy_already_on_every_node_is_not_pulled() -> None:
    found = ImageFacts(IMAGE, LookupStatus.EXISTS, "registry.example.com", platforms=(Platform("linux", "arm64"),))
    nodes = (node("a", images=(IMAGE,)),)
    view = Facts(images={IMAGE: found}, cluster=ClusterFacts(known=True, nodes=nodes))
    finding = only(architecture.check(container(IMAGE), view, DEFAULT_POLICY))
    assert finding.advisory
    assert finding.reason is Reason.CRASH_LOOP_BACK_OFF


def test_without_a_node_view_nothing_changes() -> None:
    view = Facts(images={IMAGE: ImageFacts(IMAGE, LookupStatus.NOT_FOUND, "registry.example.com")})
    finding = only(image_exists.check(container(IMAGE), view, DEFAULT_POLICY))
    assert not finding.advisory and not finding.unknown
