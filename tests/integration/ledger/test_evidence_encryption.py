"""Evidence at rest, on SQLite and PostgreSQL: sealed rows hold no plaintext, open only in their own row with a
key of the ring, survive rotation and rekey (resumable), rows from before encryption stay readable, and the
retention purge touches only accepted versions past the retention, with one audit event per run."""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.integration.ledger.evidence_support import (
    CARD_NUMBER,
    NOW,
    PATIENT_FRAGMENT,
    THONG_DIEP,
    legacy_row,
    sent_version,
    signed_file,
)
from tests.integration.ledger.migration_support import downgrade
from worker.ledger import audit, evidence_store, migrate
from worker.ledger import repository as repo
from worker.ledger.evidence_crypto import (
    EvidenceKeys,
    EvidenceKind,
    EvidenceUnreadableError,
    UnknownEvidenceKeyError,
    new_key,
)
from worker.ledger.schema import audit_log, deliveries, evidence, versions
from worker.ledger.states import State


@pytest.fixture(params=["sqlite_ledger", "pg_ledger"])
def ledger(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(request.param)
    return engine


def database_bytes(engine: Engine) -> bytes:
    """Everything the database holds for the evidence table, as the server stores it."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(sa.text("SELECT evidence::text FROM evidence")).scalars()
            return "\n".join(rows).encode()
    database = Path(str(engine.url.database))
    return b"".join(path.read_bytes() for path in (database, Path(f"{database}-wal")) if path.exists())


def in_database(engine: Engine, text: str) -> bool:
    stored = database_bytes(engine)
    if engine.dialect.name == "postgresql":  # bytea is rendered as \x<hex> in a row's text
        return text.encode().hex() in stored.decode() or text in stored.decode()
    return text.encode() in stored


# --------------------------------------------------------------------------------------------- at rest


def test_sealed_rows_hold_no_plaintext_and_open_to_the_exact_bytes(ledger: Engine) -> None:
    keys = EvidenceKeys.generate()
    item = sent_version(ledger, keys, "1001")
    plain = sent_version(ledger, keys, "1002")
    # The control, so the search below can fail: a row as written before encryption shows its receipt.
    legacy_row(ledger, plain, b"<legacy/>", {"thongDiep": "LEGACY RECEIPT MARKER"})
    assert in_database(ledger, "LEGACY RECEIPT MARKER")
    assert not in_database(ledger, CARD_NUMBER), "the card number is in the signed file and the receipt"
    with ledger.connect() as conn:
        row = conn.execute(sa.select(evidence).where(evidence.c.version_id == item.version_id)).one()
        documents = repo.signed_documents(conn, [item.version_id, plain.version_id], keys)
        receipts = repo.receipts(conn, [item.version_id], keys)
    for blob in (bytes(row.signed_document), bytes(row.sealed_receipt)):
        assert PATIENT_FRAGMENT.encode() not in blob
        assert THONG_DIEP.encode() not in blob
        with pytest.raises(zlib.error):  # not merely compressed
            zlib.decompress(blob)
    assert row.receipt is None, "no plain copy of the receipt"
    assert row.document_key_id == row.receipt_key_id == keys.active_id
    assert documents == {item.version_id: signed_file("1001"), plain.version_id: b"<legacy/>"}
    assert receipts[item.version_id]["thongDiep"] == THONG_DIEP
    # What queries need stays in plain columns of the version.
    with ledger.connect() as conn:
        version = conn.execute(sa.select(versions).where(versions.c.id == item.version_id)).one()
    assert (version.ma_ket_qua, version.ma_giao_dich) == ("200", "GD1001")


def test_rows_written_before_encryption_stay_readable(ledger: Engine) -> None:
    keys = EvidenceKeys.generate()
    item = sent_version(ledger, keys, "1101")
    legacy_row(ledger, item, signed_file("1101"), {"maKetQua": "200", "thongDiep": "ok"})
    with ledger.connect() as conn:
        assert repo.signed_document(conn, item.version_id, keys) == signed_file("1101")
        assert repo.receipts(conn, [item.version_id], keys) == {
            item.version_id: {"maKetQua": "200", "thongDiep": "ok"}
        }
        census = evidence_store.census(conn)
    assert (census.plain_documents, census.plain_receipts, census.sealed) == (1, 1, {})


# ------------------------------------------------------------------------------------ refusing to open


def test_a_blob_swapped_into_another_row_or_column_does_not_open(ledger: Engine) -> None:
    keys = EvidenceKeys.generate()
    first, second = sent_version(ledger, keys, "1201"), sent_version(ledger, keys, "1202")
    with ledger.begin() as conn:
        donor = conn.execute(sa.select(evidence).where(evidence.c.version_id == first.version_id)).one()
        conn.execute(
            sa.update(evidence)
            .where(evidence.c.version_id == second.version_id)
            .values(signed_document=donor.signed_document, sealed_receipt=donor.signed_document)
        )
    with (
        ledger.connect() as conn,
        pytest.raises(EvidenceUnreadableError, match=f"version {second.version_id}"),
    ):
        repo.signed_documents(conn, [second.version_id], keys)
    with ledger.connect() as conn, pytest.raises(EvidenceUnreadableError, match="the receipt of version"):
        repo.receipts(conn, [second.version_id], keys)
    with ledger.connect() as conn:  # the donor itself is untouched
        assert repo.signed_document(conn, first.version_id, keys) == signed_file("1201")


def test_a_tampered_blob_does_not_open(ledger: Engine) -> None:
    keys = EvidenceKeys.generate()
    item = sent_version(ledger, keys, "1301")
    with ledger.begin() as conn:
        blob = bytearray(
            conn.execute(
                sa.select(evidence.c.signed_document).where(evidence.c.version_id == item.version_id)
            ).scalar_one()
        )
        blob[len(blob) // 2] ^= 0x01
        conn.execute(
            sa.update(evidence)
            .where(evidence.c.version_id == item.version_id)
            .values(signed_document=bytes(blob))
        )
    with (
        ledger.connect() as conn,
        pytest.raises(EvidenceUnreadableError, match="altered or belongs to another row"),
    ):
        repo.signed_document(conn, item.version_id, keys)


def test_a_key_missing_from_the_ring_is_named(ledger: Engine) -> None:
    old = EvidenceKeys.generate()
    item = sent_version(ledger, old, "1401")
    stranger = EvidenceKeys.generate()
    with ledger.connect() as conn:
        with pytest.raises(UnknownEvidenceKeyError, match=old.active_id) as raised:
            repo.signed_document(conn, item.version_id, stranger)
        assert "\n" not in str(raised.value)
        census = evidence_store.census(conn)
    assert census.unopenable(stranger) == {old.active_id: 2}  # the signed file and the receipt
    with pytest.raises(UnknownEvidenceKeyError, match=f"{old.active_id} .*2 stored evidence blob"):
        census.check(stranger)
    census.check(old)


# ----------------------------------------------------------------------------------- rotation, rekey


def test_rotation_opens_old_rows_and_seals_new_ones_with_the_new_key(ledger: Engine) -> None:
    first_key, second_key = new_key(), new_key()
    before = EvidenceKeys(first_key)
    after = EvidenceKeys(second_key, [first_key])
    old = sent_version(ledger, before, "1501")
    new = sent_version(ledger, after, "1502")
    with ledger.connect() as conn:
        assert repo.signed_documents(conn, [old.version_id, new.version_id], after) == {
            old.version_id: signed_file("1501"),
            new.version_id: signed_file("1502"),
        }
        key_ids = dict(conn.execute(sa.select(evidence.c.version_id, evidence.c.document_key_id)).all())
    assert key_ids == {old.version_id: before.active_id, new.version_id: after.active_id}


def test_rekey_reseals_every_row_with_the_active_key_and_resumes_after_an_interruption(
    ledger: Engine,
) -> None:
    first_key, second_key = new_key(), new_key()
    before = EvidenceKeys(first_key)
    items = [sent_version(ledger, before, f"16{index:02d}") for index in range(5)]
    legacy_row(ledger, items[0], signed_file("1600"), {"thongDiep": THONG_DIEP})
    signed_only = sent_version(ledger, before, "1699", state=None)  # no receipt yet
    rotated = EvidenceKeys(second_key, [first_key])
    with ledger.begin() as conn:
        first_batch = evidence_store.rekey_batch(conn, rotated, after_version_id=0, limit=2)
    assert (first_batch.documents, first_batch.receipts) == (2, 2)
    # "Interrupted" here: a new run starts from the beginning and skips what is already done.
    resealed_documents = first_batch.documents
    after_id = 0
    while True:
        with ledger.begin() as conn:
            batch = evidence_store.rekey_batch(conn, rotated, after_version_id=after_id, limit=2)
        if batch.last_version_id is None:
            break
        after_id = batch.last_version_id
        resealed_documents += batch.documents
    assert resealed_documents == len(items) + 1, "each row re-sealed once"
    only_new = EvidenceKeys(second_key)
    with ledger.connect() as conn:
        census = evidence_store.census(conn)
        documents = repo.signed_documents(
            conn, [*(i.version_id for i in items), signed_only.version_id], only_new
        )
        receipts = repo.receipts(conn, [i.version_id for i in items], only_new)
        plain_receipts = conn.execute(
            sa.select(sa.func.count()).select_from(evidence).where(evidence.c.receipt.is_not(None))
        ).scalar_one()
    assert census.sealed == {only_new.active_id: 2 * len(items) + 1}
    assert (census.plain_documents, census.plain_receipts) == (0, 0)
    assert plain_receipts == 0, "the plain receipt is gone (SQL NULL), not kept beside the sealed one"
    assert documents[items[0].version_id] == signed_file("1600")
    assert receipts[items[0].version_id] == {"thongDiep": THONG_DIEP}
    assert len(receipts) == len(items)
    with ledger.begin() as conn:
        nothing_left = evidence_store.rekey_batch(conn, rotated, after_version_id=0, limit=100)
    assert nothing_left.last_version_id is None


# ------------------------------------------------------------------------------------------ retention


def _audit_events(engine: Engine, event: str) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(
            conn.execute(sa.select(audit_log).where(audit_log.c.event == event).order_by(audit_log.c.id))
        )


def test_purge_clears_only_accepted_versions_past_the_retention_and_audits_each_run(ledger: Engine) -> None:
    keys = EvidenceKeys.generate()
    old = NOW - timedelta(days=400)
    expired = sent_version(ledger, keys, "1701", completed_at=old)
    expired_too = sent_version(ledger, keys, "1702", completed_at=old)
    recent = sent_version(ledger, keys, "1703", completed_at=NOW - timedelta(days=10))
    rejected = sent_version(ledger, keys, "1704", completed_at=old, state=State.REJECTED)
    in_flight = sent_version(ledger, keys, "1705", completed_at=old, state=State.SUBMITTED)
    not_sent = sent_version(ledger, keys, "1706", completed_at=old, state=None)
    hub_pending = sent_version(ledger, keys, "1707", completed_at=old)
    with ledger.begin() as conn:
        conn.execute(sa.insert(deliveries).values(version_id=hub_pending.version_id, destination="soyt",
                                                  state=State.SUBMITTED.value, attempts=1, updated_at=NOW))  # fmt: skip
    everything = [expired, expired_too, recent, rejected, in_flight, not_sent, hub_pending]

    with ledger.begin() as conn:
        dry = evidence_store.purge_expired(conn, retention_days=365, now=NOW, dry_run=True)
    assert (dry.purged, dry.remaining) == (0, 2)
    assert _audit_events(ledger, "evidence_purged") == []

    with ledger.begin() as conn:
        first = evidence_store.purge_expired(conn, retention_days=365, now=NOW, limit=1, actor="purge-test")
    assert (first.purged, first.remaining) == (1, 1)
    with ledger.begin() as conn:
        second = evidence_store.purge_expired(conn, retention_days=365, now=NOW, actor="purge-test")
    assert (second.purged, second.remaining) == (1, 0)

    with ledger.connect() as conn:
        kept = repo.signed_documents(conn, [item.version_id for item in everything], keys)
        rows = {row.version_id: row for row in conn.execute(sa.select(evidence))}
        assert audit.verify_chain(conn).ok
    purged_ids = {expired.version_id, expired_too.version_id}
    assert set(kept) == {item.version_id for item in everything} - purged_ids
    for version_id in purged_ids:
        row = rows[version_id]
        assert (row.signed_document, row.sealed_receipt, row.receipt, row.document_key_id) == (
            None,
            None,
            None,
            None,
        )
        assert row.purged_at is not None
    assert rows[expired.version_id].signed_sha256 == hashlib.sha256(signed_file("1701")).hexdigest()
    events = _audit_events(ledger, "evidence_purged")
    assert [json.loads(event.detail)["versions"] for event in events] == [1, 1]
    assert {event.actor for event in events} == {"purge-test"}
    detail = json.loads(events[0].detail)
    assert set(detail) == {"versions", "remaining", "retention_days", "cutoff"}, (
        "counts only, no personal data"
    )
    assert (detail["retention_days"], detail["remaining"]) == (365, 1)


def test_purge_refuses_a_retention_below_one_day(ledger: Engine) -> None:
    with ledger.begin() as conn, pytest.raises(ValueError, match="at least 1 day"):
        evidence_store.purge_expired(conn, retention_days=0, now=NOW)


# -------------------------------------------------------------------------------------- audited reads


def test_reading_evidence_is_audited_with_the_reader_and_what_was_opened(ledger: Engine) -> None:
    keys = EvidenceKeys.generate()
    item = sent_version(ledger, keys, "1801")
    with ledger.begin() as conn:
        read = evidence_store.read_evidence(
            conn, keys, ma_lk=item.ma_lk, version_id=None, reader="alice@his-server",
            parts=[EvidenceKind.SIGNED_DOCUMENT, EvidenceKind.RECEIPT],
        )  # fmt: skip
    assert read is not None
    assert read.document == signed_file("1801")
    assert read.receipt is not None
    assert read.receipt["thongDiep"] == THONG_DIEP
    [event] = _audit_events(ledger, "evidence_read")
    assert (event.actor, event.ma_lk, event.version_id) == ("alice@his-server", item.ma_lk, item.version_id)
    assert json.loads(event.detail) == {"reader": "alice@his-server", "parts": ["signed_document", "receipt"]}
    assert event.request_hash == hashlib.sha256(signed_file("1801")).hexdigest()
    with ledger.begin() as conn:
        assert evidence_store.read_evidence(
            conn, keys, ma_lk="79999-nobody", version_id=None, reader="alice", parts=[EvidenceKind.SIGNED_DOCUMENT]
        ) is None  # fmt: skip
    assert len(_audit_events(ledger, "evidence_read")) == 1, "nothing read, nothing recorded"


# ------------------------------------------------------------------------------------------ migration


def test_revision_0003_keeps_earlier_rows_and_refuses_to_downgrade_over_sealed_ones(
    sqlite_ledger: Engine,
) -> None:
    keys = EvidenceKeys.generate()
    downgrade(sqlite_ledger, "0002")
    with sqlite_ledger.begin() as conn:
        conn.execute(sa.text("INSERT INTO encounters (ma_lk, his_key, completed_at, his_changed_at, state, first_seen_at) "
                             "VALUES ('79999-1901', '1901', :t, :t, 'signed', :t)"), {"t": NOW})  # fmt: skip
        conn.execute(sa.text("INSERT INTO versions (id, ma_lk, state, attempts, created_at, updated_at) "
                             "VALUES (1, '79999-1901', 'signed', 0, :t, :t)"), {"t": NOW})  # fmt: skip
        conn.execute(sa.text("INSERT INTO evidence (version_id, signed_sha256, signed_document, compression, "
                             "receipt, stored_at) VALUES (1, 'h', :doc, 'zlib', :receipt, :t)"),
                     {"doc": zlib.compress(signed_file("1901")), "receipt": '{"thongDiep": "ok"}', "t": NOW})  # fmt: skip
    migrate.upgrade(sqlite_ledger)
    with sqlite_ledger.connect() as conn:
        assert repo.signed_document(conn, 1, keys) == signed_file("1901")
        assert repo.receipts(conn, [1], keys) == {1: {"thongDiep": "ok"}}
    with sqlite_ledger.begin() as conn:
        evidence_store.rekey_batch(conn, keys, after_version_id=0, limit=10)
    with pytest.raises(RuntimeError, match="1 evidence rows are sealed or purged"):
        downgrade(sqlite_ledger, "0002")  # the later revisions' steps before the refusal are rolled back too
    assert migrate.is_up_to_date(sqlite_ledger)
