"""The worker's own metrics: submissions and latency recorded in-process, served over HTTP; with prefork
children, shared through prometheus-client's multiprocess mode (run in a fresh interpreter, since the mode
must be chosen before prometheus_client is imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from schemas.ports import GatewayReceipt, Outcome
from tests.unit.monitoring.support import read_until, scrape, value
from worker.config import load_settings
from worker.monitoring.worker_metrics import (
    PrometheusDeliveryObserver,
    enable_multiprocess,
    record_token_request,
    start_worker_metrics_server,
)

REPO_ROOT = Path(__file__).resolve().parents[3]

FORKING_WORKER = """
import multiprocessing, sys
from pathlib import Path
from worker.config import load_settings
from schemas.ports import GatewayReceipt, Outcome
from worker.monitoring.worker_metrics import PrometheusDeliveryObserver, enable_multiprocess, start_worker_metrics_server

multiprocess = sys.argv[2] == "multiprocess"
if multiprocess:
    assert enable_multiprocess(Path(sys.argv[1]))
server = start_worker_metrics_server(load_settings(metrics={"host": "127.0.0.1", "port": 0}), pool="prefork")

def child(index: int) -> None:  # what a prefork pool process does for each submission
    receipt = GatewayReceipt(Outcome.ACCEPTED, 200, "200", None, None, None, "00", 250.0 * (index + 1))
    PrometheusDeliveryObserver().submitted("bhxh", receipt)

processes = [multiprocessing.get_context("fork").Process(target=child, args=(i,)) for i in range(3)]
for process in processes:
    process.start()
for process in processes:
    process.join()
print(server.url, flush=True)
sys.stdin.read()  # serve until the test closes stdin
server.close()
"""


def _run_forking_worker(tmp_path: Path, mode: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    process = subprocess.Popen(
        [sys.executable, "-c", FORKING_WORKER, str(tmp_path / "prom"), mode],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdin is not None
        url = read_until(process.stdout, "http://127.0.0.1:")  # log lines may come first
        samples = scrape(url)
        process.stdin.close()
        assert process.wait(timeout=10) == 0
        return samples
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_prefork_children_are_counted_in_multiprocess_mode(tmp_path: Path) -> None:
    samples = _run_forking_worker(tmp_path, "multiprocess")
    labels = {"destination": "bhxh", "outcome": "accepted"}
    assert value(samples, "vneid_worker_submissions_total", code="200", **labels) == 3
    assert value(samples, "vneid_worker_submission_seconds_count", **labels) == 3
    assert value(samples, "vneid_worker_submission_seconds_sum", **labels) == pytest.approx(1.5)
    assert value(samples, "vneid_worker_submission_seconds_bucket", le="0.5", **labels) == 2


def test_without_multiprocess_mode_children_are_invisible(tmp_path: Path) -> None:
    """The documented limitation: a prefork worker without multiprocess mode serves its main process only."""
    samples = _run_forking_worker(tmp_path, "single")
    assert (
        "vneid_worker_submissions_total",
        frozenset({("destination", "bhxh"), ("outcome", "accepted"), ("code", "200")}),
    ) not in samples


def _receipt(outcome: Outcome, ma_ket_qua: str | None, *, elapsed_ms: float) -> GatewayReceipt:
    return GatewayReceipt(
        outcome=outcome,
        http_status=200,
        ma_ket_qua=ma_ket_qua,
        ma_giao_dich=None,
        thoi_gian_tiep_nhan=None,
        thong_diep=None,
        request_sha256="00" * 32,
        elapsed_ms=elapsed_ms,
    )


def test_in_process_worker_serves_its_attempts_and_tokens() -> None:
    server = start_worker_metrics_server(load_settings(metrics={"host": "127.0.0.1", "port": 0}), pool="solo")
    assert server is not None
    try:
        labels = {"destination": "hub", "outcome": "transient"}
        before = scrape(server.url)
        start = before.get(
            ("vneid_worker_submissions_total", frozenset({**labels, "code": "500"}.items())), 0.0
        )
        observer = PrometheusDeliveryObserver()
        observer.submitted("hub", _receipt(Outcome.TRANSIENT, "500", elapsed_ms=1500))
        # not a code: kept out of the labels
        observer.submitted("hub", _receipt(Outcome.TRANSIENT, "<html>oops</html>", elapsed_ms=100))
        record_token_request("hub", "config", "403")
        after = scrape(server.url)
    finally:
        server.close()
    assert value(after, "vneid_worker_submissions_total", code="500", **labels) == start + 1
    assert value(after, "vneid_worker_submissions_total", code="other", **labels) >= 1
    assert (
        value(after, "vneid_worker_token_requests_total", destination="hub", result="config", code="403") >= 1
    )
    assert value(after, "vneid_worker_submission_seconds_bucket", le="2.0", **labels) >= 2


def test_disabled_metrics_start_no_server() -> None:
    assert start_worker_metrics_server(load_settings(metrics={"enabled": False, "port": 0})) is None


def test_multiprocess_mode_cannot_be_enabled_after_import(tmp_path: Path) -> None:
    import prometheus_client  # noqa: F401  # already imported in this process: too late to switch modes

    assert enable_multiprocess(tmp_path / "prom") is False
    assert not (tmp_path / "prom").exists()
