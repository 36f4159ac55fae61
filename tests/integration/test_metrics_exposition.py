"""`/metrics` of a running `pullguard serve`: build info, process metrics, no `_created` twins."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.reviews import DATA
from tests.server import PullguardServer
from webhook.version import version


def exposition(server: PullguardServer) -> str:
    response = server.client().get("/metrics")
    assert response.status_code == 200
    return response.text


def test_build_info_process_metrics_and_no_created_series(pullguard: PullguardServer) -> None:
    review = (DATA / "admission" / "deployment-nginx-untagged.json").read_text()
    answered = pullguard.client().post("/validate", content=review, headers={"content-type": "application/json"})
    assert answered.status_code == 200  # a counter and a histogram now have children
    text = exposition(pullguard)
    samples = {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}

    info = samples["pullguard_build_info"]
    assert info.value == 1 and info.labels["version"] == version() and info.labels["python"]
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
                 "process_open_fds", "python_info"):  # fmt: skip
        assert name in samples, name
    assert samples["process_resident_memory_bytes"].value > 0
    assert "pullguard_admission_requests_total" in samples
    assert [line for line in text.splitlines() if "_created" in line] == []
