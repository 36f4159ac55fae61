"""`pullguard serve | certs | check`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from policies.config import PolicyError
from webhook import logs
from webhook.certs.bundle import generate
from webhook.certs.settings import CertSettings
from webhook.check.command import CheckOptions, run_check
from webhook.check.progress import LINE_SECONDS
from webhook.dev import command as dev
from webhook.explain import command as explain
from webhook.formats import CHECK_FORMATS, DEFAULT_CHECK_FORMAT
from webhook.formats.report import FAIL_ON_LEVELS
from webhook.serve.listen import EXIT_CANNOT_LISTEN, CannotListen
from webhook.serve.options import ServeOptions
from webhook.sources.cluster import ClusterAccessError
from webhook.version import version

# Defaults live in ServeOptions, CertSettings and CheckOptions (one home each); the flags below read them from here.
SERVE_DEFAULTS = ServeOptions()
CERT_DEFAULTS = CertSettings(namespace="")  # the namespace has no default: --manage-certs needs --namespace
CHECK_DEFAULTS = CheckOptions()


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag says its default: the value argparse knows, "off" for a switch, "required" when there is none.
    A help text that names its default in words (e.g. "the embedded policy") keeps its own."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if action.required:
            return f"{text} (required)"
        if action.nargs == 0 and action.const is True:  # store_true
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pullguard", description="Stop ImagePullBackOff before it happens.", formatter_class=_Help
    )
    parser.add_argument("--version", action="version", version=f"pullguard {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the admission webhook (HTTPS)", formatter_class=_Help)
    serve.add_argument(
        "--host", default=os.environ.get("PULLGUARD_HOST", SERVE_DEFAULTS.host), help="address to listen on"
    )
    serve.add_argument(
        "--port", type=int, default=int(os.environ.get("PULLGUARD_PORT", SERVE_DEFAULTS.port)), help="port to listen on"
    )
    serve.add_argument(
        "--cert-dir",
        type=Path,
        default=Path(os.environ.get("PULLGUARD_CERT_DIR", SERVE_DEFAULTS.cert_dir)),
        help="tls.crt/tls.key (and ca.crt); generated here when absent",
    )
    serve.add_argument(
        "--config",
        type=Path,
        default=_env_path("PULLGUARD_CONFIG"),
        help="policy YAML, re-read on change; missing or invalid at start: exit 2 "
        "(default: $PULLGUARD_CONFIG, else the embedded policy)",
    )
    # None, not the list: "append" would add to the default instead of replacing it
    serve.add_argument(
        "--dns",
        action="append",
        default=None,
        help=f"DNS SAN for a generated certificate (default: {', '.join(SERVE_DEFAULTS.dns_names)})",
    )
    serve.add_argument(
        "--ip",
        action="append",
        default=None,
        help=f"IP SAN for a generated certificate (default: {', '.join(SERVE_DEFAULTS.ips)})",
    )
    serve.add_argument(
        "--offline", action="store_true", default=SERVE_DEFAULTS.offline, help="make no registry lookups"
    )
    serve.add_argument(
        "--kubeconfig",
        type=Path,
        default=_env_path("PULLGUARD_KUBECONFIG"),
        help="cluster access (default: $PULLGUARD_KUBECONFIG, else in-cluster when in a pod, else no cluster view)",
    )
    serve.add_argument(
        "--namespace",
        default=os.environ.get("PULLGUARD_NAMESPACE"),
        help="namespace of the policy ConfigMap, the webhook's own (default: $PULLGUARD_NAMESPACE; unset: no "
        "ConfigMap policy)",
    )
    serve.add_argument(
        "--policy-configmap", default=SERVE_DEFAULTS.policy_configmap, help="ConfigMap holding policy.yaml"
    )
    serve.add_argument(
        "--manage-certs",
        action="store_true",
        help="keep the CA and serving certificate in a Secret of --namespace (created, rotated at two thirds of "
        "its life) and inject the CA into the webhook configurations; --cert-dir must be writable",
    )
    serve.add_argument("--tls-secret", default=CERT_DEFAULTS.secret_name, help="with --manage-certs: the Secret")
    serve.add_argument(
        "--service",
        default=CERT_DEFAULTS.service,
        help="with --manage-certs: the Service whose names the certificate covers",
    )
    serve.add_argument(
        "--webhook-configuration",
        default=CERT_DEFAULTS.webhook_configuration,
        help="with --manage-certs: the Validating/MutatingWebhookConfiguration that gets the CA",
    )
    serve.add_argument(
        "--cert-check-seconds",
        type=float,
        default=CERT_DEFAULTS.check_seconds,
        help="with --manage-certs: how often the Secret is read",
    )
    serve.add_argument(
        "--mutate-only-with-mirrors",
        action="store_true",
        default=SERVE_DEFAULTS.mutating_toggle,
        help="with --manage-certs: while the policy has no mirror rule, keep the mutating webhook inert (a false "
        "matchCondition), so the API server makes no /mutate round trip; restored when a mirror rule appears",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=SERVE_DEFAULTS.request_timeout,
        help="seconds a request has to arrive whole, headers and body (slow clients are cut off)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=SERVE_DEFAULTS.max_connections,
        help="open connections; beyond them: HTTP 503",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=SERVE_DEFAULTS.metrics_port,
        help="also serve /metrics over plain HTTP on this port (0: off)",
    )
    serve.add_argument("--metrics-host", default=SERVE_DEFAULTS.metrics_host, help="address of --metrics-port")
    serve.add_argument(
        "--shutdown-delay",
        type=float,
        default=SERVE_DEFAULTS.shutdown_delay,
        help="on SIGTERM, seconds of answering while /readyz says not ready, so the endpoint is removed first",
    )
    serve.add_argument(
        "--log-level",
        default=os.environ.get("PULLGUARD_LOG_LEVEL", logs.DEFAULT_LEVEL),
        help="debug, info, warning or error",
    )

    make_certs = commands.add_parser(
        "certs", help="write a development CA and serving certificate", formatter_class=_Help
    )
    make_certs.add_argument("--out", type=Path, required=True, help="directory to write into")
    make_certs.add_argument(
        "--force", action="store_true", help="replace an existing CA (clients that trust the old one stop trusting)"
    )
    make_certs.add_argument("--dns", action="append", default=[], help="DNS SAN, repeatable (default: none)")
    make_certs.add_argument(
        "--ip", action="append", default=[], help="IP SAN, repeatable; give at least one --dns or --ip (default: none)"
    )

    explain.add_parser(commands)
    dev.add_parser(commands)

    check = commands.add_parser("check", help="check manifests as the webhook would (for CI)", formatter_class=_Help)
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
    check.add_argument("--format", choices=tuple(CHECK_FORMATS), default=DEFAULT_CHECK_FORMAT, help="output format")
    cluster = check.add_mutually_exclusive_group()
    cluster.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="use the live cluster's Secrets, ServiceAccounts and Nodes (default: those in the input)",
    )
    cluster.add_argument(
        "--complete-input",
        action="store_true",
        help="the input holds every Secret, ServiceAccount and Node the workloads need, so a pull secret absent "
        "from it is missing (default: off: such a secret is reported as not verifiable, not as missing)",
    )
    check.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=CHECK_DEFAULTS.timeout,
        help="total seconds for the run, shared by every registry lookup (and the cluster's first sync); what is "
        "unknown when it ends is reported as could not verify",
    )
    check.add_argument(
        "--fail-on",
        choices=FAIL_ON_LEVELS,
        default=CHECK_DEFAULTS.fail_on,
        help="exit 1 on enforced findings only (enforce), also on warnings (warn: every finding but advisory "
        "ones), or also when a check could not run or a pull secret could not be verified (unverified)",
    )
    check.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip files in the directories given whose path, or one of its parts, matches (fnmatch; repeatable), "
        "e.g. --exclude templates for a chart's unrendered templates/; counted in the report",
    )
    check.add_argument(
        "--namespace",
        default=CHECK_DEFAULTS.namespace,
        help="namespace of objects that name none (as kubectl apply -n)",
    )
    check.add_argument(
        "--mutate",
        action="store_true",
        help="first rewrite images to the policy's mirrors as the mutating webhook would (each rewrite and each "
        "image kept, with the reason, on stderr), then judge the rewritten objects",
    )
    check.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "off"),
        default=CHECK_DEFAULTS.progress,
        help="progress on stderr for runs over 2s: auto is a bar on a terminal, a line every "
        "--progress-interval seconds elsewhere",
    )
    check.add_argument(
        "--progress-interval",
        type=_positive_seconds,
        default=LINE_SECONDS,
        help="seconds between progress lines when stderr is not a terminal",
    )
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def serve_options(args: argparse.Namespace) -> ServeOptions:
    """`serve`'s parsed flags as the server takes them."""
    return ServeOptions(
        host=args.host,
        port=args.port,
        cert_dir=args.cert_dir,
        config=args.config,
        dns_names=args.dns or SERVE_DEFAULTS.dns_names,
        ips=args.ip or SERVE_DEFAULTS.ips,
        offline=args.offline,
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        policy_configmap=args.policy_configmap,
        request_timeout=args.request_timeout,
        max_connections=args.max_connections,
        shutdown_delay=args.shutdown_delay,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        certificates=CertSettings(
            args.namespace, args.tls_secret, args.service, args.webhook_configuration, args.cert_check_seconds
        )
        if args.manage_certs
        else None,
        mutating_toggle=args.mutate_only_with_mirrors,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        logs.configure(args.log_level)
        if args.manage_certs and not args.namespace:
            print("pullguard serve: --manage-certs needs --namespace (where the Secret lives)", file=sys.stderr)
            return 2
        try:
            from webhook.serve.server import serve  # noqa: PLC0415 - only `serve` loads the server and FastAPI

            serve(serve_options(args))
        except PolicyError as exc:  # raised before the port is bound: never serve a policy nobody gave
            print(f"pullguard serve: --config {exc}", file=sys.stderr)
            return 2
        except ClusterAccessError as exc:
            print(f"pullguard serve: {exc}", file=sys.stderr)
            return 2
        except CannotListen as exc:
            print(f"pullguard serve: {exc}", file=sys.stderr)
            return EXIT_CANNOT_LISTEN
        return 0
    if args.command == "explain":
        return explain.run(args)
    if args.command == "dev":
        logs.configure(args.log_level)
        return dev.run(args)
    if args.command == "certs":
        if not args.dns and not args.ip:
            print("pullguard certs: give at least one --dns or --ip", file=sys.stderr)
            return 2
        if (args.out / "ca.crt").exists() and not args.force:
            print(f"pullguard certs: {args.out / 'ca.crt'} exists; --force replaces it", file=sys.stderr)
            return 2
        try:
            paths = generate(args.out, args.dns, args.ip)
        except (ValueError, OSError) as exc:
            print(f"pullguard certs: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {paths.ca_cert}, {paths.cert}, {paths.key} (CA bundle: {paths.ca_cert})")
        return 0
    tty = args.progress == "bar" or (args.progress == "auto" and sys.stderr.isatty())
    return run_check(
        args.paths,
        args.config,
        args.offline,
        args.format,
        kubeconfig=args.kubeconfig,
        complete_input=args.complete_input,
        options=CheckOptions(
            timeout=args.timeout,
            fail_on=args.fail_on,
            namespace=args.namespace,
            progress=args.progress,
            progress_interval=None if tty else args.progress_interval,
            mutate=args.mutate,
            exclude=tuple(args.exclude),
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
