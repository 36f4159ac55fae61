"""`pullguard serve`: wire policy, TLS, facts and routes together and run uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn
from prometheus_client import start_http_server

from policies.config import Policy
from webhook.admission.app import Service, create_app
from webhook.admission.http_guard import DrainingServer, guarded_protocol
from webhook.audit.auditor import Auditor
from webhook.certs import bundle as certs
from webhook.certs.management import ManagedCertificates
from webhook.certs.tls import ReloadingTLS
from webhook.kube.mutating_toggle import MutatingToggle
from webhook.metrics import Metrics
from webhook.node.keyring import NodeCredentialSource
from webhook.registry.client import RegistryClient
from webhook.review.facts import FactGatherer
from webhook.serve.listen import bind
from webhook.serve.options import ServeOptions
from webhook.sources.cluster import POLICY_KEY, connect, in_cluster, open_api, service_account_tokens
from webhook.sources.policy import PolicyFileWatcher, PolicyHolder
from webhook.sources.policy_file import read_policy_file
from webhook.util.memory import keep_large_buffers_returnable

log = logging.getLogger("pullguard.server")


def build_service(options: ServeOptions, metrics: Metrics, policy: Policy | None = None) -> Service:
    """`policy`: the --config file as already read. Raises PolicyError when that file is missing or invalid: the
    embedded default must never stand in for a policy someone gave (later bad edits keep the last good one)."""
    background: list[Callable[[], Coroutine[Any, Any, None]]] = []
    if options.config is not None:
        initial = read_policy_file(options.config) if policy is None else policy
        holder = PolicyHolder(metrics, initial, str(options.config))
        watcher = PolicyFileWatcher(holder, options.config, options.poll_seconds)
        watcher.poll()  # takes the file's signature; a change since the read above is judged like any edit
        background.append(watcher.run)
    else:
        holder = PolicyHolder(metrics)
    registry = None if options.offline else RegistryClient(metrics)
    shutdown: list[Callable[[], Coroutine[Any, Any, None]]] = [registry.close] if registry is not None else []
    readiness: list[Callable[[], list[str]]] = []
    view = None
    gatherer = FactGatherer(registry)
    if options.kubeconfig is not None or in_cluster():
        kubeconfig = str(options.kubeconfig) if options.kubeconfig else None
        # open_api raises ClusterAccessError for an unusable kubeconfig (exit 2); what the API server says later
        # (refused, forbidden) is a readiness problem the caches name, never an exit of a serving webhook.
        api = open_api(kubeconfig)
        connection = connect(kubeconfig, holder, options.namespace, options.policy_configmap, api=api)
        view = connection.view
        gatherer = FactGatherer(registry, view, NodeCredentialSource(service_account_tokens(api, view)))
        # The policy's `audit` section turns it on and sets its pace, live; off by default. One replica audits.
        audit = holder.policy.audit
        auditor = Auditor(api, gatherer, holder, audit.interval_seconds, audit.lookups_per_second,
                          registry=metrics.registry, lease_namespace=options.namespace)  # fmt: skip
        auditor.follow_policy = True
        background.append(auditor.run)
        readiness.append(connection.problems)  # /readyz waits for the first LIST of every cache

        async def disconnect() -> None:
            await asyncio.to_thread(connection.stop)

        shutdown.append(disconnect)
    namespace = options.namespace if view is not None else None  # the policy ConfigMap is followed
    return Service(
        policy_configmap=(namespace, options.policy_configmap, POLICY_KEY) if namespace else None,
        holder=holder,
        metrics=metrics,
        gatherer=gatherer,
        readiness=readiness,
        background=background,
        shutdown=shutdown,
    )


def serve(options: ServeOptions) -> None:
    """Raises PolicyError (before writing certificates or binding the port) for a bad --config file,
    CannotListen (before anything starts) when the port cannot be bound, and ClusterAccessError for an unusable
    --kubeconfig."""
    metrics = Metrics()
    policy = read_policy_file(options.config) if options.config is not None else None
    listening = bind(options.host, options.port)  # CannotListen: before any start-up work or log line
    keep_large_buffers_returnable()
    managed = None
    api = None
    if options.certificates is not None:
        api = open_api(str(options.kubeconfig) if options.kubeconfig else None)
        managed = ManagedCertificates(api, options.certificates, options.cert_dir, [*options.dns_names, *options.ips])
        paths = managed.start()
        log.info("serving certificate managed", extra={"fields": {"secret": options.certificates.secret_name}})
    else:
        paths, generated = certs.ensure(options.cert_dir, options.dns_names, options.ips)
        fields = {"caBundle": str(paths.ca_cert), "cert": str(paths.cert), "generated": generated}
        log.info("serving certificate ready", extra={"fields": fields})
    tls = ReloadingTLS(paths.cert, paths.key, metrics)
    if options.metrics_port:
        start_http_server(options.metrics_port, addr=options.metrics_host, registry=metrics.registry)
    service = build_service(options, metrics, policy)
    if managed is not None:
        service.readiness.append(managed.problems)
        stop_managed = managed.stop

        async def stop_certificates() -> None:
            await asyncio.to_thread(stop_managed)

        service.shutdown = (*service.shutdown, stop_certificates)
        if options.mutating_toggle and api is not None and options.certificates is not None:
            _toggle_mutating(service, api, options.certificates.webhook_configuration)
    app = create_app(service)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http=guarded_protocol(options.request_timeout),
        timeout_keep_alive=75,  # longer than the API server's idle connection reuse
        limit_concurrency=options.max_connections,
        timeout_graceful_shutdown=max(1, round(options.graceful_seconds)),
        server_header=False,
        proxy_headers=False,  # the API server calls directly: no X-Forwarded-* to trust (a middleware per request)
    )
    config.load()
    config.ssl = tls.context  # our own context, so certificate rotation needs no restart
    server = DrainingServer(config, options.shutdown_delay)
    service.readiness.append(server.readiness)
    log.info("pullguard listening", extra={"fields": {"url": f"https://{_host_for_url(options.host)}:{options.port}"}})
    server.run(sockets=[listening])


def _toggle_mutating(service: Service, api: Any, name: str) -> None:
    """No `/mutate` round trips while the live policy has no mirror rule (webhook/kube/mutating_toggle.py)."""
    holder = service.holder
    toggle = MutatingToggle(api, name, lambda: bool(holder.policy.mirrors))
    toggle.start()

    async def stop_toggle() -> None:
        await asyncio.to_thread(toggle.stop)

    service.background = (*service.background, toggle.follow)
    service.shutdown = (*service.shutdown, stop_toggle)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
