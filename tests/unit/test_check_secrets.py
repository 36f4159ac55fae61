"""`check` without a live cluster: a pull secret absent from the input is unknown, not missing.

The view says it may lack Secrets (`ClusterFacts.secrets_complete=False`) and the pullSecrets check says "could not
verify" for what depends on them; a complete view (a live cluster, --complete-input) calls them missing."""

from __future__ import annotations

import dataclasses

import pytest

from policies.config import parse_policy
from policies.decide import decide
from policies.model import ClusterFacts, Facts, Reason, SecretFacts, ServiceAccountFacts, Workload
from policies.registry_facts import ImageFacts, LookupStatus
from tests.unit.cluster_helpers import container, dockerconfigjson
from webhook.check.secrets import unverifiable

ENFORCE = parse_policy("mode: enforce\n")
CLOSED = parse_policy("mode: enforce\nfailurePolicy: closed\n")
IMAGE = "registry.example.com/team/app:1.0"


def judge(cluster: ClusterFacts, status: LookupStatus | None = None, narrowed: bool = True, policy=ENFORCE):
    """`narrowed`: the view is the input's (incomplete); else it is declared complete."""
    app = container(IMAGE, secrets=("regcred", "other"), namespace="shop")
    images = {}
    if status is not None:
        images = {app.pull_reference: ImageFacts(app.pull_reference or "", status, "registry.example.com")}
    if cluster.known:
        cluster = dataclasses.replace(cluster, secrets_complete=not narrowed)
    facts = Facts(images=images, cluster=cluster)
    return decide(Workload("Pod", "shop", "app", (app,)), facts, policy)


def pull_secret_findings(decision) -> list[tuple[str, str, bool]]:
    return [
        (j.finding.reason, j.finding.message, j.denies) for j in decision.findings if j.finding.check != "latestTag"
    ]


VIEW = ClusterFacts(known=True, secrets={"regcred": None, "other": dockerconfigjson("other", {"quay.io": ("u", "p")})})


def test_a_secret_absent_from_the_input_is_not_missing() -> None:
    assert unverifiable(container(IMAGE, secrets=("regcred", "other")).pod, VIEW) == ("regcred",)
    everything = pull_secret_findings(judge(VIEW, narrowed=False))
    assert any('imagePullSecret "regcred"' in m and "does not exist" in m for _, m, _ in everything)
    narrowed = pull_secret_findings(judge(VIEW))
    assert not any("regcred" in m for _, m, _ in narrowed), narrowed
    # "no entry of secret "regcred", "other" matches": regcred was never seen, so that is unknown too
    assert not any("no entry" in m for _, m, _ in narrowed), narrowed


def test_what_the_secrets_seen_say_is_still_reported() -> None:
    wrong_type = SecretFacts("shop", "other", "Opaque", {"x": "eA=="})
    cluster = ClusterFacts(known=True, secrets={"regcred": None, "other": wrong_type})
    (finding,) = pull_secret_findings(judge(cluster))
    assert finding[0] == Reason.SECRET_IGNORED and 'imagePullSecret "other"' in finding[1] and finding[2]


@pytest.mark.parametrize("status", [LookupStatus.UNAUTHORIZED, LookupStatus.DENIED])
def test_a_refusal_without_the_unseen_secret_is_unverified(status: LookupStatus) -> None:
    everything = pull_secret_findings(judge(VIEW, status, narrowed=False))
    assert any(r == Reason.ERR_IMAGE_PULL and denies for r, _, denies in everything)
    (finding,) = pull_secret_findings(judge(VIEW, status))
    reason, message, denies = finding
    assert reason == Reason.UNVERIFIED and not denies  # unknown: denies only under failurePolicy closed
    assert f'answered {status} and pull secret "regcred" is not in the input' in message
    assert pull_secret_findings(judge(VIEW, status, policy=CLOSED))[0][2]


def test_without_any_view_the_pods_own_secrets_are_the_unseen_ones() -> None:
    assert unverifiable(container(IMAGE, secrets=("a", "b", "a")).pod, ClusterFacts()) == ("a", "b")
    assert unverifiable(container(IMAGE).pod, ClusterFacts()) == ()
    (finding,) = pull_secret_findings(judge(ClusterFacts(), LookupStatus.UNAUTHORIZED))
    assert (
        finding[0] == Reason.UNVERIFIED
        and 'pull secrets "regcred", "other" are out of sight (no cluster view)' in finding[1]
    )


def test_a_service_accounts_secrets_count_and_a_pod_without_secrets_is_unchanged() -> None:
    account = ServiceAccountFacts("shop", "default", ("from-account",))
    cluster = ClusterFacts(known=True, service_account=account, secrets={"from-account": None})
    assert unverifiable(container(IMAGE).pod, cluster) == ("from-account",)
    plain = container(IMAGE, namespace="shop")
    facts = Facts(
        images={plain.pull_reference: ImageFacts(IMAGE, LookupStatus.UNAUTHORIZED, "registry.example.com")},
        cluster=ClusterFacts(known=True),
    )
    workload = Workload("Pod", "shop", "app", (plain,))
    incomplete = dataclasses.replace(facts, cluster=ClusterFacts(known=True, secrets_complete=False))
    assert decide(workload, incomplete, ENFORCE) == decide(workload, facts, ENFORCE)
