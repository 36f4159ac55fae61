"""Service account tokens for credential provider plugins with tokenAttributes (KEP-4412), from the API server.

The kubelet asks the TokenRequest API for a token bound to the pod being started (plugin.go
getServiceAccountToken). At admission the pod does not exist yet, so pullguard's token is bound to nothing
but the ServiceAccount and the audience; it needs `create` on `serviceaccounts/token`. Tokens are reused for
half their lifetime, so a plugin with cacheType Token is not exec'd for every review.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from kubernetes import client

from webhook.node.credential_providers import TokenUnavailable

__all__ = ["KubeServiceAccountTokens"]

TOKEN_SECONDS: Final = 600  # the API server's minimum expirationSeconds
_MAX_TOKENS: Final = 1024


class KubeServiceAccountTokens:
    """webhook.node.credential_providers.ServiceAccountTokens over a CoreV1Api; annotations come from the
    caller's cache of ServiceAccounts (`annotations_of(namespace, name)`, None when unknown)."""

    def __init__(
        self,
        core: Any,  # kubernetes.client.CoreV1Api (untyped)
        annotations_of: Callable[[str, str], Mapping[str, str] | None],
        *,
        timeout_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = core
        self._annotations_of = annotations_of
        self._timeout = timeout_seconds
        self._clock = clock
        self._tokens: OrderedDict[tuple[str, str, str], tuple[float, str]] = OrderedDict()

    def annotations(self, namespace: str, service_account: str) -> Mapping[str, str] | None:
        return self._annotations_of(namespace, service_account)

    async def token(self, namespace: str, service_account: str, audience: str) -> str:
        key = (namespace, service_account, audience)
        cached = self._tokens.get(key)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        body = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[audience], expiration_seconds=TOKEN_SECONDS)
        )
        who = f"ServiceAccount {namespace}/{service_account}"
        problem = ""
        try:
            async with asyncio.timeout(self._timeout):
                response = await asyncio.to_thread(
                    self._core.create_namespaced_service_account_token,
                    service_account,
                    namespace,
                    body,
                    _request_timeout=self._timeout,
                )
        except TimeoutError:
            problem = f"the token request for {who} timed out"
        except client.ApiException as exc:
            if exc.status == 403:
                problem = "pullguard may not create one (grant serviceaccounts/token create)"
            elif exc.status == 404:
                problem = f"{who} does not exist"
            else:
                problem = f"the token request for {who} failed with HTTP {exc.status}"
        except Exception as exc:  # connection errors of urllib3 and the like
            problem = f"the token request for {who} failed ({type(exc).__name__})"
        if problem:  # raised outside the handlers: the API error (headers, body) stays out of the chain
            raise TokenUnavailable(problem)
        token = getattr(getattr(response, "status", None), "token", None)
        if not isinstance(token, str) or not token:
            raise TokenUnavailable(f"the token request for {who} returned no token")
        self._tokens.pop(key, None)
        self._tokens[key] = (self._clock() + TOKEN_SECONDS / 2, token)
        while len(self._tokens) > _MAX_TOKENS:
            self._tokens.popitem(last=False)
        return token
