"""`make bench`: pod creates through a real kube-apiserver + etcd (the e2e harness's), pullguard's memory and time
to ready with a cluster's worth of objects cached, and a TLS connection storm.

- **Creates** (`bench/creates.py`): no webhook, a do-nothing webhook on pullguard's stack, and pullguard
  (validating + mutating, with its mutating webhook inert, and online with a mirror rule that rewrites every pod
  to a mirror on a loopback registry, against the do-nothing webhook making the same patch), interleaved in rounds;
  real and `dryRun=All`.
- **Scale** (`bench/scale.py`, objects from `bench/objects.py`): 5,000 pull Secrets / 2,000 ServiceAccounts /
  1,000 Nodes (and a Namespace per 100 Secrets), then 50,000 / 20,000 / 10,000 (`--skip-large` leaves that point
  out; `--scale` names the points instead). At each size: the RSS of a pullguard that watched the objects arrive
  (watch path) and of fresh ones that list them at start (start-up path), and their time to ready; then the RSS
  each cache adds alone (`bench/cache_cost.py`), per 10,000 objects.
- **Storm** (`bench/storm.py`): 200 new TLS connections at once.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from bench import history, storm
from bench.creates import run_creates
from bench.scale import run_scale

SMALL = [5000, 2000, 1000]
LARGE = [50000, 20000, 10000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=150, help="sequential creates per round and cell")
    parser.add_argument("--concurrent", type=int, default=400, help="creates by 8 creators per round and cell")
    parser.add_argument("--skip-creates", action="store_true")
    parser.add_argument(
        "--skip-mirror",
        action="store_true",
        help="leave the pullguard-mirror (a mirror rule rewriting every pod) and noop-patch targets out of the creates",
    )
    parser.add_argument("--skip-memory", action="store_true", help="skip the scale points (memory, time to ready)")
    parser.add_argument("--skip-storm", action="store_true", help="skip bench/storm.py's connection storm")
    parser.add_argument(
        "--scale",
        type=int,
        nargs=3,
        action="append",
        metavar=("SECRETS", "SERVICEACCOUNTS", "NODES"),
        help="scale points (repeatable; default 5000 2000 1000 and 50000 20000 10000)",
    )
    parser.add_argument(
        "--skip-large",
        action="store_true",
        help="leave the 50000/20000/10000 point out of the default scale points (creating it takes minutes)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="start-up path measurements per scale point")
    parser.add_argument(
        "--scale-timeout", type=float, default=1200, help="seconds allowed for creating all the scale objects"
    )
    parser.add_argument("--pullguard-args", nargs="*", default=[], help="more `serve` flags for pullguard")
    parser.add_argument("--record", action="store_true", help="append this run to bench/RESULTS.md's figure history")
    parser.add_argument("--note", default="", help="the recorded row's note (what the run was of)")
    args = parser.parse_args()
    if args.scale is None:
        args.scale = [SMALL] if args.skip_large else [SMALL, LARGE]
    work = Path(tempfile.mkdtemp(prefix="pullguard-bench-api-"))
    try:
        report: list[str] = []
        figures: dict[str, dict[str, float]] = {}
        if not args.skip_creates:
            report += run_creates(args, work, figures)
        if not args.skip_memory:
            report += ["", *run_scale(args, work, figures)]
        if not args.skip_storm:
            report += ["", *storm.run(200, 5, [" ".join(args.pullguard_args)], figures)]
        print("\n" + "\n".join(report))
        print("\n" + history.report(figures, record=args.record, note=args.note))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
