"""Mirror rewrites against real registries, proven by the real containerd.

- `docker.io` is a plain upstream registry, mapped through hostsDir (the real Docker Hub is never contacted);
- `mirror.test` is docker-registry in proxy (pull-through) mode in front of it;
- `authmirror.test` is an htpasswd (TLS, basic auth) mirror, used by the rule for namespace `secure`;
- `private.test` is a token registry that needs credentials for every pull, and `privmirror.test` a pull-through
  mirror of it with the upstream's admin credentials: anyone may pull through it.

Each rewritten image is pulled by containerd with the same hosts.toml and the same credentials the kubelet would
send for the rewritten reference; each image kept for want of credentials is shown to fail (or, for the private
source, to be served to anyone) when pulled from the mirror.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from policies.config import Policy, parse_policy
from tests.reviews import review
from tests.server import PullguardServer
from tests.support.containerd import ContainerdDaemon, containerd_fixture, write_hosts_dir
from tests.support.faults import refused_port
from tests.support.pushers import push_single_arch
from tests.support.registry import RegistryServer, start_basic_registry, start_proxy_registry, start_token_registry
from webhook.admission.pipeline import Outcome, mutate_body, validate_body
from webhook.kube.view import StaticClusterView
from webhook.registry.client import RegistryClient
from webhook.review.facts import FactGatherer

pytestmark = [pytest.mark.registry]


def map_host(hosts: Path, name: str, url: str, ca_file: Path | None = None) -> None:
    """hosts.toml as a node would have it (containerd 1.6 needs the `[host]` table)."""
    write_hosts_dir(hosts, name, server=url, ca_file=ca_file)


class Registries:
    def __init__(self, upstream: RegistryServer, tmp: Path) -> None:
        self.upstream = upstream
        self.mirror = start_proxy_registry(upstream)
        self.auth_mirror = start_basic_registry()
        self.private = start_token_registry()
        self.private_mirror = start_proxy_registry(self.private, username="admin", password="admin-token-pass")
        self.nginx = push_single_arch(upstream, "library/nginx", "1.27", seed="mirror-nginx-1.27")
        self.busybox = push_single_arch(upstream, "library/busybox", "1.36", seed="mirror-busybox-1.36")
        same = push_single_arch(self.auth_mirror, "library/nginx", "1.27", seed="mirror-nginx-1.27")
        assert same.digest == self.nginx.digest
        self.secret_app = push_single_arch(self.private, "team/secret-app", "1", seed="mirror-secret-app")
        self.hosts = tmp / "certs.d"
        map_host(self.hosts, "docker.io", upstream.url)
        self._map_mirrors(self.hosts)
        map_host(self.hosts, "private.test", self.private.url)
        # The webhook and the nodes cannot reach Docker Hub; the mirror still can (its remote is set directly).
        self.down_hosts = tmp / "down.d"
        map_host(self.down_hosts, "docker.io", f"http://127.0.0.1:{refused_port()}")
        self._map_mirrors(self.down_hosts)

    def _map_mirrors(self, hosts: Path) -> None:
        map_host(hosts, "mirror.test", self.mirror.url)
        map_host(hosts, "authmirror.test", self.auth_mirror.url, self.auth_mirror.ca_file)
        map_host(hosts, "privmirror.test", self.private_mirror.url)

    def stop(self) -> None:
        for server in (self.private_mirror, self.private, self.auth_mirror, self.mirror):
            server.stop()

    def policy(self, hosts: Path | None = None) -> str:
        return f"""
registry: {{hostsDir: {json.dumps(str(hosts or self.hosts))}, timeoutSeconds: 5}}
mirrors:
  - {{registry: docker.io, mirror: authmirror.test, namespaces: [secure]}}
  - {{registry: docker.io, mirror: mirror.test}}
  - {{registry: private.test, mirror: privmirror.test}}
