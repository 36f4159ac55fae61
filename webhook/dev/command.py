"""`pullguard dev --kubeconfig K`: run `serve` here as the cluster's pullguard (webhook/dev/redirect.py), with a
certificate of its own for the address the API server dials, and put the cluster back on exit."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from webhook import logs
from webhook.certs.bundle import generate
from webhook.dev.redirect import Redirect
from webhook.kube.informers import load_api_client
from webhook.serve.options import ServeOptions


@dataclass(frozen=True)
class DevOptions:
    kubeconfig: Path
    namespace: str = "pullguard"
    name: str = "pullguard"  # the webhook configurations and the Deployment
    host: str = "0.0.0.0"  # noqa: S104 - the API server is another machine in most clusters
    port: int = 8443
    address: str = "localhost"  # how the API server reaches this machine (DNS name or IP)
    cert_dir: Path = Path("certs/dev")
    offline: bool = False
    restore_only: bool = False


def run_dev(options: DevOptions) -> int:
    api = load_api_client(str(options.kubeconfig))
    redirect = Redirect(api, options.namespace, options.name)
    if options.restore_only:
        redirect.restore()
        return 0
    is_ip = options.address.replace(".", "").isdigit() or ":" in options.address
    paths = generate(options.cert_dir, [] if is_ip else [options.address], [options.address] if is_ip else [])
    host = f"[{options.address}]" if ":" in options.address else options.address
    url = f"https://{host}:{options.port}"
    serve_options = ServeOptions(
        host=options.host,
        port=options.port,
        cert_dir=paths.directory,
        offline=options.offline,
        kubeconfig=options.kubeconfig,
        namespace=options.namespace,
    )
    from webhook.serve.server import serve  # noqa: PLC0415 - only serving commands load the server

    try:
        redirect.point_at(url, paths.ca_cert.read_bytes())
        print(f"pullguard dev: the cluster's webhooks now call {url}; Ctrl-C puts them back", file=sys.stderr)
        serve(serve_options)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on: that is the normal way out
        pass
    finally:
        redirect.restore()
        print("pullguard dev: the cluster's webhooks and Deployment are back as they were", file=sys.stderr)
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    defaults = DevOptions(kubeconfig=Path())
    dev = commands.add_parser(
        "dev",
        help="run serve here as the cluster's pullguard: its webhooks call this machine until you stop it",
        description=(__doc__ or "").splitlines()[0],
    )
    dev.add_argument("--kubeconfig", type=Path, required=True, help="the cluster whose pullguard to stand in for")
    dev.add_argument("--namespace", default=defaults.namespace, help="the install's namespace")
    dev.add_argument("--host", default=defaults.host, help="address to listen on")
    dev.add_argument("--port", type=int, default=defaults.port, help="port to listen on")
    dev.add_argument(
        "--address",
        default=defaults.address,
        help="the DNS name or IP the API server reaches this machine at (the webhooks' URL and the certificate's "
        "name); localhost only when the API server runs here",
    )
    dev.add_argument("--cert-dir", type=Path, default=defaults.cert_dir, help="where the dev certificate is written")
    dev.add_argument("--offline", action="store_true", help="make no registry lookups")
    dev.add_argument("--log-level", default=os.environ.get("PULLGUARD_LOG_LEVEL", logs.DEFAULT_LEVEL))
    dev.add_argument(
        "--restore",
        action="store_true",
        help="only put the webhooks and the Deployment back (after a run that was killed)",
    )


def run(args: argparse.Namespace) -> int:
    options = DevOptions(
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        host=args.host,
        port=args.port,
        address=args.address,
        cert_dir=args.cert_dir,
        offline=args.offline,
        restore_only=args.restore,
    )
    try:
        return run_dev(options)
    except ApiException as exc:
        print(f"pullguard dev: the cluster refused: {exc.status} {exc.reason}", file=sys.stderr)
        return 2
