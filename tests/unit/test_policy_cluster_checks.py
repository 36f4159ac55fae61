"""pullSecrets, architecture and neverPull on tables of cluster and registry facts."""

from __future__ import annotations

import pytest

from policies.checks import architecture, image_exists, never_pull, pull_secrets
from policies.config import DEFAULT_POLICY
from policies.image.platforms import Platform
from policies.model import ClusterFacts, Facts, Reason, SecretFacts, ServiceAccountFacts
from policies.registry_facts import ImageFacts, LookupStatus
from tests.unit.cluster_helpers import arch_affinity, container, dockerconfigjson, node

PRIVATE = "registry.example.com/team/app:1.0"
AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")
OCI_INDEX, OCI_MANIFEST = "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json"


def registry(status: LookupStatus, **kwargs: object) -> dict[str, ImageFacts]:
    return {PRIVATE: ImageFacts(PRIVATE, status, "registry.example.com", **kwargs)}  # type: ignore[arg-type]


def cluster(**kwargs: object) -> ClusterFacts:
    return ClusterFacts(known=True, **kwargs)  # type: ignore[arg-type]


# --- pullSecrets ---------------------------------------------------------------------------------------------


def test_missing_secret_is_named_with_namespace_and_fix() -> None:
    facts = Facts(cluster=cluster(secrets={"regcred": None}))
    (finding,) = pull_secrets.check(container(PRIVATE, secrets=("regcred",)), facts, DEFAULT_POLICY)
    assert finding.reason is Reason.SECRET_IGNORED
    assert 'imagePullSecret "regcred" does not exist in namespace shop' in finding.message
    # the fix names the key the kubelet's keyring matches for this image: its registry host, in every output
    assert "kubectl create secret docker-registry regcred -n shop --docker-server=registry.example.com" in finding.hint


