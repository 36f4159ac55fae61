"""`pullguard serve | certs | check`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from webhook import logs
from webhook.certs import generate
from webhook.check_cmd import run_check


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pullguard", description="Stop ImagePullBackOff before it happens.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the admission webhook (HTTPS)")
    serve.add_argument("--host", default=os.environ.get("PULLGUARD_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PULLGUARD_PORT", "8443")))
    serve.add_argument(
        "--cert-dir",
        type=Path,
        default=Path(os.environ.get("PULLGUARD_CERT_DIR", "certs")),
        help="tls.crt/tls.key (and ca.crt); generated here when absent",
    )
    serve.add_argument(
        "--config",
        type=Path,
        default=_env_path("PULLGUARD_CONFIG"),
        help="policy YAML, re-read on change (default: the embedded policy)",
    )
    serve.add_argument("--dns", action="append", default=None, help="SAN for a generated certificate")
    serve.add_argument("--ip", action="append", default=None, help="IP SAN for a generated certificate")
    serve.add_argument("--offline", action="store_true", help="make no registry lookups")
    serve.add_argument(
        "--kubeconfig",
        type=Path,
        default=_env_path("PULLGUARD_KUBECONFIG"),
        help="cluster access (default: in-cluster when running in a pod, else no cluster view)",
    )
    serve.add_argument(
        "--namespace",
        default=os.environ.get("PULLGUARD_NAMESPACE"),
        help="namespace of the policy ConfigMap (the webhook's own)",
    )
    serve.add_argument("--policy-configmap", default="pullguard-policy", help="ConfigMap holding policy.yaml")
    serve.add_argument("--log-level", default=os.environ.get("PULLGUARD_LOG_LEVEL", "info"))

    make_certs = commands.add_parser("certs", help="write a development CA and serving certificate")
    make_certs.add_argument("--out", type=Path, required=True)
    make_certs.add_argument("--dns", action="append", default=[], help="DNS SAN (repeatable)")
    make_certs.add_argument("--ip", action="append", default=[], help="IP SAN (repeatable)")

    check = commands.add_parser("check", help="check manifests as the webhook would (for CI)")
    check.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        required=True,
        help="file, directory or - for stdin (repeatable)",
    )
    check.add_argument("--config", type=Path, default=None, help="policy YAML (default: the embedded policy)")
    check.add_argument("--offline", action="store_true", help="do not contact registries")
    check.add_argument("--format", choices=("table", "json", "sarif"), default="table")
    check.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="use the live cluster's Secrets, ServiceAccounts and Nodes (default: those in the input)",
    )
    return parser


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        # Imported here: FastAPI and uvicorn take most of a second to import, which `check` in CI need not pay.
        from webhook.server import ServeOptions, serve  # noqa: PLC0415

        logs.configure(args.log_level)
        defaults = ServeOptions()
        serve(
            ServeOptions(
                host=args.host,
                port=args.port,
                cert_dir=args.cert_dir,
                config=args.config,
                dns_names=args.dns or defaults.dns_names,
                ips=args.ip or defaults.ips,
                offline=args.offline,
                kubeconfig=args.kubeconfig,
                namespace=args.namespace,
                policy_configmap=args.policy_configmap,
            )
        )
        return 0
    if args.command == "certs":
        if not args.dns and not args.ip:
            print("pullguard certs: give at least one --dns or --ip", file=sys.stderr)
            return 2
        try:
            paths = generate(args.out, args.dns, args.ip)
        except (ValueError, OSError) as exc:
            print(f"pullguard certs: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {paths.ca_cert}, {paths.cert}, {paths.key} (CA bundle: {paths.ca_cert})")
        return 0
    return run_check(args.paths, args.config, args.offline, args.format, args.kubeconfig)


if __name__ == "__main__":
    sys.exit(main())
