"""`pullguard check`: the webhook's verdicts for manifests on disk, for CI pipelines.

The same facts and checks as the webhook (FactGatherer, policies.decide), with what only a CI run needs: every
object accounted for (webhook/check/inventory.py), pull secrets absent from the input treated as unknown unless
the input is declared complete (webhook/check/secrets.py), and findings located at their `image:` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from policies.config import DEFAULT_POLICY, Policy, PolicyError
from policies.mirrors import MirrorOutcome, MutateDecision
from policies.model import ContainerImage, Decision, JudgedFinding, Unchecked, Workload
from policies.plan import Side
from policies.render import mirror_outcome_text
from webhook.check.budget import BudgetedGatherer
from webhook.check.inventory import take_stock
from webhook.check.progress import Progress
from webhook.check.secrets import unverifiable
from webhook.formats import CHECK_FORMATS
from webhook.formats.report import EXIT_ENFORCED, EXIT_INPUT, Inventory, NotChecked, Report, Result
from webhook.kube.view import ClusterView, StaticClusterView
from webhook.logs import terminal_safe_json, terminal_text
from webhook.registry.client import RegistryClient
from webhook.review.review import review
from webhook.sources.cluster import ClusterAccessError, ClusterConnection, check_access, connect, open_api, wait_synced
from webhook.sources.policy_file import read_policy_file
from webhook.util.manifests import Document, Manifests, read

CLUSTER_SYNC_SECONDS = 30
DEFAULT_TIMEOUT_SECONDS = 120.0


class Judged(NamedTuple):
    """One workload's verdict: the decision, the checks that could not run, the pull secrets not in the input."""

    decision: Decision
    unchecked: tuple[Unchecked, ...]
    unseen_secrets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What a CI run tunes beyond the input: the total budget, the level that fails, the namespace of objects
    that carry none, and how progress is shown on stderr (auto: a bar on a terminal, lines elsewhere)."""

    timeout: float = DEFAULT_TIMEOUT_SECONDS
    fail_on: str = "enforce"  # enforce | warn
    namespace: str = "default"
    progress: str = "auto"  # auto | bar | lines | off
    progress_interval: float | None = None  # seconds between lines (a bar: between redraws)
    mutate: bool = False  # rewrite to mirrors first (the mutating webhook), then judge the rewritten objects
    exclude: tuple[str, ...] = ()  # fnmatch patterns for files in the directories given (a chart's templates/)


def run_check(
    paths: list[str],
    config: Path | None,
    offline: bool,
    output: str,
    *,
    kubeconfig: Path | None = None,
    complete_input: bool = False,
    options: CheckOptions | None = None,
) -> int:
    options = options or CheckOptions()
    started = time.monotonic()
    try:
        policy = read_policy_file(config) if config is not None else DEFAULT_POLICY
    except PolicyError as exc:
        print(f"pullguard check: {exc}", file=sys.stderr)
        return EXIT_INPUT
    manifests = read(paths, options.exclude)
    stock = take_stock(manifests, policy, live_cluster=kubeconfig is not None, default_namespace=options.namespace)
    for error in stock.errors:  # also in the report; stderr is what a CI log shows first
        where = f"{error.file}:{error.line}" if error.line is not None else error.file
        print(terminal_text(f"pullguard check: {where}: {error.reason}"), file=sys.stderr)
    connection = _connect(kubeconfig, min(CLUSTER_SYNC_SECONDS, options.timeout)) if kubeconfig is not None else None
    if isinstance(connection, int):
        return connection
    # Without a live cluster the Secrets, ServiceAccounts and Nodes in the input form the view; with none of them
    # there is no view (the cluster checks stay silent) unless the input is declared complete.
    view: ClusterView | None = None
    if connection is not None:
        view = connection.view
    elif stock.cluster_objects or complete_input:
        view = StaticClusterView(stock.cluster_objects, secrets_complete=complete_input)
    complete = connection is not None or complete_input
    remaining = max(0.0, options.timeout - (time.monotonic() - started))
    try:
        judged = asyncio.run(_judge_all(stock, policy, offline, view, budget=remaining, options=options))
    finally:
        if connection is not None:
            connection.stop()
    source = "kubeconfig" if connection is not None else "input" if view is not None else "none"
    report = _report(paths=paths, manifests=manifests, stock=stock, judged=judged, source=source, complete=complete)
    report.fail_on, report.policy = options.fail_on, policy
    rendered = CHECK_FORMATS[output](report)  # values from the input: no control reaches the terminal or a log viewer
    sys.stdout.write(terminal_text(rendered) if output == "table" else terminal_safe_json(rendered))
    if report.nothing_to_check:
        print(f"pullguard check: {report.nothing_to_check}", file=sys.stderr)
    if report.exit_code == EXIT_ENFORCED and options.fail_on != "enforce" and not report.enforced:
        level = options.fail_on
        failing = f"pullguard check: {report.failing} failing at level {level} or above (--fail-on {level})"
        print(failing, file=sys.stderr)
    return report.exit_code


def _connect(kubeconfig: Path, sync_seconds: float) -> ClusterConnection | int:
    """Fail fast, saying which: the file, the address, the credentials, the permission; then wait for the
    caches, naming the ones that did not list."""
    try:
        api = open_api(str(kubeconfig))
        check_access(api)
        connection = connect(str(kubeconfig), api=api)
    except ClusterAccessError as exc:
        print(f"pullguard check: --kubeconfig: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:
        print(f"pullguard check: cannot use {kubeconfig}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    if not wait_synced(connection, sync_seconds):
        problems = "; ".join(connection.problems())
        connection.stop()
        print(f"pullguard check: the cluster did not answer within {sync_seconds:g}s: {problems}", file=sys.stderr)
        return EXIT_INPUT
    return connection


async def _judge_all(
    stock: Inventory,
    policy: Policy,
    offline: bool,
    view: ClusterView | None,
    *,
    budget: float,
    options: CheckOptions,
) -> list[Judged]:
    """Each workload's decision, and the pull secrets it refers to that the input does not hold. Registry
    lookups share one deadline: the run's remaining budget."""
    loop = asyncio.get_running_loop()
    progress = _progress(options, len(stock.workloads))
    registry = None if offline else RegistryClient()
    gatherer = BudgetedGatherer(
        registry, view, deadline=loop.time() + budget, budget=options.timeout, progress=progress
    )

    async def judge(document: Document, workload: Workload) -> Judged:
        kept: tuple[JudgedFinding, ...] = ()
        if options.mutate:  # as the API server runs them: mutating webhooks, then validating ones
            mutated = (await review(workload, policy, Side.MUTATE, gatherer, document=document.body)).decision
            if isinstance(mutated, MutateDecision):
                outcomes[id(document)] = mutated.mirror_outcomes
                workload, kept = rewritten(workload, mutated.mirror_outcomes), mutated.findings
        decision, facts, _, gaps = await review(workload, policy, Side.VALIDATE, gatherer, coverage=True)
        unseen = unverifiable(workload.images[0].pod, facts.cluster) if workload.images else ()
        if progress is not None:
            progress.workload_done()
        if kept:
            decision = Decision(allowed=decision.allowed, findings=kept + decision.findings, patch=decision.patch)
        return Judged(decision, gaps, unseen)

    outcomes: dict[int, tuple[MirrorOutcome, ...]] = {}
    reporter = asyncio.ensure_future(progress.run()) if progress is not None else None
    try:
        judged = await asyncio.gather(*(judge(document, workload) for document, workload in stock.workloads))
        for document, _ in stock.workloads:  # in input order, whatever order the lookups ended in
            _print_rewrites(document, outcomes.get(id(document), ()))
        return judged
    finally:
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
        if registry is not None:
            await registry.close()


