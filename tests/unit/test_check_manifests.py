"""Reading manifests for `check`: every file accounted for, and each image located at its `image:` line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.reviews import DATA
from webhook.review.workloads import extract
from webhook.util.manifests import read

MANIFESTS = DATA / "manifests"


def image_positions(path: Path) -> list[tuple[str, int, int]]:
    found = read([str(path)])
    assert not found.unreadable, found.unreadable
    return [
        (image.image, *doc.position(image.pointer))
        for doc in found.documents
        if doc.body.get("kind") not in ("ConfigMap", "Service")
        for image in extract(str(doc.body["kind"]), doc.body).images
    ]


def test_block_and_flow_yaml_point_at_the_image_key() -> None:
    assert image_positions(MANIFESTS / "deployment.yaml") == [
        ("nginx", 16, 9),
        ("quay.example.com/prom/nginx-exporter:latest", 20, 9),
        (
            "registry.example.com:5000/team/sidecar:1.4.2@sha256:0e4a5fc1b8ef0a5ee8b1b7a3ec0d1bcde4b5b45c0da4ee1c7a4c3ddf1d0c3a11",
            22,
            9,
        ),
    ]
    positions = image_positions(MANIFESTS / "workloads.yaml")
    assert ("alpine", 70, 28) in positions  # a flow mapping: `- {name: warmup, image: "alpine"}`
    assert ("registry.example.com/team/models", 82, 15) in positions  # an image volume's `reference:`


def test_list_items_and_json_have_their_own_lines() -> None:
    found = read([str(MANIFESTS / "list.json")])
    assert [(d.body["metadata"]["name"], d.line) for d in found.documents] == [("one", 5), ("two", 7)]
    assert image_positions(MANIFESTS / "list.json") == [("redis", 6, 46), ("redis:7.2.4", 8, 46)]


def test_a_missing_image_points_at_its_container_and_aliases_do_not_loop(tmp_path: Path) -> None:
    text = (
        "kind: Pod\n"
        "metadata: {name: a}\n"
        "spec:\n"
        "  containers:\n"
        "  - name: no-image\n"
        "  - &shared {name: b, image: 'busybox:1'}\n"
        "  - *shared\n"
        "  volumes: &loop [*loop]\n"
    )
    (tmp_path / "pod.yaml").write_text(text)
    (doc,) = read([str(tmp_path / "pod.yaml")]).documents
    assert doc.position("/spec/containers/0/image") == (5, 5)
    assert doc.position("/spec/containers/1/image") == (6, 23)
    assert doc.position("/spec/containers/2/image") == (6, 5)  # an alias is its anchor's node, marks and all
    assert doc.position("/spec/nothing/here") == (1, 1)


def test_unparseable_files_are_recorded_and_the_rest_is_read(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    (tmp_path / "a-good.yaml").write_text("kind: Pod\nmetadata: {name: a}\n")
    (tmp_path / "b-template.yaml").write_text("kind: Pod\nmetadata:\n  name: {{ .Release.Name }}-web\n")
    (tmp_path / "c-evil.yaml").write_text(f"kind: Pod\nmetadata: !!python/object/apply:os.system ['touch {marker}']\n")
    (tmp_path / "d-half.yaml").write_text("kind: Pod\nmetadata: {name: first}\n---\nkind: [\n")
    (tmp_path / "e-scalar.yaml").write_text("just text\n---\nkind: Pod\nmetadata: {name: after}\n")
    (tmp_path / "notes.txt").write_text("kind: Pod\n")
    found = read([str(tmp_path)])
    assert [Path(f).name for f in found.files] == [
        "a-good.yaml",
        "b-template.yaml",
        "c-evil.yaml",
        "d-half.yaml",
        "e-scalar.yaml",
    ]
    assert found.ignored == 1
    assert [d.body["metadata"]["name"] for d in found.documents] == ["a", "after"]  # d-half: all or nothing
    problems = {(Path(u.source).name, u.line): u.reason for u in found.unreadable}
    assert "unrendered template" in problems[("b-template.yaml", 3)]
    assert "python/object/apply:os.system" in problems[("c-evil.yaml", 2)]
    assert ("d-half.yaml", 5) in problems
    assert problems[("e-scalar.yaml", 1)] == "a manifest must be an object, got str"
    assert not marker.exists()


def test_two_thousand_documents_read_fast(tmp_path: Path) -> None:
    """CI runs `check` on big charts: reading and locating must stay well under a second per 2,000 objects
    (about 0.5 s here; keeping each document's node tree instead made it 1.2 s)."""
    pod = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": f"c{i}", "image": f"registry.example.com/team/c{i}:1.0", "env": [{"name": "A"}]}
                        for i in range(3)
                    ]
                }
            }
        },
    }
    text = "---\n".join(json.dumps(pod, indent=2) + "\n" for _ in range(2000))
    (tmp_path / "big.yaml").write_text(text)
    started = time.perf_counter()
    found = read([str(tmp_path / "big.yaml")])
    lines = [doc.position("/spec/template/spec/containers/2/image")[0] for doc in found.documents]
    elapsed = time.perf_counter() - started
    per_document = text.split("---\n")[0].count("\n") + 1
    assert len(found.documents) == 2000 and lines[1] - lines[0] == lines[-1] - lines[-2] == per_document
    assert elapsed < 3.0, f"{elapsed:.2f}s"
