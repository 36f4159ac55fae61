"""Mirror rewrites through the real API server: pullguard registered as mutating (reinvocationPolicy: IfNeeded)
and validating webhook, `kubectl apply --dry-run=server -o yaml` showing what would be stored.

`docker.io` is a plain registry on loopback (mapped through hostsDir: the real Docker Hub is never contacted),
`mirror.test` a pull-through mirror of it, `gone.test` a registry that refuses connections (the upstream is down)
whose images the mirror still serves, `private.test` a token registry that wants credentials and
`privmirror.test` an anonymous pull-through mirror of it. pullguard has a cluster view (namespace labels:
the `gone.test` rule selects namespaces by label, and a namespace can opt out).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import Cluster
from tests.e2e.cluster_scenarios import deployment, map_host
from tests.e2e.webhook_harness import PullguardWebhook, pullguard_webhook
from tests.support import fixtures
from tests.support.faults import refused_port
from tests.support.polling import eventually
from tests.support.pushers import push_single_arch
from tests.support.registry import start_plain_registry, start_proxy_registry, start_token_registry

pytestmark = [pytest.mark.timeout(180), pytest.mark.registry]

ANNOTATION = "pullguard.io/original-images"
NO_GONE = "pullguard.e2e/no-gone-mirror"  # namespaces with this label are outside the gone.test rule


@pytest.fixture(scope="module")
def hosts_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    fixtures.require_docker_registry()
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(start_plain_registry())
        mirror = stack.enter_context(start_proxy_registry(upstream))
        private = stack.enter_context(start_token_registry())
        private_mirror = stack.enter_context(
            start_proxy_registry(private, username="admin", password="admin-token-pass")
        )
        push_single_arch(upstream, "library/nginx", "1.27", seed="e2e-mirror-nginx")
        push_single_arch(upstream, "library/busybox", "1.36", seed="e2e-mirror-busybox")
        push_single_arch(private, "team/secret-app", "1", seed="e2e-mirror-secret")
        hosts = tmp_path_factory.mktemp("mirror-e2e") / "certs.d"
        map_host(hosts, "docker.io", upstream.url)
        map_host(hosts, "mirror.test", mirror.url)
        map_host(hosts, "gone.test", f"http://127.0.0.1:{refused_port()}")
        map_host(hosts, "private.test", private.url)
        map_host(hosts, "privmirror.test", private_mirror.url)
        yield hosts


@pytest.fixture(scope="module")
def hook(cluster: Cluster, hosts_dir: Path) -> Iterator[PullguardWebhook]:
    policy = f"""
mode: warn
registry: {{hostsDir: {json.dumps(str(hosts_dir))}, timeoutSeconds: 3}}
mirrors:
  - {{registry: docker.io, mirror: mirror.test}}
  - registry: gone.test
    mirror: mirror.test
    namespaces: {{matchExpressions: [{{key: {NO_GONE}, operator: DoesNotExist}}]}}
  - {{registry: private.test, mirror: privmirror.test}}
