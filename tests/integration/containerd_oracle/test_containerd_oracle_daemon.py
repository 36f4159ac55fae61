"""Proves the containerd oracle (tests/support/containerd.py) against real registries, and records what containerd
1.6 really does with its configuration: a daemon that runs only what a pull needs and fetches again on every pull,
and how hosts.toml sends pulls (and credentials) to mirrors and servers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.containerd_oracle.helpers import (
    PRIV,
    basic_user,
    plain_hosts,
)
from tests.support.containerd import (
    ContainerdDaemon,
    HostEntry,
    start_containerd,
    write_hosts_dir,
)
from tests.support.image_model import PushedImage
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.registry]


# --------------------------------------------------------------------------------------------
# the daemon
# --------------------------------------------------------------------------------------------


def test_daemon_runs_only_what_a_pull_needs(containerd: ContainerdDaemon) -> None:
    plugins = containerd.ctr("plugins", "ls").stdout
    loaded = {tuple(line.split()[:2]) for line in plugins.splitlines()[1:] if line.split()[-1] == "ok"}
    assert ("io.containerd.snapshotter.v1", "native") in loaded
    assert ("io.containerd.content.v1", "content") in loaded
    assert not {name for kind, name in loaded if kind == "io.containerd.grpc.v1"} & {"cri", "tasks"}
    assert not {name for kind, name in loaded if kind == "io.containerd.snapshotter.v1"} - {"native"}
    assert len(str(containerd.address)) < 100
    assert 'content_sharing_policy = "isolated"' in containerd.config_file.read_text()


def test_every_pull_fetches_again(
    containerd: ContainerdDaemon, plain_registry: RegistryServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    """ "isolated" content + a namespace per pull: the second pull downloads the layer again (with the default
    "shared" policy it only sent the manifest HEAD). ctr prints the HTTP dump: the client does the requests."""
    hosts_dir = plain_hosts(tmp_path, plain_registry)
    layer = images["multi"].manifest.children[0].layers[0].digest
    first = containerd.pull(images["multi"].reference, hosts_dir=hosts_dir, http_dump=True, keep=True)
    second = containerd.pull(images["multi"].reference, hosts_dir=hosts_dir, http_dump=True)
    assert (first.outcome, second.outcome) == ("exists", "exists")
    assert first.namespace != second.namespace
    assert layer in containerd.blob_digests(first.namespace)
    for result in (first, second):
        assert f"GET /v2/oracle/multi/blobs/{layer}" in result.output
    assert containerd.blob_digests(second.namespace) == []  # removed after the pull


def test_shared_content_would_answer_from_the_local_store(
    containerd: ContainerdDaemon,  # for its skip when containerd is not installed
    plain_registry: RegistryServer,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    """Why the oracle runs "isolated": with containerd's default a fresh namespace still reuses the blobs another
    namespace fetched, so only the manifest HEAD reaches the registry."""
    hosts_dir = plain_hosts(tmp_path, plain_registry)
    with start_containerd(content_sharing_policy="shared") as shared:
        first = shared.pull(images["multi"].reference, hosts_dir=hosts_dir, http_dump=True, keep=True)
        second = shared.pull(images["multi"].reference, hosts_dir=hosts_dir, http_dump=True)
    assert (first.outcome, second.outcome) == ("exists", "exists")
    assert "GET /v2/oracle/multi/blobs/" in first.output
    assert re.findall(r'msg="}?(HEAD|GET) ', second.output) == ["HEAD"]


# --------------------------------------------------------------------------------------------
# hosts.toml behaviour
# --------------------------------------------------------------------------------------------


def test_credentials_are_sent_to_hosts_toml_hosts(
    containerd: ContainerdDaemon, basic_registry: RegistryServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    """The image is priv.example/...; its hosts.toml sends it to the basic-auth registry, and ctr's --user
    (like the kubelet's credentials) is used there."""
    entry = HostEntry(basic_registry.url, ca_file=basic_registry.ca_file)
    hosts_dir = write_hosts_dir(tmp_path, PRIV, [entry], server=f"https://{PRIV}")
    reference = f"{PRIV}/oracle/basic:1"
    assert containerd.pull(reference, hosts_dir=hosts_dir, user=basic_user(basic_registry)).outcome == "exists"
    anonymous = containerd.pull(reference, hosts_dir=hosts_dir)
    # the first non-404 error wins: the mirror's 401, not the server's refused :443
    assert anonymous.outcome == "unauthorized"
    assert f"pulling from host {basic_registry.host} failed" in anonymous.error


def test_a_mirror_404_falls_through_to_the_server(
    containerd: ContainerdDaemon,
    plain_registry: RegistryServer,
    basic_registry: RegistryServer,
    images: dict[str, PushedImage],
    tmp_path: Path,
) -> None:
    """oracle/basic exists only on the basic registry: the plain mirror answers 404, then the server serves it."""
    mirror = HostEntry(plain_registry.url)
    hosts_dir = write_hosts_dir(tmp_path, PRIV, [mirror], server=basic_registry.url, ca_file=basic_registry.ca_file)
    result = containerd.pull(
        f"{PRIV}/oracle/basic:1", hosts_dir=hosts_dir, user=basic_user(basic_registry), http_dump=True
    )
    assert result.outcome == "exists", result.output
    assert f'trying next host - response was http.StatusNotFound" host="{plain_registry.host}"' in result.output
    assert "?ns=priv.example" in result.output  # mirrors are asked with the ns query parameter


def test_containerd_16_ignores_a_hosts_toml_without_host_tables(
    containerd: ContainerdDaemon, plain_registry: RegistryServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    """containerd 1.6 logs "failed to decode hosts.toml" error="invalid `host` tree" and uses the default endpoint
    (https://priv.example:443); an empty [host] table makes the same file work (2.x needs no table)."""
    reference = f"{PRIV}/oracle/multi:1"
    bare = write_hosts_dir(tmp_path / "bare", PRIV, server=plain_registry.url, empty_host_table=False)
    result = containerd.pull(reference, hosts_dir=bare)
    assert result.outcome == "refused"
    assert "invalid `host` tree" in result.output
    assert 'Head "https://priv.example/v2/oracle/multi/manifests/1"' in result.error
    fixed = write_hosts_dir(tmp_path / "fixed", PRIV, server=plain_registry.url)
    assert (fixed / PRIV / "hosts.toml").read_text().endswith("\n[host]\n")
    assert containerd.pull(reference, hosts_dir=fixed).outcome == "exists"
