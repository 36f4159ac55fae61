"""Shared by the registry harness tests (test_registry_harness_*.py): reading the error codes, Bearer challenges
and unverified JWTs out of real distribution 2.8 responses."""

from __future__ import annotations

from typing import Any

import httpx
import jwt

from tests.support.registry_auth import parse_www_authenticate


def errors(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def bearer(response: httpx.Response) -> dict[str, str]:
    challenges = parse_www_authenticate(response.headers.get_list("www-authenticate"))
    assert [c.scheme for c in challenges] == ["bearer"], response.headers
    return challenges[0].params


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
