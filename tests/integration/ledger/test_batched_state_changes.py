"""The batched ledger writes (``record_*_many``) leave the ledger exactly as recording the same items one by one
would — including two versions of one encounter in the same batch — on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.ports import EncounterRef
from worker.ledger import audit
from worker.ledger import repository as repo
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.ledger.repository import AttemptResult, Built, WorkItem
from worker.ledger.schema import encounters, evidence, versions
from worker.ledger.states import State

FACILITY = "79999"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
KEYS = EvidenceKeys.generate()


@pytest.fixture(params=["sqlite_ledger", "pg_ledger"])
def ledger(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(request.param)
    return engine


def discover(engine: Engine, his_key: str, changed_at: datetime) -> WorkItem:
    with engine.begin() as conn:
        ref = EncounterRef(his_key=his_key, completed_at=T0, changed_at=changed_at)
        registration = repo.register_refs(conn, [ref], facility_code=FACILITY)
        [item] = repo.read_items(conn, registration.version_ids)
        return item


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def snapshot(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[str]]:
    """What the batch is about: states, hashes, attempts and which version each encounter shows."""
    with engine.connect() as conn:
        vers = conn.execute(
            sa.select(versions.c.id, versions.c.ma_lk, versions.c.state, versions.c.content_hash,
                      versions.c.attempts, versions.c.ma_ket_qua).order_by(versions.c.id)
        ).all()  # fmt: skip
        encs = conn.execute(
            sa.select(encounters.c.ma_lk, encounters.c.state, encounters.c.current_version_id,
                      encounters.c.accepted_at.is_not(None)).order_by(encounters.c.ma_lk)
        ).all()  # fmt: skip
        assert audit.verify_chain(conn).ok
        events = [row.event for row in conn.execute(sa.text("SELECT event FROM audit_log ORDER BY id"))]
    return [tuple(row) for row in vers], [tuple(row) for row in encs], sorted(events)


def test_two_versions_of_one_encounter_in_one_batch_the_later_wins(ledger: Engine) -> None:
    first = discover(ledger, "K1", T0)
    second = discover(ledger, "K1", T0 + timedelta(minutes=5))
    other = discover(ledger, "K2", T0)
    with ledger.begin() as conn:
        states = repo.record_built_many(
            conn, [Built(first, digest("a")), Built(second, digest("b")), Built(other, digest("c"))]
        )
    assert states == {
        first.version_id: State.BUILT,
        second.version_id: State.BUILT,
        other.version_id: State.BUILT,
    }
    with ledger.connect() as conn:
        by_id = dict(conn.execute(sa.select(versions.c.id, versions.c.state)).all())
        shown = conn.execute(
            sa.select(encounters.c.current_version_id).where(encounters.c.ma_lk == first.ma_lk)
        ).scalar_one()
    assert by_id[first.version_id] == State.SUPERSEDED
    assert by_id[second.version_id] == State.BUILT
    assert shown == second.version_id


def test_content_back_to_a_version_superseded_before_signing_is_built_again(ledger: Engine) -> None:
    first = discover(ledger, "K1", T0)
    with ledger.begin() as conn:
        repo.record_built_many(conn, [Built(first, digest("a"))])
    second = discover(ledger, "K1", T0 + timedelta(minutes=5))  # opening it does not close the first yet
    with ledger.begin() as conn:
        repo.record_built_many(conn, [Built(second, digest("b"))])  # supersedes the unsigned first
    third = discover(ledger, "K1", T0 + timedelta(minutes=9))
    with ledger.begin() as conn:
        states = repo.record_built_many(conn, [Built(third, digest("a"))])
        by_id = dict(conn.execute(sa.select(versions.c.id, versions.c.state)).all())
        has_evidence = conn.execute(sa.select(sa.func.count()).select_from(evidence)).scalar_one()
    assert states == {third.version_id: State.UNCHANGED}
    # The first version has no signed bytes to resend: it goes back to be built and signed, never "signed".
    assert by_id[first.version_id] == State.DISCOVERED
    assert has_evidence == 0


def test_two_attempts_for_one_version_in_one_call_count_twice(ledger: Engine) -> None:
    item = discover(ledger, "K1", T0)
    with ledger.begin() as conn:
        repo.record_built_many(conn, [Built(item, digest("a"))])
        repo.record_signed_many(
            conn, [repo.Signed(item, b"<x/>", digest("<x/>"))], cert_serial="ab", keys=KEYS
        )
    retry = AttemptResult(State.SUBMITTED, error_code="http:503", next_attempt_at=T0)
    accepted = AttemptResult(State.ACCEPTED)
    attempts = [
        repo.Attempt(item, retry, 503, None, None, None, digest("<x/>"), {}, False),
        repo.Attempt(
            item, accepted, 200, "200", "GD1", "202603020800", digest("<x/>"), {"maKetQua": "200"}, False
        ),
    ]
    with ledger.begin() as conn:
        repo.record_attempts(conn, attempts, destination="bhxh", keys=KEYS)
        row = conn.execute(sa.select(versions).where(versions.c.id == item.version_id)).one()
        receipt = repo.receipts(conn, [item.version_id], KEYS)[item.version_id]
    assert (row.attempts, row.state, row.ma_giao_dich) == (2, State.ACCEPTED, "GD1")
    assert receipt == {"maKetQua": "200"}


def test_a_random_mixed_batch_matches_recording_one_by_one(
    sqlite_ledger: Engine, pg_ledger: Engine, rng: random.Random
) -> None:
    """Same discoveries and outcomes, recorded batched in one ledger and one at a time in the other."""
    plan: list[tuple[str, int, str, str]] = []  # his_key, minute changed, kind, content
    for index in range(60):
        key = f"K{rng.randrange(25)}"
        plan.append((key, index, rng.choice(["built", "built", "built", "quarantined"]), rng.choice("abc")))
    results: dict[str, tuple[object, ...]] = {}
    for name, engine, batched in (("batched", pg_ledger, True), ("single", sqlite_ledger, False)):
        items = [discover(engine, key, T0 + timedelta(minutes=minute)) for key, minute, _, _ in plan]
        built = [Built(item, digest(key + content)) for item, (key, _, kind, content) in zip(items, plan, strict=True)
                 if kind == "built"]  # fmt: skip
        bad = [repo.Quarantined(item, digest("bad" + key + content), [{"rule": "R1"}])
               for item, (key, _, kind, content) in zip(items, plan, strict=True) if kind == "quarantined"]  # fmt: skip
        with engine.begin() as conn:
            if batched:
                repo.record_quarantined_many(conn, bad)
                repo.record_built_many(conn, built)
            else:
                for entry in bad:
                    repo.record_quarantined(
                        conn, entry.item, source_hash=entry.source_hash, issues=entry.issues
                    )
                for b in built:
                    repo.record_built(conn, b.item, content_hash=b.content_hash, tables=(), warnings=())
        results[name] = snapshot(engine)
    assert results["batched"] == results["single"]
