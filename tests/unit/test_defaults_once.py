"""Each default said once: serve's flags read ServeOptions, the manifests repeat the policy's excluded namespaces and
the workload kinds exactly, and the log line limit lives in webhook/limits.py."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.config import DEFAULT_EXCLUDED_NAMESPACES, parse_policy
from webhook import cli, limits, logs
from webhook.certs.settings import CertSettings
from webhook.check.command import CheckOptions
from webhook.review.workloads import POD_SPEC_PATHS
from webhook.serve.options import ServeOptions

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
WORKLOAD_WEBHOOKS = ("validate.pullguard.io", "mutate.pullguard.io")

EXCLUDED = DEFAULT_EXCLUDED_NAMESPACES

# The API resource (group, plural) the API server sends each kind webhook/review/workloads.py reads under.
KIND_RESOURCES = {
    "Pod": ("", "pods"),
    "EphemeralContainers": ("", "pods/ephemeralcontainers"),
    "ReplicationController": ("", "replicationcontrollers"),
    "PodTemplate": ("", "podtemplates"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "ReplicaSet": ("apps", "replicasets"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
}


@pytest.fixture
def no_serve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "CERT_DIR", "CONFIG", "KUBECONFIG", "NAMESPACE", "LOG_LEVEL"):
        monkeypatch.delenv(f"PULLGUARD_{name}", raising=False)


# serve


@pytest.mark.usefixtures("no_serve_env")
def test_serve_without_flags_is_serve_options_defaults() -> None:
    assert cli.serve_options(cli._parser().parse_args(["serve"])) == ServeOptions()


@pytest.mark.usefixtures("no_serve_env")
def test_each_serve_flag_default_is_its_field_default() -> None:
    args = vars(cli._parser().parse_args(["serve"]))
    defaults = ServeOptions()
    # every field with a flag of its name, and the one flag named otherwise
    flags = {f.name: f.name for f in dataclasses.fields(ServeOptions) if f.name in args}
    flags["mutate_only_with_mirrors"] = "mutating_toggle"
    assert len(flags) >= 14
    for dest, name in flags.items():
        assert args[dest] == getattr(defaults, name), dest
    assert args["log_level"] == inspect.signature(logs.configure).parameters["level"].default


@pytest.mark.usefixtures("no_serve_env")
def test_manage_certs_flags_default_to_cert_settings() -> None:
    args = cli._parser().parse_args(["serve", "--manage-certs", "--namespace", "pullguard"])
    assert cli.serve_options(args).certificates == CertSettings("pullguard")


def test_environment_still_overrides_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLGUARD_PORT", "9443")
    monkeypatch.setenv("PULLGUARD_HOST", "0.0.0.0")
    monkeypatch.setenv("PULLGUARD_CERT_DIR", "/tmp/c")
    options = cli.serve_options(cli._parser().parse_args(["serve"]))
    assert (options.port, options.host, options.cert_dir) == (9443, "0.0.0.0", Path("/tmp/c"))


def test_san_help_names_the_serve_options_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = ServeOptions()
    assert f"(default: {', '.join(defaults.dns_names)})" in text
    assert f"(default: {', '.join(defaults.ips)})" in text


def test_the_cli_reads_serve_options_without_importing_fastapi() -> None:
    """`check` in CI should not pay for FastAPI and uvicorn: the CLI loads webhook/serve/server.py only to serve."""
    code = "import sys, webhook.cli; print('fastapi' in sys.modules or 'webhook.serve.server' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


# manifests


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def _workload_webhooks() -> list[dict[str, Any]]:
    hooks = [h for d in _documents("base/webhooks.yaml") for h in d["webhooks"] if h["name"] in WORKLOAD_WEBHOOKS]
    assert sorted(h["name"] for h in hooks) == sorted(WORKLOAD_WEBHOOKS)
    return hooks


def test_the_webhooks_skip_exactly_the_policy_default_namespaces() -> None:
    for hook in _workload_webhooks():
        (expression,) = (
            e for e in hook["namespaceSelector"]["matchExpressions"] if e["key"] == "kubernetes.io/metadata.name"
        )
        assert expression["operator"] == "NotIn", hook["name"]
        assert sorted(expression["values"]) == sorted(EXCLUDED), hook["name"]


def test_every_install_guards_its_image_the_same_way() -> None:
    """manifests/ and the cert-manager variant refuse the bare placeholder with one guard (kustomize cannot share
    it: a component's replacements run before the including kustomization's `images:`)."""
    guards = [
        yaml.safe_load((REPO / path / "kustomization.yaml").read_text())["replacements"]
        for path in ("manifests", "certs/cert-manager")
    ]
    assert guards[0] == guards[1] and len(guards[0]) == 1


def test_the_policy_configmap_excludes_the_policy_default_namespaces() -> None:
    (configmap,) = _documents("policy/policy-configmap.yaml")
    assert parse_policy(configmap["data"]["policy.yaml"]).exclude_namespaces == EXCLUDED


# "`a` and `b` excluded", "(`a`, `b` and `c` by default)": the prose form of the list, names in backticks
PROSE_LIST = re.compile(r"((?:`[\w.-]+`(?:,\s*|\s+and\s+))*`[\w.-]+`)\s+(?:excluded|by default)")


@pytest.mark.parametrize(("doc", "sentences", "settings"), [("README.md", 1, 1), ("manifests/README.md", 1, 0)])
def test_the_readmes_name_the_policy_default_namespaces(doc: str, sentences: int, settings: int) -> None:
    """An `excludeNamespaces:` YAML line and a sentence listing the namespaces excluded by default say the
    policy's default."""
    text = (REPO / doc).read_text()
    lists = [re.findall(r"`([^`]+)`", match) for match in PROSE_LIST.findall(" ".join(text.split()))]
    for names in lists:
        assert sorted(names) == sorted(EXCLUDED), f"{doc}: {names}"
    yaml_lists = re.findall(r"^\s*excludeNamespaces:\s*(\[[^]]*\])", text, re.MULTILINE)
    for flow in yaml_lists:
        assert tuple(yaml.safe_load(flow)) == EXCLUDED, f"{doc}: {flow}"
    assert len(lists) >= sentences and len(yaml_lists) >= settings, f"{doc}: the lists were not found"