"""
    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig)]
    with pullguard_webhook(cluster, policy=policy, offline=False, extra_args=kubeconfig) as started:
        yield started


def apply(cluster: Cluster, manifest: dict[str, Any], *args: str) -> tuple[dict[str, Any], list[str]]:
    """`kubectl apply -f - -o yaml` (with `args`): the object as the API server would store it, and the warnings."""
    done = cluster.kubectl("apply", "-f", "-", "-o", "yaml", *args, input=json.dumps(manifest))
    warnings = [line for line in done.stderr.splitlines() if line.startswith("Warning: pullguard: ")]
    stored: dict[str, Any] = yaml.safe_load(done.stdout)
    return stored, warnings


def image_of(obj: dict[str, Any]) -> str:
    image: str = obj["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_dry_run_shows_the_rewritten_image_and_the_annotation(
    cluster: Cluster, namespace: str, hook: PullguardWebhook
) -> None:
    stored, warnings = apply(cluster, deployment(namespace, "nginx:1.27"), "--dry-run=server")
    assert image_of(stored) == "mirror.test/library/nginx:1.27"
    assert json.loads(stored["metadata"]["annotations"][ANNOTATION]) == {
        "spec.template.spec.containers[0]": "nginx:1.27"
    }
    assert warnings == []  # the validating webhook judged the rewritten image: the mirror has it


def test_a_mirror_lacking_the_image_keeps_the_original_with_a_warning(
    cluster: Cluster, namespace: str, hook: PullguardWebhook
) -> None:
    stored, warnings = apply(cluster, deployment(namespace, "nginx:9.9"), "--dry-run=server")
    assert image_of(stored) == "nginx:9.9" and ANNOTATION not in stored["metadata"].get("annotations", {})
    assert (
        "Warning: pullguard: kept docker.io/library/nginx:9.9: mirror mirror.test has no such manifest: "
        "it is pulled from its source"
    ) in warnings


def test_upstream_down_but_the_mirror_has_it_is_rewritten_and_allowed(
    cluster: Cluster, namespace: str, hook: PullguardWebhook
) -> None:
    stored, warnings = apply(cluster, deployment(namespace, "gone.test/library/busybox:1.36"), "--dry-run=server")
    assert image_of(stored) == "mirror.test/library/busybox:1.36"
    assert warnings == []


def test_a_private_upstream_image_is_not_exposed(cluster: Cluster, namespace: str, hook: PullguardWebhook) -> None:
    stored, warnings = apply(cluster, deployment(namespace, "private.test/team/secret-app:1"), "--dry-run=server")
    assert image_of(stored) == "private.test/team/secret-app:1"
    assert any(
        w.startswith(
            "Warning: pullguard: kept private.test/team/secret-app:1: the source private.test needs credentials"
        )
        and "the mirror would expose it" in w
        for w in warnings
    ), warnings


def test_no_double_prefix_and_no_spurious_rollout(cluster: Cluster, namespace: str, hook: PullguardWebhook) -> None:
    manifest = deployment(namespace, "nginx:1.27", name="steady")
    created, _ = apply(cluster, manifest)
    assert image_of(created) == "mirror.test/library/nginx:1.27"
    generation = created["metadata"]["generation"]
    again, _ = apply(cluster, manifest)  # re-applying the same manifest: the same rewrite, nothing changes
    assert image_of(again) == "mirror.test/library/nginx:1.27"
    assert again["metadata"]["generation"] == generation
    assert json.loads(again["metadata"]["annotations"][ANNOTATION]) == {
        "spec.template.spec.containers[0]": "nginx:1.27"
    }
    # A manifest that already names the mirror (and a pod made from the rewritten template) is left alone.
    mirrored, _ = apply(cluster, deployment(namespace, "mirror.test/library/nginx:1.27", name="m"), "--dry-run=server")
    assert image_of(mirrored) == "mirror.test/library/nginx:1.27"
    assert ANNOTATION not in mirrored["metadata"].get("annotations", {})
    template = created["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "steady-1", "namespace": namespace, "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    }
    stored_pod, _ = apply(cluster, pod, "--dry-run=server")
    assert stored_pod["spec"]["containers"][0]["image"] == "mirror.test/library/nginx:1.27"
    assert ANNOTATION not in stored_pod["metadata"].get("annotations", {})


def test_a_namespace_label_opts_out(cluster: Cluster, namespace: str, hook: PullguardWebhook) -> None:
    cluster.kubectl("label", "namespace", namespace, "pullguard.io/rewrite=false")

    def kept() -> dict[str, Any] | None:
        stored, warnings = apply(cluster, deployment(namespace, "nginx:1.27"), "--dry-run=server")
        assert warnings == []  # deliberate: logged and counted, never warned about
        return stored if image_of(stored) == "nginx:1.27" else None  # until pullguard's cache has the label

    stored = eventually(kept, "the opt-out label to reach pullguard", timeout=20)
    assert ANNOTATION not in stored["metadata"].get("annotations", {})


def test_a_rule_selects_namespaces_by_label(cluster: Cluster, namespace: str, hook: PullguardWebhook) -> None:
    image = "gone.test/library/busybox:1.36"
    stored, _ = apply(cluster, deployment(namespace, image), "--dry-run=server")
    assert image_of(stored) == "mirror.test/library/busybox:1.36"  # selected: the label is absent
    cluster.kubectl("label", "namespace", namespace, f"{NO_GONE}=yes")
    eventually(
        lambda: image_of(apply(cluster, deployment(namespace, image), "--dry-run=server")[0]) == image,
        "the namespace label to take the namespace out of the rule",
        timeout=20,
    )