def test_service_account_secrets_are_used_for_templates() -> None:
    account = ServiceAccountFacts("shop", "builder", ("sa-cred",))
    facts = Facts(cluster=cluster(service_account=account, secrets={"sa-cred": None}))
    (finding,) = pull_secrets.check(container(PRIVATE, account="builder"), facts, DEFAULT_POLICY)
    assert '"sa-cred" (from its ServiceAccount) does not exist' in finding.message


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (SecretFacts("shop", "s", "Opaque", {"x": "eA=="}), "cannot be used"),
        (SecretFacts("shop", "s", "", {}), "cannot be used (its type is not a pull secret type"),
        (SecretFacts("shop", "s", "kubernetes.io/dockerconfigjson", {}), "missing or empty"),
        (SecretFacts("shop", "s", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": "!!!"}), "not valid base64"),
        (
            SecretFacts("shop", "s", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": "bm90IGpzb24="}),
            "malformed",
        ),
    ],
)
def test_unusable_secrets(secret: SecretFacts, problem: str) -> None:
    facts = Facts(cluster=cluster(secrets={"s": secret}))
    (finding,) = pull_secrets.check(container(PRIVATE, secrets=("s",)), facts, DEFAULT_POLICY)
    assert problem in finding.message
    assert 'imagePullSecret "s"' in finding.message


def test_secret_content_never_appears_in_findings() -> None:
    secret = dockerconfigjson("other", {"elsewhere.example.com": ("robot", "hunter2-secret")})
    facts = Facts(images=registry(LookupStatus.UNAUTHORIZED), cluster=cluster(secrets={"other": secret}))
    (finding,) = pull_secrets.check(container(PRIVATE, secrets=("other",)), facts, DEFAULT_POLICY)
    text = finding.message + finding.hint + repr(finding)
    assert "hunter2" not in text and "robot" not in text


def test_no_entry_for_the_registry_with_an_unauthorized_registry() -> None:
    secret = dockerconfigjson("other", {"elsewhere.example.com": ("u", "p")})
    facts = Facts(images=registry(LookupStatus.UNAUTHORIZED), cluster=cluster(secrets={"other": secret}))
    (finding,) = pull_secrets.check(container(PRIVATE, secrets=("other",)), facts, DEFAULT_POLICY)
    assert finding.reason is Reason.ERR_IMAGE_PULL and not finding.advisory
    assert 'no entry of secret "other" matches it (entries: elsewhere.example.com)' in finding.message
    assert "add an entry for registry.example.com" in finding.hint


def test_no_entry_without_a_registry_answer_is_advisory() -> None:
    secret = dockerconfigjson("other", {"elsewhere.example.com": ("u", "p")})
    facts = Facts(cluster=cluster(secrets={"other": secret}))
    (finding,) = pull_secrets.check(container(PRIVATE, secrets=("other",)), facts, DEFAULT_POLICY)
    assert finding.advisory
    assert "unless the image is public" in finding.hint


def test_public_image_needs_no_matching_entry() -> None:
    secret = dockerconfigjson("other", {"elsewhere.example.com": ("u", "p")})
    facts = Facts(images=registry(LookupStatus.EXISTS), cluster=cluster(secrets={"other": secret}))
    assert pull_secrets.check(container(PRIVATE, secrets=("other",)), facts, DEFAULT_POLICY) == []


def test_matching_keys_follow_the_kubelet_rules() -> None:
    for key in (
        "registry.example.com",
        "https://registry.example.com/v1/",
        "*.example.com",
        "registry.example.com/team",
    ):
        secret = dockerconfigjson("s", {key: ("u", "p")})
        facts = Facts(cluster=cluster(secrets={"s": secret}))
        assert pull_secrets.check(container(PRIVATE, secrets=("s",)), facts, DEFAULT_POLICY) == [], key


def test_rejected_credentials_and_missing_credentials() -> None:
    rejected = Facts(
        images=registry(LookupStatus.UNAUTHORIZED, credentials_sent=True, credential_sources=("secret shop/regcred",)),
        cluster=cluster(),
    )
    (finding,) = pull_secrets.check(container(PRIVATE), rejected, DEFAULT_POLICY)
    assert "registry registry.example.com rejected the credentials of secret shop/regcred" in finding.message
    none = Facts(images=registry(LookupStatus.UNAUTHORIZED), cluster=cluster())
    (finding,) = pull_secrets.check(container(PRIVATE), none, DEFAULT_POLICY)
    assert "unauthorized: registry registry.example.com requires credentials" in finding.message
    assert "add an imagePullSecret for registry.example.com" in finding.hint
    denied = Facts(images=registry(LookupStatus.DENIED, credentials_sent=True, credential_sources=("secret shop/ro",)))
    (finding,) = pull_secrets.check(container(PRIVATE), denied, DEFAULT_POLICY)
    assert "denied the account in secret shop/ro pull access" in finding.message


def test_no_entry_matches_only_when_none_does() -> None:
    other = dockerconfigjson("regcred", {"priv.example": ("u", "p")})
    unmatched = Facts(images=registry(LookupStatus.UNAUTHORIZED), cluster=cluster(secrets={"regcred": other}))
    (finding,) = pull_secrets.check(container(PRIVATE, secrets=("regcred",)), unmatched, DEFAULT_POLICY)
    assert 'no entry of secret "regcred" matches it (entries: priv.example)' in finding.message
    # an entry matched (the lookup names its source) but the registry never let it be presented: not "no entry"
    own = dockerconfigjson("regcred", {"registry.example.com": ("u", "p")})
    unpresented = Facts(
        images=registry(LookupStatus.UNAUTHORIZED, credential_sources=("secret shop/regcred",), detail="odd"),
        cluster=cluster(secrets={"regcred": own}),
    )
    (finding,) = pull_secrets.check(container(PRIVATE, secrets=("regcred",)), unpresented, DEFAULT_POLICY)
    assert "no entry" not in finding.message
    assert "before the credentials of secret shop/regcred could be presented (odd)" in finding.message


def test_withheld_credentials_are_unknown_never_unauthorized() -> None:
    detail = "credentials of secret shop/regcred withheld from registry endpoint http://registry.example.com: rule"
    withheld = Facts(
        images=registry(LookupStatus.WITHHELD, detail=detail, credential_sources=("secret shop/regcred",)),
        cluster=cluster(),
    )
    assert pull_secrets.check(container(PRIVATE), withheld, DEFAULT_POLICY) == []
    (finding,) = image_exists.check(container(PRIVATE), withheld, DEFAULT_POLICY)
    assert finding.unknown and finding.reason is Reason.UNVERIFIED
    assert f"could not verify: {detail}" in finding.message


# --- architecture --------------------------------------------------------------------------------------------


def arch_facts(offered: tuple[Platform, ...], nodes: tuple = (), media_type: str = OCI_INDEX) -> Facts:
    images = registry(LookupStatus.EXISTS, platforms=offered, media_type=media_type)
    return Facts(images=images, cluster=cluster(nodes=nodes) if nodes else ClusterFacts())


def test_node_selector_against_a_single_arch_image() -> None:
    image = container(PRIVATE, selector={"kubernetes.io/arch": "arm64"})
    (finding,) = architecture.check(image, arch_facts((AMD64,)), DEFAULT_POLICY)
    assert finding.reason is Reason.ERR_IMAGE_PULL and not finding.advisory
    assert (
        "has no build for linux/arm64 (from nodeSelector; it offers linux/amd64): no match for platform"
        in finding.message
    )
    assert "kubernetes.io/arch: amd64" in finding.hint


def test_single_platform_manifest_on_another_arch_fails_at_start_not_at_pull() -> None:
    image = container(PRIVATE, selector={"kubernetes.io/arch": "arm64"})
    (finding,) = architecture.check(image, arch_facts((AMD64,), media_type=OCI_MANIFEST), DEFAULT_POLICY)
    assert finding.reason is Reason.CRASH_LOOP_BACK_OFF and not finding.advisory
    assert "is a single-platform linux/amd64 image and the pod may only run on linux/arm64 (from nodeSelector)" in (
        finding.message
    )
    assert "containerd pulls it and the container fails to start with exec format error" in finding.message
    assert "no match for platform" not in finding.message
    same_arch = container(PRIVATE, selector={"kubernetes.io/arch": "amd64"})
    assert architecture.check(same_arch, arch_facts((AMD64,), media_type=OCI_MANIFEST), DEFAULT_POLICY) == ()


def test_affinity_in_and_multi_arch_images() -> None:
    image = container(PRIVATE, affinity=arch_affinity("In", "arm64", "amd64"))
    assert architecture.check(image, arch_facts((AMD64, ARM64)), DEFAULT_POLICY) == ()
    (finding,) = architecture.check(image, arch_facts((Platform("linux", "s390x"),)), DEFAULT_POLICY)
    assert "linux/amd64, linux/arm64" in finding.message and "node affinity" in finding.message


def test_unconstrained_pods_use_the_ready_schedulable_nodes() -> None:
    nodes = (
        node("a1"),
        node("a2"),
        node("r1", "arm64"),
        node("down", "s390x", ready=False),
        node("cordoned", "ppc64le", schedulable=False),
    )
    (finding,) = architecture.check(container(PRIVATE), arch_facts((AMD64,), nodes), DEFAULT_POLICY)
    assert finding.advisory  # some nodes fit: a warning that names the others
    assert "pods on node r1 would fail" in finding.message
    assert "nodeSelector kubernetes.io/arch: amd64" in finding.hint
    assert architecture.check(container(PRIVATE), arch_facts((AMD64, ARM64), nodes), DEFAULT_POLICY) == ()


def test_not_in_affinity_narrows_the_nodes() -> None:
    nodes = (node("a1"), node("r1", "arm64"))
    image = container(PRIVATE, affinity=arch_affinity("NotIn", "arm64"))
    assert architecture.check(image, arch_facts((AMD64,), nodes), DEFAULT_POLICY) == ()


def test_arm64_node_runs_arm_v7_images_as_containerd_does() -> None:
    image = container(PRIVATE, selector={"kubernetes.io/arch": "arm64"})
    assert architecture.check(image, arch_facts((ARM64, Platform("linux", "arm", "v7"))), DEFAULT_POLICY) == ()


def test_no_platform_facts_no_finding() -> None:
    image = container(PRIVATE, selector={"kubernetes.io/arch": "arm64"})
    assert architecture.check(image, Facts(), DEFAULT_POLICY) == ()


# --- neverPull -----------------------------------------------------------------------------------------------

LOCAL = "registry.example.com/team/app:1.0"
PULL_FORM = "registry.example.com/team/app:1.0"


def never(nodes: tuple, **kwargs: object) -> tuple:
    image = container(LOCAL, pull_policy="Never", **kwargs)  # type: ignore[arg-type]
    return tuple(never_pull.check(image, Facts(cluster=cluster(nodes=nodes)), DEFAULT_POLICY))


def test_never_pull_absent_everywhere() -> None:
    (finding,) = never((node("n1", images=("docker.io/library/nginx:1.25",)), node("n2")))
    assert finding.reason is Reason.ERR_IMAGE_NEVER_PULL and not finding.unknown
    assert "on none of the 2 nodes it may run on" in finding.message
    assert "ctr -n k8s.io images import" in finding.hint and "docker load is not enough" in finding.hint


def test_never_pull_present_everywhere_or_on_some() -> None:
    assert never((node("n1", images=(PULL_FORM,)), node("n2", images=(PULL_FORM,)))) == ()
    (finding,) = never((node("n1", images=(PULL_FORM,)), node("n2")))
    assert finding.advisory and "missing on node n2" in finding.message


def test_never_pull_full_image_lists_cannot_confirm() -> None:
    (finding,) = never((node("n1", listed=50), node("n2")))
    assert finding.unknown and "cannot confirm" in finding.message and "maximum of 50 images" in finding.message


def test_never_pull_only_counts_nodes_the_pod_may_use() -> None:
    nodes = (node("a1", images=(PULL_FORM,)), node("r1", "arm64"))
    assert never(nodes, selector={"kubernetes.io/arch": "amd64"}) == ()


@pytest.mark.parametrize(
    ("image", "policy", "expected"),
    [
        ("nginx", None, "Always"),
        ("nginx:latest", None, "Always"),
        ("nginx:1.25", None, "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, None, "IfNotPresent"),
        ("nginx", "Never", "Never"),
    ],
)
def test_pull_policy_defaulting(image: str, policy: str | None, expected: str) -> None:
    assert container(image, pull_policy=policy).effective_pull_policy == expected


def test_never_pull_is_silent_for_other_policies_and_without_cluster() -> None:
    image = container(LOCAL, pull_policy="IfNotPresent")
    assert never_pull.check(image, Facts(cluster=cluster(nodes=(node("n1"),))), DEFAULT_POLICY) == ()
    assert never_pull.check(container(LOCAL, pull_policy="Never"), Facts(), DEFAULT_POLICY) == ()


def test_an_anonymous_pull_denied_says_private_or_missing() -> None:
    """containerd: "pull access denied, repository does not exist or may require authorization"."""
    detail = "insufficient_scope: anonymous pulls may not read this repository, or it does not exist"
    other = dockerconfigjson("regcred", {"priv.example": ("u", "p")})
    denied = Facts(images=registry(LookupStatus.DENIED, detail=detail), cluster=cluster(secrets={"regcred": other}))
    (finding,) = pull_secrets.check(container(PRIVATE, secrets=("regcred",)), denied, DEFAULT_POLICY)
    assert f"registry registry.example.com denied an anonymous pull ({detail})" in finding.message
    assert finding.hint.startswith("check the repository name; if it is private, add an imagePullSecret")
    assert 'no entry of secret "regcred" matches it; entries: priv.example' in finding.hint


def test_a_missing_secret_the_pull_does_not_need_never_denies() -> None:
    """The kubelet skips a secret it cannot find; when the registry serves the image anyway (public, or the node's
    credentials), the pod runs: the finding stays, as an advisory. A malformed secret fails the pull itself."""
    pod = container(PRIVATE, secrets=("regcred",))
    served = Facts(images=registry(LookupStatus.EXISTS), cluster=cluster(secrets={"regcred": None}))
    (finding,) = pull_secrets.check(pod, served, DEFAULT_POLICY)
    assert finding.advisory and finding.reason is Reason.SECRET_IGNORED
    refused = Facts(images=registry(LookupStatus.UNAUTHORIZED), cluster=cluster(secrets={"regcred": None}))
    assert not any(f.advisory for f in pull_secrets.check(pod, refused, DEFAULT_POLICY))
    bad = SecretFacts("shop", "regcred", "kubernetes.io/dockerconfigjson", {".dockerconfigjson": "bm90IGpzb24="})
    malformed = Facts(images=registry(LookupStatus.EXISTS), cluster=cluster(secrets={"regcred": bad}))
    (broken,) = pull_secrets.check(pod, malformed, DEFAULT_POLICY)
    assert not broken.advisory and broken.reason is Reason.ERR_IMAGE_PULL


def test_one_missing_secret_for_two_registries_gets_one_fix_that_writes_both_entries() -> None:
    """Issue 22: two `kubectl create secret docker-registry regcred --docker-server=...` cannot both be run; every
    finding about that secret gets the one command that writes an entry per registry."""
    from dataclasses import replace as with_

    from policies.decide import decide
    from policies.model import Workload

    first = container("registry.a.test/team/web:1.0", secrets=("regcred",))
    second = with_(
        container("registry.b.test/team/api:2.0", secrets=("regcred",)), name="api", pointer="/spec/containers/1/image"
    )
    facts = Facts(cluster=cluster(secrets={"regcred": None}))
    findings = [
        j.finding for j in decide(Workload("Pod", "shop", "p", (first, second)), facts, DEFAULT_POLICY).findings
    ]
    hints = {f.hint for f in findings if f.check == "pullSecrets" and f.secret == "regcred"}
    (hint,) = hints  # one fix, the same for both images
    assert "registry.a.test, registry.b.test" in hint and "kubectl create secret generic regcred -n shop" in hint
    assert '"registry.a.test": {"auth": "BASE64(user:password)"}' in hint and "docker-registry" not in hint

    alone = decide(Workload("Pod", "shop", "p", (first,)), facts, DEFAULT_POLICY).findings
    (single,) = [j.finding.hint for j in alone if j.finding.check == "pullSecrets"]
    assert single == "create it: kubectl create secret docker-registry regcred -n shop --docker-server=registry.a.test"