def test_both_webhooks_cover_exactly_the_workload_kinds() -> None:
    assert set(KIND_RESOURCES) == set(POD_SPEC_PATHS), "a kind was added: map it to its API resource above"
    expected = set(KIND_RESOURCES.values())
    for hook in _workload_webhooks():
        covered = {(group, resource) for rule in hook["rules"] for group in rule["apiGroups"]
                   for resource in rule["resources"]}  # fmt: skip
        assert covered == expected, hook["name"]
        assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in hook["rules"]), hook["name"]


# limits


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_the_review_line_limit_lives_in_limits() -> None:
    assert "MAX_REVIEW_LINE_BYTES" in _top_level_names(REPO / "webhook/limits.py")
    assert "MAX_REVIEW_LINE_BYTES" not in _top_level_names(REPO / "webhook/logs.py")
    assert logs.MAX_REVIEW_LINE_BYTES == limits.MAX_REVIEW_LINE_BYTES == 16 * 1024


def test_limits_imports_nothing_of_webhook() -> None:
    """webhook.logs imports webhook.limits: the reverse would be a cycle."""
    tree = ast.parse((REPO / "webhook/limits.py").read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.split(".")[0] == "webhook"]


def test_check_flags_default_to_check_options() -> None:
    args = cli._parser().parse_args(["check", "-f", "x"])
    defaults = CheckOptions()
    assert (args.timeout, args.fail_on, args.namespace, args.progress) == (
        defaults.timeout,
        defaults.fail_on,
        defaults.namespace,
        defaults.progress,
    )
