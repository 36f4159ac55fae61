"""A pull secret applied together with the workload may not be in the cache yet: the gatherer asks the API server
once before calling it missing."""

from __future__ import annotations

import base64
import json

from policies.config import DEFAULT_POLICY
from policies.model import ContainerImage, ContainerKind, PodContext, Workload
from tests.e2e.cluster import Cluster
from webhook.kube.informers import KubeClusterView, load_api_client
from webhook.review.facts import FactGatherer


def workload(namespace: str, *secrets: str) -> Workload:
    image = ContainerImage.create(
        kind=ContainerKind.CONTAINER,
        name="app",
        image="registry.example.com/app:1",
        pointer="/spec/containers/0/image",
        display_path="spec.containers[0]",
        pod=PodContext(namespace, image_pull_secrets=secrets),
    )
    return Workload("Pod", namespace, "app", (image,))


async def test_cache_misses_are_confirmed_at_the_api_server(cluster: Cluster, namespace: str) -> None:
    config = {"auths": {"registry.example.com": {"auth": base64.b64encode(b"u:p").decode()}}}
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "fresh",
        "-n",
        namespace,
        "--type=kubernetes.io/dockerconfigjson",
        f"--from-literal=.dockerconfigjson={json.dumps(config)}",
    )
    cluster.kubectl("create", "secret", "generic", "notes", "-n", namespace, "--from-literal=text=hello")
    view = KubeClusterView(load_api_client(str(cluster.kubeconfig)))  # never started: every lookup misses
    assert view.secret(namespace, "fresh") is None

    facts = await FactGatherer(None, view).gather(workload(namespace, "fresh", "notes", "absent"), DEFAULT_POLICY)
    secrets = facts.cluster.secrets
    assert secrets["fresh"] is not None and secrets["fresh"].type == "kubernetes.io/dockerconfigjson"
    assert ".dockerconfigjson" in secrets["fresh"].data
    assert secrets["notes"] is not None and secrets["notes"].type == "Opaque"
    assert dict(secrets["notes"].data) == {}  # a non-pull secret's data is not kept
    assert secrets["absent"] is None
    assert await view.confirm_secret(namespace, "absent") is None  # remembered: no second call needed
    assert view._absent
