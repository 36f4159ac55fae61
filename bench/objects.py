"""The cluster's worth of objects of the scale point (`bench/scale.py`), created through the API server.

Per 100 pull Secrets one Namespace (`team-K`, 4 labels) holding them; pull Secrets (`kubernetes.io/dockerconfigjson`,
one registry each, 50 registries); ServiceAccounts, each naming two pull Secrets of its namespace; Nodes with 7
labels, a Ready condition, node info and 30 `status.images` entries of 2 names each (130 distinct images across
nodes). `populate` grows a cluster from one size to the next, so one control plane serves every point.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from bench.processes import Cluster, api_client

SECRETS_PER_NAMESPACE = 100


@dataclass(frozen=True)
class Size:
    secrets: int
    service_accounts: int
    nodes: int

    @property
    def namespaces(self) -> int:
        if not self.secrets:
            return 1 if self.service_accounts else 0  # team-0 holds them
        return -(-self.secrets // SECRETS_PER_NAMESPACE)

    def label(self) -> str:
        return f"{self.secrets}/{self.service_accounts}/{self.nodes}"


EMPTY = Size(0, 0, 0)


def namespace_of(secret: int) -> str:
    return f"team-{secret // SECRETS_PER_NAMESPACE}"


def namespace(k: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": f"team-{k}",
            "labels": {"team": f"team-{k}", "env": "prod" if k % 2 else "dev", "tier": f"tier-{k % 3}", "app": "bench"},
        },
    }


def dockerconfig(i: int) -> str:
    auth = base64.b64encode(f"user{i}:password-{i:08d}".encode()).decode()
    config = {
        "auths": {
            f"registry{i % 50}.example.com": {"username": f"user{i}", "password": f"password-{i:08d}", "auth": auth}
        }
    }
    return base64.b64encode(json.dumps(config).encode()).decode()


def secret(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"pull-{i}", "namespace": namespace_of(i), "labels": {"app": "bench"}},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": dockerconfig(i)},
    }


def service_account(i: int, secrets: int) -> dict[str, Any]:
    first = (i * 2) % max(secrets, 2)  # even: it and the next one share a namespace
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": f"sa-{i}", "namespace": namespace_of(first), "labels": {"app": "bench"}},
        "imagePullSecrets": [{"name": f"pull-{first}"}, {"name": f"pull-{first + 1}"}],
    }


def node(i: int) -> dict[str, Any]:
    arch = "arm64" if i % 4 == 0 else "amd64"
    images = [
        {
            "names": [
                f"registry{j % 50}.example.com/team/app-{j}@sha256:{j:064x}",
                f"registry{j % 50}.example.com/team/app-{j}:v{j}",
            ],
            "sizeBytes": 10_000_000 + j,
        }
        for j in range(i % 100, i % 100 + 30)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"node-{i}",
            "labels": {
                "kubernetes.io/arch": arch,
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": f"node-{i}",
                "node.kubernetes.io/instance-type": "m5.large",
                "topology.kubernetes.io/zone": f"zone-{i % 3}",
                "topology.kubernetes.io/region": "region-1",
                "pool": f"pool-{i % 10}",
            },
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "ready",
                    "lastHeartbeatTime": "2026-11-26T00:00:00Z",
                    "lastTransitionTime": "2026-11-26T00:00:00Z",
                }
            ],
            "nodeInfo": {
                "architecture": arch,
                "operatingSystem": "linux",
                "kubeletVersion": "v1.37.2",
                "containerRuntimeVersion": "containerd://2.1.0",
                "kernelVersion": "6.1.0",
                "osImage": "Debian GNU/Linux 12",
                "kubeProxyVersion": "",
                "machineID": f"{i:032x}",
                "systemUUID": f"{i:032x}",
                "bootID": f"{i:032x}",
            },
            "images": images,
        },
    }


def _path(body: dict[str, Any]) -> str:
    kind = body["kind"]
    if kind == "Namespace":
        return "/api/v1/namespaces"
    if kind == "Node":
        return "/api/v1/nodes"
    return f"/api/v1/namespaces/{body['metadata']['namespace']}/{kind.lower()}s"


async def create_many(cluster: Cluster, bodies: Iterable[dict[str, Any]], deadline: float, creators: int = 16) -> int:
    """POST every body (409, already there, counts as done) with `creators` concurrent requests; return how many.
    Raises TimeoutError once `time.monotonic()` passes `deadline`: a benchmark that cannot finish says so."""
    items: Iterator[dict[str, Any]] = iter(bodies)
    done = 0
    async with api_client(cluster, timeout=60, connections=creators) as client:

        async def creator() -> None:
            nonlocal done
            for body in items:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"creating objects: past the deadline after {done}")
                path = _path(body)
                response = await client.post(
                    path, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
                )
                if response.status_code not in (201, 409):
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
                done += 1

        await asyncio.gather(*(creator() for _ in range(creators)))
    return done


def populate(cluster: Cluster, have: Size, want: Size, deadline: float) -> float:
    """Create what `want` has beyond `have` (Namespaces first: the Secrets and ServiceAccounts live in them);
    return the seconds it took."""
    start = time.monotonic()

    async def run() -> None:
        await create_many(cluster, (namespace(k) for k in range(have.namespaces, want.namespaces)), deadline)
        await create_many(cluster, (secret(i) for i in range(have.secrets, want.secrets)), deadline)
        accounts = (service_account(i, want.secrets) for i in range(have.service_accounts, want.service_accounts))
        await create_many(cluster, accounts, deadline)
        await create_many(cluster, (node(i) for i in range(have.nodes, want.nodes)), deadline)

    asyncio.run(run())
    return time.monotonic() - start
