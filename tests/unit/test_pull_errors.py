"""webhook.explain.pull_errors: real runtime texts (tests/data/pull_errors/, credited there) -> class, image, host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.registry_facts import LookupStatus
from webhook.explain.pull_errors import REPRODUCED_BY, PullErrorClass, classify

DATA = Path(__file__).resolve().parents[1] / "data" / "pull_errors" / "texts.yaml"
ENTRIES: list[dict[str, Any]] = yaml.safe_load(DATA.read_text(encoding="utf-8"))


def test_the_table_is_real_and_covers_every_class() -> None:
    assert len(ENTRIES) >= 25
    assert all(str(e["source"]).startswith("https://github.com/") for e in ENTRIES)
    readme = (DATA.parent / "README.md").read_text(encoding="utf-8")
    assert all(e["source"] in readme for e in ENTRIES), "every source is credited in the README"
    covered = {e["class"] for e in ENTRIES}
    assert covered == {c.value for c in PullErrorClass} - {"unknown", "serverError"}, covered
    assert any("sandbox" in e for e in ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{i}-{e['class']}" for i, e in enumerate(ENTRIES)])
def test_real_texts(entry: dict[str, Any]) -> None:
    found = classify(entry["text"], entry.get("reason", ""))
    assert found.klass == entry["class"], found
    if "image" in entry:
        assert found.image == entry["image"]
    if "host" in entry:
        assert found.host == entry["host"]
    if "sandbox" in entry:
        assert found.sandbox_image == entry["sandbox"]
        assert "sandbox image" in found.summary and "sandbox_image" in found.fix()
    else:
        assert found.sandbox_image is None
    assert found.detail and "rpc error" not in found.detail and len(found.detail) <= 300


# containerd 1.6 texts as tests/support/containerd.py quotes them from real `ctr` pulls, wrapped the way the
# kubelet wraps CRI errors. Each class must hold however the same cause is wrapped.
KUBELET = 'Failed to pull image "{ref}": rpc error: code = {code} desc = failed to pull and unpack image "{ref}": '
RESOLVE = 'failed to resolve reference "{ref}": '
CONTAINERD: list[tuple[str, str, PullErrorClass]] = [
    ("NotFound", RESOLVE + "{ref}: not found", PullErrorClass.NOT_FOUND),
    (
        "Unknown",
        RESOLVE + "pulling from host 127.0.0.1:5000 failed with status code [manifests 1]: 401 Unauthorized",
        PullErrorClass.UNAUTHORIZED,
    ),
    (
        "Unknown",
        RESOLVE + "pulling from host 127.0.0.1:5000 failed with status code [manifests 1]: 403 Forbidden",
        PullErrorClass.DENIED,
    ),
    (
        "Unknown",
        RESOLVE + "pull access denied, repository does not exist or may require authorization: server message: "
        "insufficient_scope: authorization failed",
        PullErrorClass.DENIED,
    ),
    (
        "Unknown",
        RESOLVE + "pulling from host 127.0.0.1:5000 failed with status code [manifests 1]: 429 Too Many Requests",
        PullErrorClass.RATE_LIMITED,
    ),
    (
        "Unknown",
        RESOLVE + "pulling from host 127.0.0.1:5000 failed with status code [manifests 1]: 500 Internal Server Error",
        PullErrorClass.SERVER_ERROR,
    ),
    (
        "Unknown",
        RESOLVE + 'failed to do request: Head "https://127.0.0.1:5000/v2/app/manifests/1": dial tcp 127.0.0.1:5000: '
        "connect: connection refused",
        PullErrorClass.REFUSED,
    ),
    (
        "Unknown",
        RESOLVE + 'failed to do request: Head "https://127.0.0.1:5000/v2/app/manifests/1": http: server gave HTTP '
        "response to HTTPS client",
        PullErrorClass.TLS,
    ),
    (
        "Unknown",
        RESOLVE + 'failed to do request: Head "https://nowhere.invalid/v2/app/manifests/1": dial tcp: lookup '
        "nowhere.invalid on 127.0.0.1:53: no such host",
        PullErrorClass.DNS,
    ),
    ("NotFound", "no match for platform in manifest sha256:df2f: not found", PullErrorClass.NO_MATCHING_PLATFORM),
]


@pytest.mark.parametrize(("code", "cause", "klass"), CONTAINERD)
def test_containerd_texts_as_the_kubelet_wraps_them(code: str, cause: str, klass: PullErrorClass) -> None:
    ref = "127.0.0.1:5000/app:1"
    text = (KUBELET + cause).format(ref=ref, code=code)
    found = classify(text)
    assert found.klass is klass, found
    assert found.image == ref
    assert found.host == "127.0.0.1:5000" or klass in (PullErrorClass.DNS, PullErrorClass.NO_MATCHING_PLATFORM)
    # The same cause without the kubelet's wrapping (a container's waiting message) is the same class.
    assert classify(cause.format(ref=ref)).klass is klass


def test_reason_decides_when_the_text_names_no_cause() -> None:
    assert classify("", "InvalidImageName").klass is PullErrorClass.INVALID_NAME
    assert classify("", "ErrImageNeverPull").klass is PullErrorClass.NEVER_PULL
    assert classify('Back-off pulling image "x:1"', "ImagePullBackOff").klass is PullErrorClass.UNKNOWN
    assert classify('Back-off pulling image "x:1"').image == "x:1"


def test_fix_names_what_it_knows() -> None:
    found = classify(
        'Failed to pull image "registry.example.com/team/app:1": x509: certificate signed by unknown authority'
    )
    assert found.klass is PullErrorClass.TLS_UNKNOWN_AUTHORITY
    assert "/etc/containerd/certs.d/registry.example.com/ca.crt" in found.fix()
    space = classify("write /var/lib/containerd/x: no space left on device")
    assert "node-7" in space.fix(node="node-7")
    assert found.registry_side and not space.registry_side


def test_each_registry_side_class_is_reproduced_by_a_lookup_outcome() -> None:
    assert REPRODUCED_BY[PullErrorClass.NOT_FOUND] == {LookupStatus.NOT_FOUND}
    assert all(statuses for statuses in REPRODUCED_BY.values())
    assert PullErrorClass.EXEC_FORMAT not in REPRODUCED_BY and PullErrorClass.NO_SPACE not in REPRODUCED_BY


def test_long_texts_are_cut() -> None:
    found = classify("x" * 1000 + ": not found")
    assert found.klass is PullErrorClass.NOT_FOUND and len(found.detail) == 300 and found.detail.endswith("...")