def rewritten(workload: Workload, outcomes: tuple[MirrorOutcome, ...]) -> Workload:
    """The workload as the mutating webhook's patch leaves it: each rewritten image replaced in place."""
    targets = {o.container.pointer: o.target for o in outcomes if o.rewritten}
    if not targets:
        return workload
    images = tuple(
        ContainerImage.create(
            kind=i.kind,
            name=i.name,
            image=targets[i.pointer],
            pointer=i.pointer,
            display_path=i.display_path,
            pod=i.pod,
            pull_policy=i.pull_policy,
        )
        if i.pointer in targets
        else i
        for i in workload.images
    )
    return replace(workload, images=images)


def _print_rewrites(document: Document, outcomes: tuple[MirrorOutcome, ...]) -> None:
    """One stderr line per image a mirror rule applies to: what it becomes, or why it is kept."""
    for o in outcomes:
        line, _ = document.position(o.container.pointer)
        where = f"{document.source}:{line}: {o.container.display_path}"
        print(terminal_text(f"pullguard check: {where}: {mirror_outcome_text(o)}"), file=sys.stderr)


def _progress(options: CheckOptions, workloads: int) -> Progress | None:
    if options.progress == "off" or not workloads:
        return None
    tty = None if options.progress == "auto" else options.progress == "bar"
    return Progress(sys.stderr, workloads=workloads, budget=options.timeout, tty=tty, every=options.progress_interval)


def _report(
    *,
    paths: list[str],
    manifests: Manifests,
    stock: Inventory,
    judged: list[Judged],
    source: str,
    complete: bool,
) -> Report:
    results: list[Result] = []
    not_checked: list[NotChecked] = []
    unseen: Counter[tuple[str, str]] = Counter()
    for (document, workload), verdict in zip(stock.workloads, judged, strict=True):
        for finding in verdict.decision.findings:
            line, column = document.position(finding.finding.container.pointer)
            results.append(Result(document, workload, finding, line, column))
        for gap in verdict.unchecked:
            not_checked.append(NotChecked(document, workload, gap, document.position(gap.container.pointer)[0]))
        if not complete:
            unseen.update((workload.namespace, name) for name in verdict.unseen_secrets)
    results.sort(key=lambda r: (r.document.source, r.line, r.column))  # every format lists them by file and line
    not_checked.sort(key=lambda n: (n.document.source, n.line))
    return Report(paths, manifests, stock, results, source, unseen, not_checked=not_checked)
