"""Delivery counts its submissions through the observer ``worker.bootstrap`` wires: one
``vneid_worker_submissions`` sample and one latency observation per gateway answer, labelled as before."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.his.demo.synthetic import Kind
from schemas.ports import Outcome
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSigner, FakeSource
from tests.unit.pipeline.conftest import certificate, fake_pipeline  # noqa: F401 - pytest fixture, used by name
from worker.config import load_settings
from worker.monitoring.worker_metrics import PrometheusDeliveryObserver, worker_registry
from worker.pipeline import delivery, discovery

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def _sample(name: str, **labels: str) -> float:
    return worker_registry().get_sample_value(name, {"destination": "bhxh", **labels}) or 0.0


def test_each_answer_is_counted_by_outcome_and_code(
    sqlite_ledger: Engine,
    certificate: x509.Certificate,  # noqa: F811 - the pipeline tests' fixture, imported above
) -> None:
    settings = load_settings(delivery={"submit_concurrency": 1})
    source, gateway = FakeSource(), FakeGateway(script=[Outcome.TRANSIENT])
    pipeline = replace(
        fake_pipeline(sqlite_ledger, settings, source, FakeSigner(certificate), gateway),
        observer=PrometheusDeliveryObserver(),
    )
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="901"), T0)
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="902"), T0)
    accepted = {"outcome": "accepted", "code": "200"}
    transient = {"outcome": "transient", "code": "500"}
    before = {
        "accepted": _sample("vneid_worker_submissions_total", **accepted),
        "transient": _sample("vneid_worker_submissions_total", **transient),
        "latency": _sample("vneid_worker_submission_seconds_count", outcome="accepted"),
    }
    delivery.process_versions(pipeline, discovery.discover(pipeline).version_ids, owner="test")
    assert len(gateway.calls) == 2
    assert _sample("vneid_worker_submissions_total", **accepted) == before["accepted"] + 1
    assert _sample("vneid_worker_submissions_total", **transient) == before["transient"] + 1
    assert _sample("vneid_worker_submission_seconds_count", outcome="accepted") == before["latency"] + 1
