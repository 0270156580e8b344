"""The worker counts its token calls: the gateways ``build_pipeline`` wires report every real token request
(to the simulator, over HTTP) to ``vneid_worker_token_requests``, by result and maKetQua."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.gateway.bhxh.token_cache import shared_token_cache
from adapters.gateway.simulator import RunningSimulator, running_simulator
from schemas.ports import DocumentKind
from tests.unit.monitoring.support import EVIDENCE_SETTINGS
from worker.bootstrap import build_pipeline
from worker.config import DestinationSettings, load_settings
from worker.monitoring.worker_metrics import PrometheusDeliveryObserver, worker_registry
from worker.pipeline.context import Pipeline


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    with running_simulator() as running:
        yield running


def _token_requests(result: str, code: str) -> float:
    labels = {"destination": "bhxh", "result": result, "code": code}
    return worker_registry().get_sample_value("vneid_worker_token_requests_total", labels) or 0.0


def _pipeline(tmp_path: Path, url: str, password: str) -> Pipeline:
    shared_token_cache().clear()  # a token cached by another test would spare the call counted here
    settings = load_settings(
        data_dir=tmp_path,
        evidence=EVIDENCE_SETTINGS,
        destinations={"bhxh": DestinationSettings(base_url=url, password=SecretStr(password))},
    )
    return build_pipeline(settings)


def test_a_granted_token_is_counted_once(tmp_path: Path, simulator: RunningSimulator) -> None:
    pipeline = _pipeline(tmp_path, simulator.url, "demo-password")
    try:
        assert isinstance(pipeline.observer, PrometheusDeliveryObserver)
        before = _token_requests("ok", "200")
        gateway = pipeline.gateways["bhxh"]
        gateway.submit(b"<not-a-claim/>", DocumentKind.CLAIM)  # the token comes first, whatever the file
        gateway.submit(b"<not-a-claim/>", DocumentKind.CLAIM)  # the cached token: no second call
    finally:
        pipeline.close()
    assert _token_requests("ok", "200") == before + 1


def test_a_refused_token_is_counted_with_its_class_and_code(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    pipeline = _pipeline(tmp_path, simulator.url, "wrong-password")
    try:
        before = _token_requests("config", "401")
        pipeline.gateways["bhxh"].submit(b"<not-a-claim/>", DocumentKind.CLAIM)
    finally:
        pipeline.close()
    assert _token_requests("config", "401") == before + 1
