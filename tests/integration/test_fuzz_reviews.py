"""Fuzzed AdmissionReviews (issue 8): a seeded mutator over the real captured reviews in tests/data/admission.

Types changed, keys deleted, values nested ~1,000 deep, megabyte strings, unicode, numbers for strings, lists
grown past the container limit, bodies truncated or made invalid UTF-8. Every answer must be a 400 with a short
`{"error"}` or a 200 a real API server accepts: the uid echoed, warnings one line each within the API server's
budget, any patch base64 JSONPatch that applies to the object. Never a 5xx, never an internal error, and each
log line bounded.

`make test` runs a seeded slice in-process (ASGI, the bulk) and through the real TLS server (a smaller slice).
Nightly size: PULLGUARD_FUZZ_REVIEWS=20000 (seed: PULLGUARD_FUZZ_SEED; TLS slice: PULLGUARD_FUZZ_TLS_REVIEWS, default
1/20 of it); the figures are printed (pytest -s).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import logging
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import orjson

from policies.config import parse_policy
from tests.server import PullguardServer
from webhook.admission.app import Service, create_app
from webhook.admission.envelope import ProtocolError, parse_review, workload_of
from webhook.limits import MAX_POD_ENTRIES, MAX_WARNING, OFFLOAD_BODY_BYTES
from webhook.logs import JsonFormatter
from webhook.metrics import Metrics
from webhook.review.facts import FactGatherer
from webhook.sources.policy import PolicyHolder

COUNT = int(os.environ.get("PULLGUARD_FUZZ_REVIEWS", "2000"))
SEED = int(os.environ.get("PULLGUARD_FUZZ_SEED", "20261126"))
TLS_COUNT = int(os.environ.get("PULLGUARD_FUZZ_TLS_REVIEWS", str(max(100, COUNT // 20))))
MIRROR_POLICY = "mirrors: [{registry: docker.io, mirror: mirror.example.com, verify: false}]\n"
MAX_LOG_LINE = 16 * 1024
UNREADABLE = "pullguard could not check this object: "
MAX_ERROR_BYTES = 1024
DATA = Path(__file__).resolve().parent.parent / "data" / "admission"
SEEDS = [orjson.loads(path.read_bytes()) for path in sorted(DATA.glob("*.json"))]
KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob"]
KINDS += ["PodTemplate", "EphemeralContainers", "ConfigMap", ""]
IMAGES = [
    "nginx",
    "nginx:1.25",
    "docker.io/library/nginx:latest",
    "quay.io/team/app@sha256:" + "a" * 64,
    "UPPER/case:1",
    "registry.example.com:5000/a/b:c",
    "localhost/app:dev",
    "a" * 300,
    "x@sha256:short",
    ":",
    "",
    "ünïcode/ïmage:1",
    "busybox:1.36@sha256:" + "b" * 64,
]
STRINGS = ["", " ", "ñ", "😀" * 50, "\u202eevil", "\x00nul", "line\nbreak\r\n", "tab\there", "\ufeffbom", "%s%n{}"]


class Mutator:
    """Seeded: the same seed gives the same reviews."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.deep: dict[str, int] = {}

    def body(self) -> bytes:
        rng = self.rng
        document = copy.deepcopy(rng.choice(SEEDS))
        self.deep = {}
        for _ in range(rng.choice((1, 1, 2, 3, 5))):
            self.mutate(document)
        raw = orjson.dumps(document)
        for marker, depth in self.deep.items():
            raw = raw.replace(orjson.dumps(marker), b"[" * depth + b'"x"' + b"]" * depth, 1)
        if rng.random() < 0.04:
            raw = self.damage(raw)
        return raw

    def damage(self, raw: bytes) -> bytes:
        rng = self.rng
        at = rng.randrange(len(raw))
        match rng.randrange(4):
            case 0:
                return raw[:at]
            case 1:
                return raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
            case 2:
                return raw[:at] + b"\xff\xfe\xc3" + raw[at:]
            case _:
                return raw + b" " * rng.choice((1, 3 * 1024 * 1024))

    def positions(self, document: Any) -> list[tuple[Any, Any, int]]:
        """(container, key, depth) of every value, managedFields left out half of the time (most of the bulk)."""
        skip_managed = self.rng.random() < 0.5
        found: list[tuple[Any, Any, int]] = []
        stack: list[tuple[Any, int]] = [(document, 1)]
        while stack:
            node, depth = stack.pop()
            keys: Any = node.keys() if isinstance(node, dict) else range(len(node))
            for key in list(keys):
                if skip_managed and key == "managedFields":
                    continue
                found.append((node, key, depth))
                child = node[key]
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1))
        return found

    def mutate(self, document: dict[str, Any]) -> None:
        rng = self.rng
        request = document.get("request") if isinstance(document.get("request"), dict) else None
        roll = rng.random()
        if roll < 0.08 and request is not None:  # reach other code paths with a valid shape
            choice = rng.randrange(3)
            if choice == 0:
                request["kind"] = {"group": "", "version": "v1", "kind": rng.choice(KINDS)}
            elif choice == 1:
                request["operation"] = rng.choice(["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH", ""])
            elif isinstance(request.get("object"), dict):
                request["oldObject"] = copy.deepcopy(request["object"])
                request["operation"] = "UPDATE"
            return
        if roll < 0.16:
            lists = [(n, k) for n, k, _ in self.positions(document) if isinstance(n[k], list) and n[k]]
            if lists:
                node, key = rng.choice(lists)
                times = rng.choice((2, 10, 100, MAX_POD_ENTRIES // len(node[key]) + 1))
                node[key] = (node[key] * times)[: MAX_POD_ENTRIES + 50]
                return
        if roll < 0.24:
            images = [(n, k) for n, k, _ in self.positions(document) if k in ("image", "reference")]
            if images:
                node, key = rng.choice(images)
                node[key] = rng.choice(IMAGES)
                return
        positions = self.positions(document)
        if not positions:
            return
        node, key, depth = rng.choice(positions)
        op = rng.randrange(10)
        if op < 2:
            del node[key]
        elif op < 4:
            marker = f"\u0001deep{len(self.deep)}\u0001"
            self.deep[marker] = rng.choice((10, 100, 480, 900, 1000, 1030)) - depth
            node[key] = marker
        else:
            node[key] = self.value(node[key])

    def value(self, current: Any) -> Any:
        rng = self.rng
        match rng.randrange(9):
            case 0:
                return rng.choice([None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5, 1e308, -0.0])
            case 1:
                return rng.choice(STRINGS)
            case 2:
                return rng.choice("xK🙂") * rng.choice((300, 5_000, 100_000, 1_000_000))
            case 3:
                return len(current) if isinstance(current, str | list | dict) else 7  # a number for a string
            case 4:
                return str(current)[:100] if not isinstance(current, str) else [current]
            case 5:
                return [rng.choice(STRINGS), {"name": rng.choice(STRINGS)}, None]
            case 6:
                return {rng.choice(STRINGS): rng.choice(STRINGS) for _ in range(3)}
            case 7:
                return rng.choice(IMAGES)
            case _:
                return {} if isinstance(current, list) else []


def readable(raw: bytes) -> bool:
    """Whether pullguard can read the review (else it answers it by failurePolicy, or with a 400 without a uid)."""
    try:
        workload_of(parse_review(raw))
    except (ProtocolError, RecursionError):
        return False
    return True


@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)
    max_small_latency: float = 0.0
    patches: int = 0
    warned: int = 0
    denied: int = 0
    refused: int = 0  # unreadable, answered by failurePolicy
    problems: list[str] = field(default_factory=list)

    def check(self, raw: bytes, status: int, content: bytes, elapsed: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if len(raw) < OFFLOAD_BODY_BYTES:
            self.max_small_latency = max(self.max_small_latency, elapsed)
        try:
            self._check(raw, status, content)
        except AssertionError as exc:
            self.problems.append(f"{exc} (body {raw[:200]!r}..., answer {content[:300]!r})")

    def _check(self, raw: bytes, status: int, content: bytes) -> None:
        assert status in (200, 400), f"HTTP {status}"
        answer = orjson.loads(content)
        if status == 400:
            assert set(answer) == {"error"} and isinstance(answer["error"], str)
            assert len(content) < MAX_ERROR_BYTES, f"a {len(content)}-byte error"
            return
        response = answer["response"]
        if not readable(raw):
            # pullguard could not read it (over a limit, too deep, malformed) but its head named a uid: answered as
            # the policy's failurePolicy says (the default, open: allowed; the validating side warns), never a 400
            assert response["allowed"] is True and len(response.get("warnings", [])) <= 1, response
            assert all(w.startswith(UNREADABLE) for w in response.get("warnings", [])), response
            assert orjson.dumps(response["uid"])[1:-1] in raw, "the uid is not the body's"
            self.refused += 1
            return
        document = orjson.loads(raw)
        assert response["uid"] == document["request"]["uid"], "uid not echoed"
        assert answer["apiVersion"] == document["apiVersion"] and answer["kind"] == "AdmissionReview"
        assert isinstance(response["allowed"], bool)
        warnings = response.get("warnings", [])
        assert isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)
        assert all(len(w) <= MAX_WARNING and "\n" not in w and "\r" not in w for w in warnings), warnings
        assert sum(len(w) for w in warnings) <= 4096, "warnings over the API server's 4 KiB"
        assert not any("internal error" in w for w in warnings), warnings
        self.warned += bool(warnings)
        if not response["allowed"]:
            self.denied += 1
            assert response["status"]["code"] == 403, response["status"]
            assert len(response["status"]["message"]) < 16 * 1024
        if "patch" in response:
            self.patches += 1
            assert response["patchType"] == "JSONPatch"
            operations = orjson.loads(base64.b64decode(response["patch"], validate=True))
            assert isinstance(operations, list) and operations
            obj = document["request"]["object"]
            jsonpatch.apply_patch(obj, operations, in_place=True)  # in place: obj may nest 1,000 deep

    def assert_clean(self) -> None:
        assert not self.problems, f"{len(self.problems)} bad answers, e.g.:\n" + "\n".join(self.problems[:5])
        assert not any(status >= 500 for status in self.statuses), self.statuses


class LineLengths(logging.Handler):
    """Formats each pullguard record as `serve` writes it and keeps the longest line."""

    def __init__(self) -> None:
        super().__init__()
        self.formatter_ = JsonFormatter()
        self.longest = 0
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.formatter_.format(record)
        self.longest = max(self.longest, len(line))
        if record.levelno >= logging.ERROR:
            self.errors.append(line[:2000])


@contextlib.contextmanager
def measured_logs() -> Iterator[LineLengths]:
    """pullguard's records, formatted and measured here and then dropped: kept by pytest, 20,000 reviews' records
    would pile up in memory. Entered in the test's body, after pytest has attached its capture handlers."""
    logger = logging.getLogger("pullguard")
    handler = LineLengths()
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_the_mutator_is_seeded() -> None:
    first, second = Mutator(7), Mutator(7)
    assert [first.body() for _ in range(20)] == [second.body() for _ in range(20)]


async def test_fuzzed_reviews_in_process() -> None:
    with measured_logs() as pullguard_log:
        await fuzz_in_process(pullguard_log)


async def fuzz_in_process(pullguard_log: LineLengths) -> None:
    metrics = Metrics()
    holder = PolicyHolder(metrics)
    holder.policy = parse_policy(MIRROR_POLICY)
    app = create_app(Service(holder=holder, metrics=metrics, gatherer=FactGatherer()))
    mutator, tally = Mutator(SEED), Tally()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pullguard", timeout=60) as client:

        async def one(index: int) -> None:
            raw = mutator.body()
            path = "/mutate" if index % 2 else "/validate"
            started = time.perf_counter()
            response = await client.post(path, content=raw, headers={"content-type": "application/json"})
            tally.check(raw, response.status_code, response.content, time.perf_counter() - started)

        for index in range(min(100, COUNT)):  # warm up: imports, caches
            await one(index)
        rss_start = rss_bytes()
        for index in range(100, COUNT):
            await one(index)
        rss_end = rss_bytes()
    print(
        f"\nfuzz in-process: {COUNT} reviews (seed {SEED}): statuses {tally.statuses}, patches {tally.patches}, "
        f"warned {tally.warned}, denied {tally.denied}, max latency under 256 KiB "
        f"{tally.max_small_latency * 1000:.0f} ms, RSS {rss_start / 2**20:.0f} -> {rss_end / 2**20:.0f} MiB, "
        f"longest log line {pullguard_log.longest} bytes"
    )
    tally.assert_clean()
    assert not pullguard_log.errors, pullguard_log.errors[:3]
    assert pullguard_log.longest < MAX_LOG_LINE
    assert tally.max_small_latency < 1.0
    assert tally.statuses.get(200, 0) > COUNT // 4, tally.statuses  # the fuzz still reaches the checks
    assert tally.patches > 0
    if COUNT >= 10_000:
        assert rss_end < 1.3 * rss_start, (rss_start, rss_end)


def test_fuzzed_reviews_through_the_tls_server(pullguard_factory: Any) -> None:
    server: PullguardServer = pullguard_factory(policy=MIRROR_POLICY)
    mutator, tally = Mutator(SEED + 1), Tally()
    client = server.client()
    rss_start = rss_bytes(server.process.pid)  # started and answered its health probe, nothing else
    for index in range(TLS_COUNT):
        raw = mutator.body()
        path = "/mutate" if index % 2 else "/validate"
        started = time.perf_counter()
        response = client.post(path, content=raw, headers={"content-type": "application/json"}, timeout=60)
        tally.check(raw, response.status_code, response.content, time.perf_counter() - started)
    rss_end = rss_bytes(server.process.pid)
    lines = server.logs().splitlines()
    print(
        f"\nfuzz over TLS: {TLS_COUNT} reviews: statuses {tally.statuses}, max latency under 256 KiB "
        f"{tally.max_small_latency * 1000:.0f} ms, server RSS {rss_start / 2**20:.0f} -> {rss_end / 2**20:.0f} MiB, "
        f"{len(lines)} log lines, longest {max(map(len, lines))} bytes"
    )
    tally.assert_clean()
    assert max(map(len, lines)) < MAX_LOG_LINE
    assert not [line for line in lines if '"level":"error"' in line][:3]
    assert tally.max_small_latency < 1.0
    if TLS_COUNT >= 10_000:
        assert rss_end < 1.3 * rss_start, (rss_start, rss_end)
