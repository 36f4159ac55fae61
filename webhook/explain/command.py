"""`pullguard explain TARGET`: why is this pod stuck in ImagePullBackOff, and what fixes it?

TARGET is `pod/NAME`, a workload (`deployment/NAME`, `statefulset/`, `daemonset/`, `replicaset/`, `job/`,
`cronjob/`: its newest failing pod) or `-A` (every failing pod in every namespace). For each failing container it
reads what the kubelet saw (statuses, events: webhook/explain/pods.py), classifies the runtime's message
(webhook/explain/pull_errors.py), re-runs pullguard's checks for the pod with the live cluster view and the registries
(unless --offline), and says the cause and the fix (webhook/explain/verdict.py).

Exit status: 0 nothing failing, 1 something failing (explained), 2 a usage, policy or cluster error.

The lead wires it into `pullguard`: `add_parser(commands)` adds the subcommand, `run(args)` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policies.config import DEFAULT_POLICY, Policy, PolicyError
from policies.model import Decision, Workload
from policies.plan import Side
from policies.registry_facts import ImageFacts
from webhook.explain.cluster import JSON, KINDS, ClusterReadError, PodSource, newest_first
from webhook.explain.pods import SANDBOX, FailingContainer, failing_containers, owner_label
from webhook.explain.render import (
    EXIT_ERROR,
    ContainerReport,
    ExplainReport,
    PodReport,
    render_json,
    render_text,
)
from webhook.explain.verdict import judge
from webhook.kube.informers import load_api_client
from webhook.kube.view import ClusterView
from webhook.logs import terminal_text
from webhook.registry.client import RegistryClient
from webhook.review.facts import FactGatherer
from webhook.review.review import review
from webhook.review.workloads import MalformedObjectError, extract
from webhook.sources.cluster import ClusterConnection, connect, wait_synced
from webhook.sources.policy_file import read_policy_file

CLUSTER_SYNC_SECONDS = 30.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    explain = commands.add_parser(
        "explain",
        help="explain why pods fail to pull their images, and the fix",
        description="Explain ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull and exec format "
        "errors of running pods: what the kubelet saw, the cause pullguard confirms, the evidence and the fix. "
        "Exit status: 0 nothing failing, 1 something failing, 2 usage or cluster error.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    explain.add_argument(
        "target",
        nargs="?",
        help="pod/NAME, or deployment|statefulset|daemonset|replicaset|job|cronjob/NAME (its newest failing pod)",
    )
    explain.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every failing pod in every namespace (no TARGET)"
    )
    explain.add_argument(
        "-n", "--namespace", default=None, help="namespace of TARGET (default: the kubeconfig context's, or default)"
    )
    explain.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="cluster access (default: $KUBECONFIG, ~/.kube/config, in-cluster)",
    )
    explain.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    explain.add_argument(
        "--offline", action="store_true", help="only the cluster's evidence (statuses, events): no registry lookups"
    )
    explain.add_argument("--config", type=Path, default=None, help="policy YAML (default: the embedded policy)")


def _usage(message: str) -> int:
    print(f"pullguard explain: {message}", file=sys.stderr)
    return EXIT_ERROR


def parse_target(target: str) -> tuple[str, str]:
    """(Kind, name) from `kind/name` (kubectl's spellings); a bare name is a pod. ValueError names the problem."""
    kind, slash, name = target.partition("/")
    if not slash:
        kind, name = "pod", target
    found = KINDS.get(kind.lower())
    if found is None:
        raise ValueError(
            f"unknown kind {kind!r} in {target!r}: use pod, deployment, statefulset, daemonset, "
            "replicaset, job or cronjob"
        )
    if not name or "/" in name:
        raise ValueError(f"{target!r} is not KIND/NAME")
    return found, name


def run(args: argparse.Namespace) -> int:
    if bool(args.target) == bool(args.all_namespaces):
        return _usage("give exactly one of TARGET (e.g. pod/web, deployment/web) or -A")
    if args.all_namespaces and args.namespace:
        return _usage("-A and -n exclude each other")
    try:
        kind, name = parse_target(args.target) if args.target else ("", "")
        policy = read_policy_file(args.config) if args.config is not None else DEFAULT_POLICY
    except (ValueError, PolicyError) as exc:
        return _usage(str(exc))
    kubeconfig = str(args.kubeconfig) if args.kubeconfig is not None else None
    try:
        source = PodSource(load_api_client(kubeconfig))
    except Exception as exc:
        return _usage(f"cannot use the kubeconfig: {exc}")
    namespace = None if args.all_namespaces else (args.namespace or _default_namespace(kubeconfig))
    report = ExplainReport(target=args.target or "-A", namespace=namespace)
    try:
        selected = _select(source, kind, name, namespace, report)
    except ClusterReadError as exc:
        return _usage(str(exc))
    if selected:
        asyncio.run(_explain(selected, policy, args.offline, kubeconfig, report))
    # JSON escapes every control (json.dumps' ASCII output); the text is made safe for the terminal it lands in
    sys.stdout.write(render_json(report) if args.format == "json" else terminal_text(render_text(report)))
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m webhook.explain.command ...`, the same as `pullguard explain ...`."""
    parser = argparse.ArgumentParser(prog="pullguard")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["explain", *(argv if argv is not None else sys.argv[1:])]))


def _default_namespace(kubeconfig: str | None) -> str:
    from kubernetes import config  # noqa: PLC0415 - only here

    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    try:
        _, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except Exception:
        return "default"
    return str(((current or {}).get("context") or {}).get("namespace") or "default")


Selected = list[tuple[JSON, list[FailingContainer]]]


def _select(source: PodSource, kind: str, name: str, namespace: str | None, report: ExplainReport) -> Selected:
    """The failing pods to explain, with their failing containers; says in `report.nothing` why there are none."""
    if kind == "Pod":
        assert namespace is not None
        pod = source.pod(namespace, name)
        failing = failing_containers(pod, source.events(namespace, name))
        phase = (pod.get("status") or {}).get("phase") or "unknown"
        report.nothing = f"pod/{name} in namespace {namespace} has no container failing to pull (phase {phase})"
        return [(pod, failing)] if failing else []
    if kind:
        assert namespace is not None
        pods = newest_first(source.pods_of(kind, namespace, name))
        events = source.events(namespace) if pods else []
        report.nothing = f"{kind.lower()}/{name} in namespace {namespace}: none of its {len(pods)} pods is failing"
        for pod in pods:  # the newest failing pod only
            failing = failing_containers(pod, events)
            if failing:
                return [(pod, failing)]
        return []
    pods = source.pods(None)
    events = source.events(None)
    report.nothing = f"none of the {len(pods)} pods in any namespace is failing to pull"
    chosen = [(pod, failing) for pod in pods if (failing := failing_containers(pod, events))]
    return sorted(chosen, key=lambda item: _key(item[0]))


def _key(pod: JSON) -> tuple[str, str]:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


async def _explain(
    selected: Selected, policy: Policy, offline: bool, kubeconfig: str | None, report: ExplainReport
) -> None:
    connection = None if offline else _connect(kubeconfig, report)
    registry = None if offline else RegistryClient()
    view: ClusterView | None = connection.view if connection is not None else None
    try:
        pods = await asyncio.gather(
            *(
                _explain_pod(pod, failing, policy=policy, offline=offline, registry=registry, view=view, report=report)
                for pod, failing in selected
            )
        )
    finally:
        if registry is not None:
            await registry.close()
        if connection is not None:
            connection.stop()
    report.pods.extend(pods)


def _connect(kubeconfig: str | None, report: ExplainReport) -> ClusterConnection | None:
    try:
        connection = connect(kubeconfig)
    except Exception as exc:
        report.notes.append(f"no cluster view ({exc}): pull secrets, nodes and ServiceAccounts not checked")
        return None
    if not wait_synced(connection, CLUSTER_SYNC_SECONDS):
        problems = "; ".join(connection.problems()) or "not synced"
        connection.stop()
        report.notes.append(f"no cluster view ({problems}): pull secrets, nodes and ServiceAccounts not checked")
        return None
    return connection


async def _explain_pod(
    pod: JSON,
    failing: list[FailingContainer],
    *,
    policy: Policy,
    offline: bool,
    registry: RegistryClient | None,
    view: ClusterView | None,
    report: ExplainReport,
) -> PodReport:
    metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    namespace, name = str(metadata.get("namespace") or "default"), str(metadata.get("name") or "")
    node = spec.get("nodeName") if isinstance(spec.get("nodeName"), str) else None
    judged = {}
    if not offline:
        judged = await _judge_pod(pod, failing, policy=policy, registry=registry, view=view, report=report)
    containers = tuple(
        ContainerReport(f, judge(f, *judged.get(f.kind + "/" + f.name, (None, None)), offline=offline, node=node))
        for f in failing
    )
    phase = str((pod.get("status") or {}).get("phase") or "Unknown")
    return PodReport(namespace, name, owner_label(pod), node, phase, containers)


async def _judge_pod(
    pod: JSON,
    failing: list[FailingContainer],
    *,
    policy: Policy,
    registry: RegistryClient | None,
    view: ClusterView | None,
    report: ExplainReport,
) -> dict[str, tuple[Decision | None, ImageFacts | None]]:
    """pullguard's decision and registry facts for each failing container, keyed `kind/name`."""
    metadata = pod.get("metadata") or {}
    judged: dict[str, tuple[Decision | None, ImageFacts | None]] = {}
    try:
        workload = extract("Pod", pod)
    except MalformedObjectError as exc:
        report.notes.append(f"pod {metadata.get('namespace')}/{metadata.get('name')} could not be read: {exc}")
        return judged
    if any(f.kind != SANDBOX for f in failing):
        judged |= await _decide(workload, FactGatherer(registry, view), policy, failing)
    sandbox = next((f for f in failing if f.kind == SANDBOX), None)
    if sandbox is not None:
        # The runtime pulls its sandbox image itself, with no pod's pull secrets: asked anonymously, no cluster.
        fake: dict[str, Any] = {
            "metadata": {"namespace": workload.namespace, "name": workload.name},
            "spec": {"containers": [{"name": SANDBOX, "image": sandbox.image}]},
        }
        judged |= await _decide(extract("Pod", fake), FactGatherer(registry, None), policy, [sandbox])
    return judged


async def _decide(
    workload: Workload, gatherer: FactGatherer, policy: Policy, failing: list[FailingContainer]
) -> dict[str, tuple[Decision | None, ImageFacts | None]]:
    # The pods are named by the user: judged even in namespaces the webhook skips (kube-system's pause image).
    reviewed = await review(workload, policy, Side.VALIDATE, gatherer, exclusions=False)
    decision, facts = reviewed.decision, reviewed.facts
    judged: dict[str, tuple[Decision | None, ImageFacts | None]] = {}
    for f in failing:
        kind = "containers" if f.kind == SANDBOX else f.kind
        image = next((i for i in workload.images if i.kind.value == kind and i.name == f.name), None)
        judged[f.kind + "/" + f.name] = (decision, facts.image(image) if image is not None else None)
    return judged


if __name__ == "__main__":
    sys.exit(main())
