"""`make bench`, registry part: cold reviews through a 50 ms-per-request proxy in front of a real registry.

- cold latency: a Deployment with 8 distinct, never-seen images against one with 1 (target: <= 1.5x);
- coalescing: 200 concurrent cold reviews of one image, upstream manifest requests counted at the proxy
  (target: exactly 1 per manifest).
Every image is distinct (its own digest), so neither the lookup cache nor the digest cache helps a cold review.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.run import wait_healthy
from tests.reviews import review
from tests.support.delaying_proxy import start_delaying_proxy
from tests.support.images import build_image
from tests.support.loopback import free_port
from tests.support.pushers import ImagePusher
from tests.support.registry import start_plain_registry

ROOT = Path(__file__).resolve().parent.parent

HOST = "registry.bench.example"  # mapped by hosts.toml to the delaying proxy: no DNS, loopback only
ROUNDS = 7


def deployment(images: list[str]) -> dict:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": containers}}},
    }


async def post(client: httpx.AsyncClient, url: str, images: list[str]) -> float:
    started = time.perf_counter()
    response = await client.post(url, json=review(deployment(images)))
    response.raise_for_status()
    answer = response.json()["response"]
    if any("not found" in w or "could not verify" in w for w in answer.get("warnings", [])):
        raise RuntimeError(f"lookup failed during the benchmark: {answer['warnings']}")
    return time.perf_counter() - started


async def measure(url: str, context: ssl.SSLContext, proxy) -> dict[str, float]:  # type: ignore[no-untyped-def]
    results: dict[str, float] = {}
    async with httpx.AsyncClient(
        verify=context, timeout=30, limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
    ) as client:
        await post(client, url, [f"{HOST}/warmup/app:0"])  # connection set-up and imports, not measured
        one = [await post(client, url, [f"{HOST}/one/app:{r}"]) for r in range(ROUNDS)]
        eight = [await post(client, url, [f"{HOST}/eight{i}/app:{r}" for i in range(8)]) for r in range(ROUNDS)]
        results["cold_1_image_ms"] = statistics.median(one) * 1000
        results["cold_8_images_ms"] = statistics.median(eight) * 1000
        results["ratio_8_to_1"] = results["cold_8_images_ms"] / results["cold_1_image_ms"]
        proxy.reset()
        storm = await asyncio.gather(*(post(client, url, [f"{HOST}/storm/app:1"]) for _ in range(200)))
        results["storm_reviews"] = len(storm)
        results["storm_p50_ms"] = statistics.median(storm) * 1000
        results["storm_max_ms"] = max(storm) * 1000
        results["storm_upstream_tag_requests"] = proxy.manifest_requests("storm/app", "1")
        results["storm_upstream_manifest_requests"] = proxy.manifest_requests("storm/app")
    return results


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="pullguard-bench-registry-"))
    registry = start_plain_registry()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with ImagePusher(registry) as pusher:  # every image its own digest: nothing is warm by accident
            pusher.push("warmup/app", "0", build_image(seed="warmup"))
            pusher.push("storm/app", "1", build_image(seed="storm"))
            for r in range(ROUNDS):
                pusher.push("one/app", str(r), build_image(seed=f"one-{r}"))
                for i in range(8):
                    pusher.push(f"eight{i}/app", str(r), build_image(seed=f"eight-{i}-{r}"))
        with start_delaying_proxy(registry.url, delay_ms=50, lifetime=600) as proxy:
            hosts = work / "certs.d" / HOST
            hosts.mkdir(parents=True)
            (hosts / "hosts.toml").write_text(f'server = "{proxy.url}"\n')
            policy = work / "policy.yaml"
            policy.write_text(f"registry: {{hostsDir: {json.dumps(str(work / 'certs.d'))}, timeoutSeconds: 5}}\n")
            cert_dir = work / "certs"
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "webhook.cli",
                        "serve",
                        "--port",
                        str(port),
                        "--cert-dir",
                        str(cert_dir),
                        "--config",
                        str(policy),
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            deadline = time.monotonic() + 30
            while not (cert_dir / "ca.crt").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            wait_healthy(f"https://127.0.0.1:{port}/healthz", cert_dir / "ca.crt")
            context = ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))
            results = asyncio.run(measure(f"https://127.0.0.1:{port}/validate", context, proxy))
        print(json.dumps(results, indent=2))
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "registry.json").write_text(json.dumps(results, indent=2))
        verdicts = {
            "8 distinct images <= 1.5x one image": results["ratio_8_to_1"] <= 1.5,
            "200 concurrent cold reviews -> 1 upstream tag request": results["storm_upstream_tag_requests"] == 1,
        }
        for name, ok in verdicts.items():
            print(f"{'PASS' if ok else 'MISS'}  {name}")
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