"""


@pytest.fixture(scope="module")
def registries(plain_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    found = Registries(plain_registry, tmp_path_factory.mktemp("mirrors"))
    yield found
    found.stop()


@pytest.fixture(scope="module")
def containerd() -> Iterator[ContainerdDaemon]:
    yield from containerd_fixture()


def pull_secret(name: str, namespace: str, host: str, user: str, password: str) -> dict[str, Any]:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = json.dumps({"auths": {host: {"auth": auth}}})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace},
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
    }


def pod(namespace: str, *images: str, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]}
    if secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in secrets]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


CLUSTER = [
    pull_secret("mirror-cred", "secure", "authmirror.test", "pullguard", "pullguard-basic-pass"),
    pull_secret("source-cred", "apps", "private.test", "reader", "reader-token-pass"),
    pull_secret("wrong-cred", "apps", "private.test", "reader", "not-the-password"),
]


def mutate(obj: dict[str, Any], policy: Policy) -> Outcome:
    async def run() -> Outcome:
        client = RegistryClient()
        try:
            gatherer = FactGatherer(client, StaticClusterView(CLUSTER))
            return await mutate_body(json.dumps(review(obj)).encode(), policy, gatherer)
        finally:
            await client.close()

    return asyncio.run(run())


def applied(obj: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    answer = outcome.answer["response"]
    if "patch" not in answer:
        return obj
    operations = json.loads(base64.b64decode(answer["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), operations)
    return result


def images_of(obj: dict[str, Any]) -> list[str]:
    return [c["image"] for c in obj["spec"]["containers"]]


def originals(obj: dict[str, Any]) -> dict[str, str]:
    text = obj["metadata"].get("annotations", {}).get("pullguard.io/original-images", "{}")
    result: dict[str, str] = json.loads(text)
    return result


def test_public_images_move_to_the_pull_through_mirror_and_containerd_pulls_them(
    registries: Registries, containerd: ContainerdDaemon
) -> None:
    policy = parse_policy(registries.policy())
    pinned = f"nginx@{registries.nginx.digest}"
    obj = pod("default", "nginx:1.27", pinned, f"docker.io/library/nginx:1.27@{registries.nginx.digest}")
    outcome = mutate(obj, policy)
    rewritten = applied(obj, outcome)
    assert images_of(rewritten) == [
        "mirror.test/library/nginx:1.27",
        f"mirror.test/library/nginx@{registries.nginx.digest}",
        f"mirror.test/library/nginx:1.27@{registries.nginx.digest}",
    ]
    assert originals(rewritten) == {f"spec.containers[{i}]": image for i, image in enumerate(images_of(obj))}
    assert "warnings" not in outcome.answer["response"]
    for image in images_of(rewritten):
        pulled = containerd.pull(image, hosts_dir=registries.hosts)
        assert pulled.ok, pulled.output
    again = mutate(rewritten, policy)  # reinvocation: nothing more to do
    assert "patch" not in again.answer["response"] and "warnings" not in again.answer["response"]


def test_an_image_the_mirror_lacks_is_kept_with_a_warning(registries: Registries) -> None:
    obj = pod("default", "nginx:9.9", "nginx:1.27")
    outcome = mutate(obj, parse_policy(registries.policy()))
    assert images_of(applied(obj, outcome)) == ["nginx:9.9", "mirror.test/library/nginx:1.27"]
    assert outcome.answer["response"]["warnings"] == [
        "pullguard: kept docker.io/library/nginx:9.9: mirror mirror.test has no such manifest: "
        "it is pulled from its source"
    ]


def test_upstream_down_but_the_mirror_has_it_is_rewritten(registries: Registries, containerd: ContainerdDaemon) -> None:
    obj = pod("default", "busybox:1.36")
    outcome = mutate(obj, parse_policy(registries.policy(registries.down_hosts)))
    rewritten = applied(obj, outcome)
    assert images_of(rewritten) == ["mirror.test/library/busybox:1.36"]
    assert containerd.pull("busybox:1.36", hosts_dir=registries.down_hosts).outcome != "exists"  # source is down
    pulled = containerd.pull(images_of(rewritten)[0], hosts_dir=registries.down_hosts)
    assert pulled.ok, pulled.output


def test_a_mirror_that_wants_credentials_the_pod_lacks_is_not_used(
    registries: Registries, containerd: ContainerdDaemon
) -> None:
    obj = pod("secure", "nginx:1.27")
    outcome = mutate(obj, parse_policy(registries.policy()))
    assert images_of(applied(obj, outcome)) == ["nginx:1.27"]
    (warning,) = outcome.answer["response"]["warnings"]
    assert warning.startswith(
        "pullguard: kept docker.io/library/nginx:1.27: mirror authmirror.test needs credentials the pod has no pull"
    )
    # what the kubelet would have hit after the rewrite:
    refused = containerd.pull("authmirror.test/library/nginx:1.27", hosts_dir=registries.hosts)
    assert refused.outcome == "unauthorized", refused.output


def test_the_mirror_is_used_with_the_pods_secret_for_the_mirror_host(
    registries: Registries, containerd: ContainerdDaemon
) -> None:
    obj = pod("secure", "nginx:1.27", secrets=("mirror-cred",))
    outcome = mutate(obj, parse_policy(registries.policy()))
    rewritten = applied(obj, outcome)
    assert images_of(rewritten) == ["authmirror.test/library/nginx:1.27"]
    pulled = containerd.pull(images_of(rewritten)[0], hosts_dir=registries.hosts, user="pullguard:pullguard-basic-pass")
    assert pulled.ok, pulled.output


def test_a_private_source_image_is_not_exposed_through_an_anonymous_mirror(
    registries: Registries, containerd: ContainerdDaemon
) -> None:
    image = "private.test/team/secret-app:1"
    for secrets in [(), ("wrong-cred",)]:
        obj = pod("apps", image, secrets=secrets)
        outcome = mutate(obj, parse_policy(registries.policy()))
        assert images_of(applied(obj, outcome)) == [image]
        (warning,) = outcome.answer["response"]["warnings"]
        assert warning.startswith(f"pullguard: kept {image}: the source private.test"), warning
        assert "the mirror would expose it" in warning
    assert containerd.pull(image, hosts_dir=registries.hosts).outcome in ("unauthorized", "denied")
    # why: the pull-through mirror serves it to anyone
    exposed = containerd.pull("privmirror.test/team/secret-app:1", hosts_dir=registries.hosts)
    assert exposed.ok, exposed.output


def test_a_private_source_image_moves_when_the_pods_own_secret_is_accepted_there(
    registries: Registries, containerd: ContainerdDaemon
) -> None:
    obj = pod("apps", "private.test/team/secret-app:1", secrets=("source-cred",))
    outcome = mutate(obj, parse_policy(registries.policy()))
    rewritten = applied(obj, outcome)
    assert images_of(rewritten) == ["privmirror.test/team/secret-app:1"]
    assert containerd.pull(
        "private.test/team/secret-app:1", hosts_dir=registries.hosts, user="reader:reader-token-pass"
    ).ok
    pulled = containerd.pull(images_of(rewritten)[0], hosts_dir=registries.hosts)  # no secret matches the mirror
    assert pulled.ok, pulled.output


def test_mutating_then_validating_judges_the_rewritten_image(registries: Registries) -> None:
    policy = parse_policy(registries.policy() + "checks: {imageExists: {mode: enforce}}\n")
    obj = pod("default", "nginx:1.27")
    rewritten = applied(obj, mutate(obj, policy))

    async def validate() -> Any:
        client = RegistryClient()
        try:
            gatherer = FactGatherer(client, StaticClusterView(CLUSTER))
            outcome = await validate_body(json.dumps(review(rewritten)).encode(), policy, gatherer)
            return outcome.answer["response"]
        finally:
            await client.close()

    answer = asyncio.run(validate())
    assert answer["allowed"] is True and "warnings" not in answer


def test_the_served_webhook_warns_logs_and_counts(
    registries: Registries, pullguard_factory: Callable[..., PullguardServer]
) -> None:
    server = pullguard_factory(registries.policy(), offline=False)
    body = review(pod("default", "nginx:9.9", "nginx:1.27"), uid="mirror-log")
    answer = server.admit(body, path="/mutate")
    assert answer["warnings"] == [
        "pullguard: kept docker.io/library/nginx:9.9: mirror mirror.test has no such manifest: "
        "it is pulled from its source"
    ]
    lines = [json.loads(line) for line in server.logs().splitlines() if '"mirror-log"' in line]
    (entry,) = lines
    assert entry["decision"] == "patched"
    assert entry["patched"] == [
        {"path": "/spec/containers/1/image", "from": "nginx:1.27", "to": "mirror.test/library/nginx:1.27"}
    ]
    assert entry["mirrorKept"] == [
        {
            "path": "/spec/containers/0/image",
            "image": "nginx:9.9",
            "mirror": "mirror.test",
            "reason": "mirrorMissing",
            "detail": "mirror mirror.test has no such manifest",
        }
    ]
    metrics = server.client().get("/metrics").text.splitlines()
    assert 'pullguard_mirror_rewrites_total{mirror="mirror.test",outcome="rewritten"} 1.0' in metrics
    assert 'pullguard_mirror_rewrites_total{mirror="mirror.test",outcome="mirrorMissing"} 1.0' in metrics


def test_check_mutate_prints_the_rewrites_and_judges_the_rewritten_objects(
    registries: Registries, tmp_path: Path
) -> None:
    """Docker Hub is down for the nodes: without --mutate the image cannot be verified; with it the image moves to
    the mirror and the rewritten object is judged (and passes); the image the mirror lacks is kept, with why."""
    manifest = tmp_path / "deploy.yaml"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "busybox:1.36"}]}}},
    }
    missing = copy.deepcopy(deployment)
    missing["metadata"]["name"] = "old"
    missing["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:9.9"
    manifest.write_text(yaml.safe_dump_all([deployment, missing]))
    config = tmp_path / "policy.yaml"
    config.write_text(registries.policy(registries.down_hosts) + "checks: {imageExists: {mode: enforce}}\n")
    command = [sys.executable, "-m", "webhook.cli", "check", "-f", str(manifest), "--config", str(config)]
    command += ["--format", "json", "--progress", "off"]

    def findings(done: subprocess.CompletedProcess[str]) -> list[tuple[str, str, str, bool]]:
        found = json.loads(done.stdout)["findings"]
        return sorted((f["check"], f["name"], f["image"], f["reason"] == "Unverified") for f in found)

    plain = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert findings(plain) == [
        ("imageExists", "old", "nginx:9.9", True),
        ("imageExists", "web", "busybox:1.36", True),
    ], plain.stderr
    mutated = subprocess.run([*command, "--mutate"], capture_output=True, text=True, timeout=60, check=False)
    assert mutated.returncode == 0, mutated.stderr
    assert findings(mutated) == [
        ("imageExists", "old", "nginx:9.9", True),  # kept: Docker Hub is still down for it
        ("mirror", "old", "nginx:9.9", False),
    ], mutated.stderr
    lines = [line.split(": ", 2)[1:] for line in mutated.stderr.splitlines() if "deploy.yaml:" in line]
    assert [[where.rsplit(":", 1)[0], what] for where, what in lines] == [
        [str(manifest), "spec.template.spec.containers[0]: rewrite busybox:1.36 -> mirror.test/library/busybox:1.36"],
        [
            str(manifest),
            "spec.template.spec.containers[0]: kept nginx:9.9 (mirrorMissing): mirror mirror.test has no such manifest",
        ],
    ]
