"""`pullguard check --format`: one registry (webhook/formats/__init__.py) names the formats the CLI offers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webhook import cli
from webhook.check import command
from webhook.formats import CHECK_FORMATS, DEFAULT_CHECK_FORMAT
from webhook.formats.report import render_json, render_table
from webhook.formats.sarif import render_sarif

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  containers: [{name: app, image: nginx}]
"""


def _format_action() -> object:
    for action in cli._parser()._subparsers._group_actions[0].choices["check"]._actions:  # type: ignore[union-attr]
        if action.dest == "format":
            return action
    raise AssertionError("check has no --format")


def test_the_registry_holds_the_three_renderers_in_help_order() -> None:
    assert list(CHECK_FORMATS) == ["table", "json", "sarif"]
    assert CHECK_FORMATS["table"] is render_table
    assert CHECK_FORMATS["json"] is render_json
    assert CHECK_FORMATS["sarif"] is render_sarif
    assert DEFAULT_CHECK_FORMAT == "table"


def test_the_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        CHECK_FORMATS["xml"] = render_json  # type: ignore[index]


def test_the_cli_offers_exactly_the_registry() -> None:
    action = _format_action()
    assert tuple(action.choices) == tuple(CHECK_FORMATS)  # type: ignore[attr-defined]
    assert action.default == DEFAULT_CHECK_FORMAT  # type: ignore[attr-defined]
    assert cli._parser().parse_args(["check", "-f", "x"]).format == "table"
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["check", "-f", "x", "--format", "xml"])


def test_the_check_command_renders_from_the_registry() -> None:
    """webhook/check/command.py keeps no table of its own that could drift from CHECK_FORMATS."""
    assert not hasattr(command, "FORMATS")
    assert command.CHECK_FORMATS is CHECK_FORMATS


@pytest.mark.parametrize("name", list(CHECK_FORMATS))
def test_each_format_name_gives_that_format(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(POD)
    assert cli.main(["check", "--offline", "--progress", "off", "--format", name, "-f", str(path)]) == 0
    out = capsys.readouterr().out
    if name == "table":
        assert out.startswith("MODE") and "latestTag" in out
    elif name == "json":
        assert [f["check"] for f in json.loads(out)["findings"]] == ["latestTag"]
    else:
        document = json.loads(out)
        assert document["version"] == "2.1.0"
        results = document["runs"][0]["results"]
        assert [r["ruleId"] for r in results if r.get("kind") != "open"] == ["latestTag"]
        # offline and with no cluster view: the checks that could not run are results too, "could not tell"
        assert {r["ruleId"] for r in results if r.get("kind") == "open"} == {
            "imageExists",
            "pullSecrets",
            "architecture",
        }
