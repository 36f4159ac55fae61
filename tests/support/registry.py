"""Real CNCF distribution (``docker-registry`` 2.8) processes on loopback for tests.

Four variants, each a function returning a running :class:`RegistryServer` and a context
manager around it:

======================  ===========================  =============================================
variant                 start function               context manager
======================  ===========================  =============================================
(a) plain HTTP, anon    :func:`start_plain_registry`  :func:`plain_registry`
(b) TLS + htpasswd      :func:`start_basic_registry`  :func:`basic_registry`
(c) token auth          :func:`start_token_registry`  :func:`token_registry`
(d) pull-through proxy  :func:`start_proxy_registry`  :func:`proxy_registry`
======================  ===========================  =============================================

Each process gets its own generated ``config.yml`` and filesystem storage in a work
directory, listens on ``127.0.0.1:<free port>`` (no debug listener: ``http.debug`` is left
out, so there is no second port to collide), logs at ``warn`` into ``registry.log`` in the work
directory, and is considered up once ``GET /v2/`` answers.  ``stop()`` terminates, then kills;
live servers are also stopped at interpreter exit, and when started from the main thread the
process gets ``PR_SET_PDEATHSIG=SIGKILL`` (via ``setpriv``) so it dies with the test run even if
that is SIGKILLed.  The child environment is scrubbed, so stray ``REGISTRY_*`` variables cannot
change the configuration.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .registry_process import (
    REGISTRY_BINARY,
    RegistryKind,
    RegistryServer,
    RegistryStartError,
    _base_config,
    _finish,
    _prepare_workdir,
    free_port,
    registry_available,
    registry_binary,
    skip_reason,
    start_registry,
)
from .tlsgen import CertificateAuthority, generate_ca
from .token_issuer import TokenIssuer, TokenUser, start_token_issuer

__all__ = [
    "DEFAULT_BASIC_USERS",
    "DEFAULT_TOKEN_USERS",
    "REGISTRY_BINARY",
    "RegistryKind",
    "RegistryServer",
    "RegistryStartError",
    "basic_registry",
    "free_port",
    "plain_registry",
    "proxy_registry",
    "registry_available",
    "registry_binary",
    "skip_reason",
    "start_basic_registry",
    "start_plain_registry",
    "start_proxy_registry",
    "start_registry",
    "start_token_registry",
    "token_registry",
    "write_htpasswd",
]


#: htpasswd users of the basic-auth registry (username -> password).
DEFAULT_BASIC_USERS: dict[str, str] = {"pullguard": "pullguard-basic-pass", "other": "other-basic-pass"}


#: Token-issuer users of the token registry: ``admin`` may do anything (it is the pusher),
#: ``reader`` may pull everything, ``limited`` may only pull ``allowed/*``.
DEFAULT_TOKEN_USERS: dict[str, TokenUser] = {
    "admin": TokenUser("admin-token-pass", {"*": ["*"]}),
    "reader": TokenUser("reader-token-pass", {"*": ["pull"]}),
    "limited": TokenUser("limited-token-pass", {"allowed/*": ["pull"]}),
}


def _tls_section(ca: CertificateAuthority, workdir: Path) -> dict[str, str]:
    issued = ca.issue_server_cert(workdir / "tls", stem="registry")
    return {"certificate": str(issued.cert_file), "key": str(issued.key_file)}


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    """Write a bcrypt htpasswd file (distribution only accepts bcrypt entries)."""
    lines: list[str] = []
    bcrypt: Any = None
    with contextlib.suppress(ImportError):
        bcrypt = importlib.import_module("bcrypt")
    for username, password in users.items():
        if bcrypt is not None:
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            lines.append(f"{username}:{hashed}")
            continue
        htpasswd = shutil.which("htpasswd")
        if htpasswd is None:
            raise RegistryStartError("need `htpasswd` (apache2-utils) or the bcrypt module for basic auth")
        out = subprocess.run(
            [htpasswd, "-Bbn", "-C", "4", username, password], check=True, capture_output=True, text=True
        ).stdout
        lines.append(out.strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def start_plain_registry(*, workdir: Path | None = None, access_log: bool = False) -> RegistryServer:
    """(a) Plain HTTP, anonymous pull and push."""
    root, remove = _prepare_workdir(workdir, RegistryKind.PLAIN)
    config = _base_config(root / "storage", access_log=access_log)
    return _finish(RegistryKind.PLAIN, config, root, remove)


def start_basic_registry(
    *,
    workdir: Path | None = None,
    users: Mapping[str, str] | None = None,
    ca: CertificateAuthority | None = None,
    tls: bool = True,
    realm: str = "pullguard-test-basic",
    access_log: bool = False,
) -> RegistryServer:
    """(b) TLS (certificate from ``ca``, a fresh CA by default) + htpasswd basic auth.

    ``username``/``password`` of the result are the first entry of ``users``.
    """
    root, remove = _prepare_workdir(workdir, RegistryKind.BASIC)
    users = dict(users or DEFAULT_BASIC_USERS)
    config = _base_config(root / "storage", access_log=access_log)
    htpasswd = write_htpasswd(root / "htpasswd", users)
    config["auth"] = {"htpasswd": {"realm": realm, "path": str(htpasswd)}}
    if tls:
        ca = ca or generate_ca(root / "ca")
        config["http"]["tls"] = _tls_section(ca, root)
    else:
        ca = None
    first_user, first_password = next(iter(users.items()))
    return _finish(
        RegistryKind.BASIC,
        config,
        root,
        remove,
        ca=ca,
        username=first_user,
        password=first_password,
        users=users,
    )


def start_token_registry(
    *,
    workdir: Path | None = None,
    issuer: TokenIssuer | None = None,
    users: Mapping[str, TokenUser] | None = None,
    pusher: str = "admin",
    ca: CertificateAuthority | None = None,
    tls: bool = False,
    issuer_tls: bool = False,
    access_log: bool = False,
    **issuer_kwargs: Any,
) -> RegistryServer:
    """(c) ``auth: token`` against a :class:`TokenIssuer`.

    Without ``issuer`` a new one is started (users default to :data:`DEFAULT_TOKEN_USERS`,
    ``issuer_kwargs`` go to :func:`start_token_issuer`) and stopped with the registry.
    ``pusher`` names the user whose credentials become ``username``/``password``.
    ``tls`` serves the registry over HTTPS with a certificate from ``ca`` (a fresh CA by default);
    ``issuer_tls`` does the same for a token issuer started here (same CA, so one trust bundle
    covers both).
    """
    root, remove = _prepare_workdir(workdir, RegistryKind.TOKEN)
    owned = issuer is None
    token_users = dict(users or DEFAULT_TOKEN_USERS)
    if (tls or (issuer_tls and owned)) and ca is None:
        ca = generate_ca(root / "ca")
    try:
        if issuer is None:
            issuer = start_token_issuer(
                root / "token-issuer", users=token_users, ca=ca if issuer_tls else None, **issuer_kwargs
            )
        else:
            token_users = issuer.users
        config = _base_config(root / "storage", access_log=access_log)
        config["auth"] = {
            "token": {
                "realm": issuer.realm,
                "service": issuer.service,
                "issuer": issuer.issuer,
                "rootcertbundle": str(issuer.rootcertbundle),
            }
        }
        if tls:
            assert ca is not None
            config["http"]["tls"] = _tls_section(ca, root)
        pusher_user = token_users.get(pusher)
        server = _finish(
            RegistryKind.TOKEN,
            config,
            root,
            remove,
            ca=ca,
            username=pusher if pusher_user else None,
            password=pusher_user.password if pusher_user else None,
            users={name: user.password for name, user in token_users.items()},
            token_issuer=issuer,
            _owned_issuer=owned,
        )
    except BaseException:
        if owned and issuer is not None:
            issuer.stop()
        raise
    return server


def start_proxy_registry(
    remote: RegistryServer | str,
    *,
    workdir: Path | None = None,
    username: str | None = None,
    password: str | None = None,
    remote_ca_file: Path | None = None,
    access_log: bool = False,
) -> RegistryServer:
    """(d) Pull-through cache (``proxy.remoteurl``) in front of ``remote`` (a server or a URL).

    distribution 2.8 only uses ``username``/``password`` for **Bearer** upstreams: at startup
    it GETs ``<remote>/v2/`` and files the credentials under each Bearer challenge's realm, so a
    token-auth remote works, a Basic-auth (htpasswd) remote does not.  The remote must be up
    when the proxy starts.  For an HTTPS remote its CA is handed to the Go process through
    ``SSL_CERT_FILE`` (taken from ``remote.ca_file`` unless ``remote_ca_file`` is given).
    """
    root, remove = _prepare_workdir(workdir, RegistryKind.PROXY)
    if isinstance(remote, RegistryServer):
        remote_url = remote.url
        remote_ca_file = remote_ca_file or remote.ca_file
    else:
        remote_url = remote.rstrip("/")
    config = _base_config(root / "storage", access_log=access_log)
    proxy: dict[str, str] = {"remoteurl": remote_url}
    if username is not None:
        proxy["username"] = username
        proxy["password"] = password or ""
    config["proxy"] = proxy
    env = {"SSL_CERT_FILE": str(remote_ca_file)} if remote_ca_file else None
    return _finish(RegistryKind.PROXY, config, root, remove, env=env, remote_url=remote_url)


@contextlib.contextmanager
def _running(server: RegistryServer) -> Iterator[RegistryServer]:
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def plain_registry(**kwargs: Any) -> Iterator[RegistryServer]:
    with _running(start_plain_registry(**kwargs)) as server:
        yield server


@contextlib.contextmanager
def basic_registry(**kwargs: Any) -> Iterator[RegistryServer]:
    with _running(start_basic_registry(**kwargs)) as server:
        yield server


@contextlib.contextmanager
def token_registry(**kwargs: Any) -> Iterator[RegistryServer]:
    with _running(start_token_registry(**kwargs)) as server:
        yield server


@contextlib.contextmanager
def proxy_registry(remote: RegistryServer | str, **kwargs: Any) -> Iterator[RegistryServer]:
    with _running(start_proxy_registry(remote, **kwargs)) as server:
        yield server
