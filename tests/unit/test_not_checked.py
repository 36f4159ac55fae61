"""Issue 22, "no silent pass": a check that could not run for an image says so (policies.decide.unchecked), and
the PolicyReport lists it as `skip`, never as a pass."""

from __future__ import annotations

from dataclasses import replace

import pytest

from policies.config import DEFAULT_POLICY, Policy, parse_policy
from policies.credentials import pod_credentials
from policies.decide import unchecked
from policies.image.platforms import Platform
from policies.model import CheckName, ClusterFacts, Facts, Gap, Unchecked, Workload
from policies.registry_facts import ImageFacts, LookupStatus
from policies.render import not_checked
from tests.unit.cluster_helpers import container, node
from webhook.formats.policyreport import AuditedWorkload, report

ONLINE_IMAGE = PULLED = "registry.example.test/shop/app:1.0"


def pod(*, pull_policy: str | None = None, selector: dict[str, str] | None = None) -> Workload:
    image = container(ONLINE_IMAGE, pull_policy=pull_policy, selector=selector)
    return Workload(kind="Pod", namespace="shop", name="w", images=(image,))


def looked_up() -> dict[str, ImageFacts]:
    found = ImageFacts(PULLED, LookupStatus.EXISTS, "registry.example.test")
    return {PULLED: replace(found, platforms=(Platform("linux", "amd64"),))}


def gaps(workload: Workload, facts: Facts, policy: Policy = DEFAULT_POLICY) -> set[tuple[str, Gap]]:
    return {(u.check, u.gap) for u in unchecked(workload, facts, policy)}


def test_offline_without_a_cluster_view_names_every_check_that_needs_either() -> None:
    assert gaps(pod(), Facts()) == {
        (CheckName.IMAGE_EXISTS, Gap.NO_LOOKUP),
        (CheckName.ARCHITECTURE, Gap.NO_LOOKUP),
        (CheckName.PULL_SECRETS, Gap.NO_CLUSTER),
    }


def test_online_with_nodes_every_check_ran() -> None:
    cluster = ClusterFacts(known=True, nodes=(node("n1"),))
    assert gaps(pod(), Facts(images=looked_up(), cluster=cluster)) == set()


def test_no_node_and_no_pinned_architecture_leaves_architecture_unchecked() -> None:
    empty = ClusterFacts(known=True)
    assert gaps(pod(), Facts(images=looked_up(), cluster=empty)) == {(CheckName.ARCHITECTURE, Gap.NO_NODES)}
    pinned = pod(selector={"kubernetes.io/arch": "amd64"})  # the spec's own words are enough
    assert gaps(pinned, Facts(images=looked_up(), cluster=empty)) == set()


def test_a_failed_lookup_is_a_finding_not_a_gap() -> None:
    failed = {PULLED: ImageFacts(PULLED, LookupStatus.NOT_FOUND, "registry.example.test")}
    cluster = ClusterFacts(known=True, nodes=(node("n1"),))
    assert gaps(pod(), Facts(images=failed, cluster=cluster)) == set()
    nodeless = ClusterFacts(known=True)  # no platforms to compare at all: imageExists says why, not architecture
    assert gaps(pod(), Facts(images=failed, cluster=nodeless)) == set()


def test_never_pull_with_no_node_in_the_view_is_not_checked() -> None:
    never = pod(pull_policy="Never")
    assert gaps(never, Facts(cluster=ClusterFacts(known=True))) == {(CheckName.NEVER_PULL, Gap.NO_NODES)}
    assert gaps(never, Facts()) == {(CheckName.NEVER_PULL, Gap.NO_CLUSTER)}  # never pulled: no secret is used
    elsewhere = ClusterFacts(known=True, nodes=(node("arm", "arm64", labels={"pool": "b"}),))
    pinned = Workload("Pod", "shop", "w", (container(ONLINE_IMAGE, pull_policy="Never", selector={"pool": "a"}),))
    assert gaps(pinned, Facts(cluster=elsewhere)) == {(CheckName.NEVER_PULL, Gap.NO_NODES)}
    holding = ClusterFacts(known=True, nodes=(node("n1", images=(PULLED,)),))
    assert gaps(never, Facts(cluster=holding)) == set()


def test_a_check_turned_off_is_never_reported_as_not_checked() -> None:
    policy = parse_policy("checks: {imageExists: {mode: off}, architecture: {mode: off}, pullSecrets: {mode: off}}")
    assert gaps(pod(), Facts(), policy) == set()


def test_offline_secrets_named_by_the_pod_were_never_shown_to_a_registry() -> None:
    image = container(ONLINE_IMAGE, secrets=("regcred",))
    workload = Workload("Pod", "shop", "w", (image,))
    cluster = ClusterFacts(known=True, nodes=(node("n1"),), secrets={"regcred": None})
    credentials = pod_credentials(image.pod, cluster)
    found = gaps(workload, Facts(cluster=cluster, credentials=credentials))
    assert (CheckName.PULL_SECRETS, Gap.NO_LOOKUP) in found


@pytest.mark.parametrize("gap", list(Gap))
def test_each_gap_has_words(gap: Gap) -> None:
    text = not_checked(Unchecked(CheckName.NEVER_PULL, container(ONLINE_IMAGE), gap))
    assert text.startswith('neverPull not checked for container "app" image "registry.example.test/shop/app:1.0": ')
    assert text.split(": ", 1)[1]


def test_the_policy_report_lists_a_check_that_could_not_run_as_skip_never_pass() -> None:
    image = container(ONLINE_IMAGE, pull_policy="Never")
    gap = Unchecked(CheckName.NEVER_PULL, image, Gap.NO_NODES)
    audited = AuditedWorkload("CronJob", "shop", "nightly", "uid-1", images=1, findings=(), unchecked=(gap,))
    document = report("shop", [audited], seconds=1)
    assert document["summary"] == {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 1}
    (result,) = document["results"]
    assert (result["policy"], result["rule"], result["result"], result["scored"]) == (
        "neverPull",
        "noNodes",
        "skip",
        False,
    )
    assert "no Node in the view" in result["message"] and result["severity"] == "info"
    clean = AuditedWorkload("CronJob", "shop", "nightly", "uid-1", images=1, findings=())
    assert report("shop", [clean], seconds=1)["summary"]["pass"] == 1
