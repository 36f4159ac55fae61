"""The world of the kubelet differential table (test_kubelet_parity.py): one real node with node credentials (a
credential provider plugin for one registry, a docker config.json for another), five loopback registries, and
pullguard's policy pointing at the very same hosts.toml directory, plugin config, plugin binary and config.json.

| registry | what it is | holds |
| --- | --- | --- |
| `public` | plain HTTP | `app:1.0` (runnable), `arm64/app:1.0` (linux/arm64 only), `team/app:1.0` (a mirror's copy) |
| `source` | plain HTTP, a mirror rule's source | nothing |
| `plugin` | htpasswd; the node's credential provider plugin answers for it | `private/app:1.0` |
| `nodefile` | htpasswd; the node's `config.json` has its credentials | `private/app:1.0` |
| `locked` | htpasswd; nothing on the node holds its credentials | `private/app:1.0` |
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.node import Node
from tests.e2e.node_containerd import tls_hosts_toml
from tests.e2e.node_images import build_runnable_image, push_runnable
from tests.support.credential_provider_plugin import install_plugin, write_provider_config
from tests.support.pushers import push_arm64_only_index
from tests.support.registry import RegistryServer, start_basic_registry, start_plain_registry

PLUGIN = "parity-credential-provider"
PRELOADED = "preloaded/app:1.0"  # imported onto the node (an air-gapped `ctr import`), in no registry
PRELOADED_PRIVATE = "preloaded/private:1.0"


@dataclass(frozen=True)
class ParityWorld:
    node: Node
    public: RegistryServer
    source: RegistryServer
    plugin: RegistryServer
    nodefile: RegistryServer
    locked: RegistryServer
    policy: Path  # pullguard's policy: enforce, the node's hosts.toml dir, its plugin and its config.json

    def image(self, registry: str, name: str) -> str:
        server: RegistryServer = getattr(self, registry)
        return f"{server.host}/{name}"


def _auth(registry: RegistryServer) -> str:
    assert registry.username is not None and registry.password is not None
    return base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()


@contextlib.contextmanager
def parity_world(kubelet_node: Node, workdir: Path) -> Iterator[ParityWorld]:
    """The registries, images and a node of its own on the session node's control plane (stopped at the end)."""
    with contextlib.ExitStack() as stack:
        public = stack.enter_context(start_plain_registry())
        source = stack.enter_context(start_plain_registry())
        plugin, nodefile, locked = (stack.enter_context(start_basic_registry()) for _ in range(3))
        push_runnable(public, "app", "1.0")
        push_runnable(public, "team/app", "1.0")
        push_arm64_only_index(public, "arm64/app", "1.0")
        for private in (plugin, nodefile, locked):
            push_runnable(private, "private/app", "1.0")

        bin_dir = workdir / "plugins"
        install_plugin(bin_dir, PLUGIN)
        assert plugin.username is not None and plugin.password is not None
        plugin_env = {"PLUGIN_USERNAME": plugin.username, "PLUGIN_PASSWORD": plugin.password}
        provider_config = write_provider_config(
            workdir / "credential-providers.yaml", name=PLUGIN, match_images=[plugin.host], env=plugin_env
        )
        docker_config = json.dumps({"auths": {nodefile.host: {"auth": _auth(nodefile)}}}).encode()
        hosts: dict[str, str | None] = {public.host: None, source.host: None}
        for basic in (plugin, nodefile, locked):
            assert basic.ca_file is not None
            hosts[basic.host] = tls_hosts_toml(basic.host, basic.ca_file)
        node = stack.enter_context(
            Node.start(
                kubelet_node.cluster,
                name="parity-node",
                registries_hosts=hosts,
                credential_provider_config=provider_config,
                credential_provider_bin_dir=bin_dir,
                node_docker_config=docker_config,
            )
        )
        node.preload_image(build_runnable_image("parity-preloaded"), f"{public.host}/{PRELOADED}")
        node.preload_image(build_runnable_image("parity-preloaded-private"), f"{locked.host}/{PRELOADED_PRIVATE}")
        node.wait_for_image(f"{public.host}/{PRELOADED}")  # the kubelet lists images every 30 s
        node.wait_for_image(f"{locked.host}/{PRELOADED_PRIVATE}")

        node_config_json = workdir / "node-config.json"  # what pullguard holds for the nodes' config.json
        node_config_json.write_bytes(docker_config)
        assert node.containerd is not None
        policy = {
            "mode": "enforce",
            "failurePolicy": "open",
            "registry": {"hostsDir": str(node.containerd.certs_d), "timeoutSeconds": 5},
            "mirrors": [{"registry": source.host, "mirror": public.host}],
            "nodeCredentials": {
                "dockerConfigFiles": [str(node_config_json)],
                "credentialProviderConfig": str(provider_config),
                "credentialProviderBinDir": str(bin_dir),
            },
        }
        policy_path = workdir / "policy.yaml"
        policy_path.write_text(json.dumps(policy))
        yield ParityWorld(node, public, source, plugin, nodefile, locked, policy_path)
