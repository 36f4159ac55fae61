"""pullguard as the real admission webhook of a real kube-apiserver, driven with our kubectl."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.webhook_harness import FailurePolicy, pullguard_webhook

# Each test starts its own pullguard and waits for webhook registration (a few seconds); the first also
# pays for the session's cluster.
pytestmark = pytest.mark.timeout(180)

KUBECTL_TIMEOUT = 30.0
LATEST_WARNING = (
    'Warning: pullguard: container "web" image "nginx:latest" uses the floating tag "latest": '
    "pin a version tag or digest"
)


def deployment(namespace: str, image: str = "nginx:latest", name: str = "web") -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
            },
        }
    )


def dry_run(cluster: Cluster, manifest: str) -> tuple[int, str, str]:
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False, timeout=KUBECTL_TIMEOUT)
    return proc.returncode, proc.stdout, proc.stderr


def test_warn_mode_prints_pullguards_warning(cluster: Cluster, namespace: str) -> None:
    with pullguard_webhook(cluster) as hook:
        code, out, err = dry_run(cluster, deployment(namespace))
        assert code == 0, err
        assert "deployment.apps/web created (server dry run)" in out
        assert LATEST_WARNING in err.splitlines()
        # The validating side judged it; the mutating one, with no mirror rule, answered without reading the
        # object: counted as skipped, not logged.
        seen = {r["endpoint"]: r["decision"] for r in hook.reviews() if r.get("namespace") == namespace}
        assert seen == {"validate": "warned"}
        assert hook.calls("mutate", "skipped") > 0


def test_pinned_image_passes_silently(cluster: Cluster, namespace: str) -> None:
    with pullguard_webhook(cluster):
        code, out, err = dry_run(cluster, deployment(namespace, image="nginx:1.27.3"))
        assert code == 0, err
        assert "created (server dry run)" in out
        assert "pullguard" not in err


def test_enforce_mode_denies_with_the_reason(cluster: Cluster, namespace: str) -> None:
    with pullguard_webhook(cluster, policy="mode: enforce\n"):
        code, out, err = dry_run(cluster, deployment(namespace))
        assert code != 0
        assert "created" not in out
        assert 'admission webhook "validate.pullguard.io" denied the request' in err or (
            'admission webhook "mutate.pullguard.io" denied the request' in err
        )
        # a latest tag starts fine: a policy violation, never "would stop its pods from starting" (issue 22)
        assert f"pullguard denied Deployment {namespace}/web: 1 policy violation (the pods would start)" in err
        assert re.search(
            r'image "nginx:latest" uses the floating tag "latest".*\(fix: pin a version tag or digest\)', err
        )


def test_policy_namespace_exclusion_is_honoured(cluster: Cluster, namespace: str) -> None:
    policy = f"mode: enforce\nexcludeNamespaces: [kube-system, {namespace}]\n"
    with pullguard_webhook(cluster, policy=policy):
        code, _, err = dry_run(cluster, deployment(namespace))
        assert code == 0, err
        assert "pullguard" not in err


def test_namespace_selector_keeps_the_apiserver_from_calling(cluster: Cluster) -> None:
    skipped = "e2e-skipped-" + os.urandom(4).hex()
    cluster.create_namespace(skipped, labels={"pullguard.io/skip": "true"})
    try:
        with pullguard_webhook(cluster, policy="mode: enforce\n", exclude_labels={"pullguard.io/skip": "true"}) as hook:
            code, _, err = dry_run(cluster, deployment(skipped))
            assert code == 0, err
            assert not [r for r in hook.reviews() if r.get("namespace") == skipped]
    finally:
        cluster.kubectl("delete", "namespace", skipped, "--wait=false", check=False, timeout=KUBECTL_TIMEOUT)


@pytest.mark.parametrize("failure_policy", ["Ignore", "Fail"])
def test_server_down_follows_failure_policy(cluster: Cluster, namespace: str, failure_policy: FailurePolicy) -> None:
    with pullguard_webhook(cluster, policy="mode: enforce\n", failure_policy=failure_policy) as hook:
        hook.stop_server()
        code, out, err = dry_run(cluster, deployment(namespace, image="nginx:1.27.3"))
        if failure_policy == "Ignore":
            assert code == 0, err
            assert "deployment.apps/web created (server dry run)" in out
        else:
            assert code != 0
            assert "failed calling webhook" in err
            assert "pullguard.io" in err
            assert "connection refused" in err


def test_rewritten_policy_file_takes_effect_without_restart(cluster: Cluster, namespace: str) -> None:
    with pullguard_webhook(cluster, policy="mode: warn\n") as hook:
        assert hook.policy_path is not None
        code, _, err = dry_run(cluster, deployment(namespace))
        assert code == 0, err
        hook.policy_path.write_text("mode: enforce\n")
        deadline = time.monotonic() + 15  # the file is polled every second
        while True:
            code, _, err = dry_run(cluster, deployment(namespace))
            if code != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert code != 0
        assert f"pullguard denied Deployment {namespace}/web" in err
