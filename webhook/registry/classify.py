"""Turn what happened on the wire into a `LookupStatus` and a few words of cause.

httpx wraps the socket-level cause (gaierror, ConnectionRefusedError, SSLCertVerificationError) in its own
exceptions; the cause chain is walked to find it, so the class is right whatever the wrapping.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator

import httpx
import orjson

from policies.registry_facts import Cause, LookupStatus


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify_exception(error: BaseException) -> tuple[LookupStatus, str]:
    for cause in _chain(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return LookupStatus.TLS, _verify_detail(cause)
        if isinstance(cause, ssl.SSLError):
            return LookupStatus.TLS, f"TLS handshake failed: {cause.reason or cause}"
        if isinstance(cause, socket.gaierror):
            return LookupStatus.DNS, f"lookup failed: {cause.strerror or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return LookupStatus.REFUSED, "connection refused"
    if isinstance(error, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connect",
            httpx.ReadTimeout: "read",
            httpx.WriteTimeout: "write",
            httpx.PoolTimeout: "connection pool",
        }.get(type(error), "request")
        return LookupStatus.TIMEOUT, f"{phase} timeout"
    text = str(error)
    if isinstance(error, httpx.RemoteProtocolError):
        return LookupStatus.MALFORMED, f"incomplete or invalid HTTP response: {text}"
    lowered = text.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "name resolution" in lowered:
        return LookupStatus.DNS, f"lookup failed: {text}"
    if "connection refused" in lowered or "errno 111" in lowered:
        return LookupStatus.REFUSED, "connection refused"
    if "certificate" in lowered or "ssl" in lowered:
        return LookupStatus.TLS, text
    if isinstance(error, httpx.ConnectError | httpx.NetworkError):
        return LookupStatus.REFUSED, f"connection failed: {text or type(error).__name__}"
    return LookupStatus.MALFORMED, f"{type(error).__name__}: {text}" if text else type(error).__name__


# OpenSSL's X509_V_ERR_* codes (x509_vfy.h), as ssl.SSLCertVerificationError.verify_code carries them.
_NAME_MISMATCH = frozenset({62, 64})  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
_DATES = frozenset({9, 10})  # CERT_NOT_YET_VALID, CERT_HAS_EXPIRED


def certificate_cause(error: BaseException) -> Cause | None:
    """Which certificate problem a TLS failure was, from OpenSSL's verify code (never from its words)."""
    for cause in _chain(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            if cause.verify_code in _NAME_MISMATCH:
                return Cause.CERTIFICATE_NAME
            return Cause.CERTIFICATE_DATES if cause.verify_code in _DATES else None
    return None


def _verify_detail(error: ssl.SSLCertVerificationError) -> str:
    message = str(error.verify_message or error.reason or error)
    lowered = message.lower()
    if "unable to get local issuer" in lowered or "self-signed" in lowered or "self signed" in lowered:
        return f"x509: certificate signed by unknown authority ({message})"
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        return f"x509: certificate is not valid for this host ({message}; hostname mismatch)"
    if "expired" in lowered:
        return f"x509: certificate has expired ({message})"
    return f"x509: {message}"


_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def error_codes(response: httpx.Response) -> list[str]:
    """The distribution error codes in a JSON error body (`{"errors": [{"code": ...}]}`), if any."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    # Only what a distribution error code can be (UPPER_SNAKE): any other text in that field is not quoted.
    codes = (e.get("code") for e in errors[:8] if isinstance(e, dict))
    return [code for code in codes if isinstance(code, str) and _ERROR_CODE.fullmatch(code)]


def classify_status(response: httpx.Response) -> tuple[LookupStatus, str]:
    """The class of a non-2xx answer (401 is handled by the caller, who knows whether it authenticated)."""
    code = response.status_code
    codes = error_codes(response)
    detail = f"HTTP {code}" + (f" {', '.join(codes)}" if codes else "")
    if code == 404 or {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"} & set(codes):
        return LookupStatus.NOT_FOUND, detail
    if code == 401:
        return LookupStatus.UNAUTHORIZED, detail
    if code == 403 or "DENIED" in codes:
        return LookupStatus.DENIED, detail
    if code == 429 or "TOOMANYREQUESTS" in codes:
        return LookupStatus.RATE_LIMITED, detail
    if code >= 500:
        return LookupStatus.SERVER_ERROR, detail
    return LookupStatus.MALFORMED, f"unexpected {detail}"


def rate_limit(response: httpx.Response) -> tuple[str, float | None]:
    """Docker Hub style `ratelimit-limit`/`ratelimit-remaining` and `Retry-After` (seconds form)."""
    limit = response.headers.get("ratelimit-limit", "")
    remaining = response.headers.get("ratelimit-remaining", "")
    summary = f"remaining {remaining} of {limit}" if limit or remaining else ""
    retry = response.headers.get("retry-after", "")
    try:
        seconds = float(retry) if retry else None
    except ValueError:
        seconds = None  # the HTTP-date form: not worth a date parser here
    return summary, seconds
