"""The delivery service on a real SQLite ledger with fake HIS/signer/gateway: states, idempotency, retries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.engine import Engine

from adapters.his.demo.synthetic import Defect, Kind
from schemas.ports import Outcome
from tests.factories import encounter
from tests.fakes import FakeGateway, FakeSigner, FakeSource
from tests.unit.pipeline.conftest import fake_pipeline
from worker.bootstrap import payload_options
from worker.config import load_settings
from worker.ledger import audit
from worker.ledger import repository as repo
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.ledger.schema import encounters, evidence, versions
from worker.ledger.states import State
from worker.pipeline import delivery, discovery
from worker.pipeline.context import Pipeline

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(
    sqlite_ledger: Engine, certificate: x509.Certificate
) -> tuple[Pipeline, FakeSource, FakeSigner, FakeGateway]:
    # One request at a time: the scripted gateway hands its outcomes out in call order, so the tests here
    # know which version gets which answer (concurrent sending has its own tests).
    settings = load_settings(
        delivery={"max_attempts": 3, "backoff_base_s": 1, "backoff_cap_s": 2, "submit_concurrency": 1}
    )
    source, signer, gateway = FakeSource(), FakeSigner(certificate), FakeGateway()
    return fake_pipeline(sqlite_ledger, settings, source, signer, gateway), source, signer, gateway


def _states(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(encounters.c.ma_lk, encounters.c.state)).all())


def _run(pipeline: Pipeline) -> list[int]:
    found = discovery.discover(pipeline)
    delivery.process_versions(pipeline, found.version_ids, owner="test")
    return found.version_ids


def test_happy_path_accepts_and_keeps_the_exact_signed_bytes(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, gateway = world
    for index, kind in enumerate(Kind):
        if kind is not Kind.NEWBORN:
            source.put(encounter(kind, his_key=str(500 + index)), T0)
    ids = _run(pipeline)
    assert set(_states(pipeline.engine).values()) == {State.ACCEPTED}
    with pipeline.engine.connect() as conn:
        stored = conn.execute(sa.select(evidence.c.version_id, evidence.c.signed_sha256)).all()
        assert audit.verify_chain(conn).ok
    assert len(stored) == len(ids) == len(gateway.calls)
    import hashlib

    assert {sha for _, sha in stored} == {hashlib.sha256(call).hexdigest() for call in gateway.calls}


def test_processing_twice_sends_nothing_twice(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, signer, gateway = world
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="601"), T0)
    ids = _run(pipeline)
    again = delivery.process_versions(pipeline, ids, owner="duplicate-message")
    assert again.claimed == 0
    assert len(gateway.calls) == 1
    assert signer.signed == 1
    assert discovery.discover(pipeline).version_ids == []  # same change time: nothing new


def test_invalid_encounter_is_quarantined_and_the_batch_goes_on(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, _gateway = world
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="701", defect=Defect.TOTALS_MISMATCH), T0)
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="702"), T0)
    _run(pipeline)
    states = _states(pipeline.engine)
    assert states["79999-701"] == State.QUARANTINED
    assert states["79999-702"] == State.ACCEPTED
    with pipeline.engine.connect() as conn:
        issues = conn.execute(
            sa.select(versions.c.issues).where(versions.c.ma_lk == "79999-701")
        ).scalar_one()
    assert issues["errors"]
    assert all({"table", "field", "rule", "hint"} <= set(issue) for issue in issues["errors"])


def test_transient_failures_retry_then_go_dead(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, gateway = world
    gateway.script = [Outcome.TRANSIENT] * 3
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="801"), T0)
    ids = _run(pipeline)
    assert _states(pipeline.engine)["79999-801"] == State.SUBMITTED
    for _ in range(2):
        with pipeline.engine.begin() as conn:
            conn.execute(sa.update(versions).values(next_attempt_at=None))
        delivery.process_versions(pipeline, ids, owner="retry")
    assert _states(pipeline.engine)["79999-801"] == State.DEAD
    assert len(set(gateway.calls)) == 1  # every attempt sent the same bytes


def test_timeout_after_receipt_then_resend_is_accepted_once(world) -> None:  # type: ignore[no-untyped-def]
    """The gateway stored the file but the answer was lost: the resend is "already received" = accepted."""
    pipeline, source, _signer, gateway = world
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="901"), T0)
    original_submit = gateway.submit

    def lose_first_answer(signed: bytes, kind):  # type: ignore[no-untyped-def]
        receipt = original_submit(signed, kind)
        gateway.submit = original_submit  # type: ignore[method-assign]
        return replace(receipt, outcome=Outcome.UNKNOWN, ma_ket_qua=None, ma_giao_dich=None)

    gateway.submit = lose_first_answer  # type: ignore[method-assign]
    ids = _run(pipeline)
    with pipeline.engine.begin() as conn:
        conn.execute(sa.update(versions).values(next_attempt_at=None))
    result = delivery.process_versions(pipeline, ids, owner="retry")
    assert result.accepted == 1
    assert result.duplicates == 1
    assert len(gateway.received) == 1


def test_config_error_stops_the_destination(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, gateway = world
    gateway.script = [Outcome.CONFIG]
    for key in ("1001", "1002", "1003"):
        source.put(encounter(Kind.OUTPATIENT_EXAM, his_key=key), T0)
    ids = _run(pipeline)
    assert len(gateway.calls) == 1
    assert set(_states(pipeline.engine).values()) == {State.SIGNED}
    with pipeline.engine.connect() as conn:
        from worker.ledger import repository as repo

        assert "bhxh" in repo.stopped_destinations(conn)
    delivery.process_versions(pipeline, ids, owner="while-stopped")
    assert len(gateway.calls) == 1  # nothing is sent while stopped


def test_changed_encounter_becomes_a_new_version(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, gateway = world
    original = encounter(Kind.OUTPATIENT_EXAM, his_key="1101")
    source.put(replace(original, visit=replace(original.visit, ngay_ttoan=None)), T0)
    _run(pipeline)
    source.put(original, T0 + timedelta(hours=2))  # NGAY_TTOAN filled after payment
    _run(pipeline)
    with pipeline.engine.connect() as conn:
        rows = conn.execute(
            sa.select(versions.c.state, versions.c.content_hash)
            .where(versions.c.ma_lk == "79999-1101")
            .order_by(versions.c.id)
        ).all()
    assert [row.state for row in rows] == [State.ACCEPTED, State.ACCEPTED]
    assert rows[0].content_hash != rows[1].content_hash
    assert len(gateway.received) == 2


def test_touched_but_unchanged_encounter_is_not_resent(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, gateway = world
    enc = encounter(Kind.OUTPATIENT_EXAM, his_key="1201")
    source.put(enc, T0)
    _run(pipeline)
    source.put(enc, T0 + timedelta(minutes=5))
    _run(pipeline)
    assert len(gateway.calls) == 1
    assert _states(pipeline.engine)["79999-1201"] == State.ACCEPTED


def test_hidden_encounter_is_reported_by_the_sweep(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, _gateway = world
    enc = encounter(Kind.OUTPATIENT_EXAM, his_key="1301")
    source.put(enc, T0)
    _run(pipeline)
    source.hide("1301")
    assert enc.completed_at is not None
    found = discovery.sweep(
        pipeline, enc.completed_at - timedelta(days=1), enc.completed_at + timedelta(days=1)
    )
    assert found.hidden == 1
    assert _states(pipeline.engine)["79999-1301"] == State.HIDDEN


def test_late_commit_is_found_by_the_sweep_not_the_watermark(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, _gateway = world
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="1401"), T0 + timedelta(hours=1))
    _run(pipeline)
    late = encounter(Kind.OUTPATIENT_EXAM, his_key="1402")
    source.put(late, T0)  # committed late with an older change time than the watermark
    assert discovery.discover(pipeline).version_ids == []
    assert late.completed_at is not None
    found = discovery.sweep(
        pipeline, late.completed_at - timedelta(days=1), late.completed_at + timedelta(days=1)
    )
    assert len(found.version_ids) == 1
    delivery.process_versions(pipeline, found.version_ids, owner="sweep")
    assert _states(pipeline.engine)["79999-1402"] == State.ACCEPTED


def test_rejected_answer_keeps_the_gateway_message_in_the_receipt(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, gateway = world
    gateway.script = [Outcome.DATA_ERROR]
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="1501"), T0)
    _run(pipeline)
    assert _states(pipeline.engine)["79999-1501"] == State.REJECTED
    with pipeline.engine.connect() as conn:
        [version_id] = conn.execute(sa.select(evidence.c.version_id)).scalars()
        receipt = repo.receipts(conn, [version_id], pipeline.evidence_keys)[version_id]
    assert receipt["thongDiep"] == "error"
    assert receipt["maKetQua"] == "422"


def test_one_auth_failure_retries_persistent_ones_stop(world) -> None:  # type: ignore[no-untyped-def]
    """A 401 after a fresh login can be a token storm: it stops the destination only when it persists."""
    pipeline, source, _signer, gateway = world
    gateway.script = [Outcome.AUTH]
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="1601"), T0)
    ids = _run(pipeline)
    from worker.ledger import repository as repo

    with pipeline.engine.connect() as conn:
        assert repo.stopped_destinations(conn) == {}
    with pipeline.engine.begin() as conn:
        conn.execute(sa.update(versions).values(next_attempt_at=None))
    delivery.process_versions(pipeline, ids, owner="retry")
    assert _states(pipeline.engine)["79999-1601"] == State.ACCEPTED
    gateway.script = [Outcome.AUTH] * 3
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="1602"), T0 + timedelta(minutes=1))
    ids = _run(pipeline)
    for _ in range(2):
        with pipeline.engine.begin() as conn:
            conn.execute(sa.update(versions).values(next_attempt_at=None))
        delivery.process_versions(pipeline, ids, owner="retry")
    with pipeline.engine.connect() as conn:
        assert "bhxh" in repo.stopped_destinations(conn)


def test_unreadable_encounter_is_quarantined_with_section_and_column(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, _gateway = world
    from schemas.ports import SourceDataError

    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="1701"), T0)
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="1702"), T0)
    original_load = source.load

    def load(his_key: str):  # type: ignore[no-untyped-def]
        if his_key == "1701":
            raise SourceDataError(his_key, "unmapped code", section="visit", column="MA_KHOA")
        return original_load(his_key)

    source.load = load  # type: ignore[method-assign]
    _run(pipeline)
    assert _states(pipeline.engine) == {"79999-1701": State.QUARANTINED, "79999-1702": State.ACCEPTED}
    with pipeline.engine.connect() as conn:
        issues = conn.execute(
            sa.select(versions.c.issues).where(versions.c.ma_lk == "79999-1701")
        ).scalar_one()
    assert issues["errors"][0]["field"] == "MA_KHOA"
    assert issues["errors"][0]["rule"] == "HIS.unreadable"


def test_hub_gets_what_bhxh_accepted_and_never_blocks_it(sqlite_ledger, certificate) -> None:  # type: ignore[no-untyped-def]
    from worker.ledger.schema import deliveries
    from worker.pipeline import hubs

    settings = load_settings(
        destinations={"bhxh": {}, "hanoi": {"primary": False}},
        delivery={"backoff_base_s": 1, "backoff_cap_s": 2},
    )
    source, signer = FakeSource(), FakeSigner(certificate)
    bhxh, hub = FakeGateway(), FakeGateway(name="hanoi", script=[Outcome.TRANSIENT])
    pipeline = Pipeline(
        settings=settings,
        engine=sqlite_ledger,
        source_factory=lambda: source,
        signer_factory=lambda: signer,
        gateways_factory=lambda: {"bhxh": bhxh, "hanoi": hub},
        payload_options=payload_options(settings.payload),
        evidence_keys=EvidenceKeys.generate(),
    )
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="1801"), T0)
    _run(pipeline)
    assert _states(pipeline.engine)["79999-1801"] == State.ACCEPTED
    assert hub.calls == []  # the hub is served on its own schedule
    first = hubs.deliver_due(pipeline)
    assert (first.sent, first.retrying) == (1, 1)
    with pipeline.engine.begin() as conn:
        conn.execute(sa.update(deliveries).values(next_attempt_at=None))
    second = hubs.deliver_due(pipeline)
    assert second.accepted == 1
    assert hub.calls == [bhxh.calls[0]] * 2  # the failed try and the retry: the same signed bytes
    with pipeline.engine.connect() as conn:
        state = conn.execute(sa.select(deliveries.c.state)).scalar_one()
    assert state == State.ACCEPTED
    assert hubs.deliver_due(pipeline).sent == 0


def test_a_signature_that_does_not_verify_is_never_kept_or_sent(world) -> None:  # type: ignore[no-untyped-def]
    pipeline, source, _signer, gateway = world

    def refuse(_signed: bytes) -> None:
        raise ValueError("signature does not verify")

    pipeline.verifier = refuse
    source.put(encounter(Kind.OUTPATIENT_EXAM, his_key="1901"), T0)
    with pytest.raises(ValueError, match="does not verify"):
        _run(pipeline)
    assert gateway.calls == []
    with pipeline.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(evidence)).scalar_one() == 0
    pipeline.verifier = None
    with pipeline.engine.begin() as conn:
        ids = list(conn.execute(sa.select(versions.c.id)).scalars())
    delivery.process_versions(pipeline, ids, owner="after-fix")
    assert _states(pipeline.engine)["79999-1901"] == State.ACCEPTED
