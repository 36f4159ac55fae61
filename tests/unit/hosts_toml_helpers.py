"""Shared by the hosts.toml tests (test_hosts_toml_upstream.py, test_hosts_toml_pullguard.py): capability sets
and a stand-in PEM file body."""

from __future__ import annotations

from webhook.registry.hosts import DEFAULT_CAPABILITIES, PULL

ALL_CAPS = DEFAULT_CAPABILITIES  # upstream's allCaps (pull|resolve|push; referrers only when listed)
PULL_ONLY = frozenset({PULL})

TEST_KEY = b"-----BEGIN PRIVATE KEY-----\nMIIEvwIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
