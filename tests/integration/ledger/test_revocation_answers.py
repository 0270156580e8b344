"""The CA's signed answers (OCSP responses, CRLs) signed versions relied on, kept in ``revocation_answers`` on
SQLite and PostgreSQL: once per distinct answer, in the transaction that records the signed versions, named
by SHA-256 in their ``signed`` audit events, compressed, idempotent across batches and racing processes;
``audit verify`` checks every answer the verified signed events name, in one query; revision 0004 builds exactly
the schema module and refuses to downgrade over kept answers; revision 0005 makes the table append-only (UPDATE
and DELETE refused by the database, INSERT still allowed)."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography import x509
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from adapters.signers.testpki import (
    Issued,
    certificate_revocation_list,
    generate_ca,
    ocsp_response,
)
from schemas.ports import EncounterRef
from tests.integration.ledger.append_only import append_only_lifted
from tests.integration.ledger.evidence_support import FACILITY, signed_file
from tests.integration.ledger.migration_support import alembic_on, downgrade
from tests.unit.signers.revocation_support import ocsp_request_for_serial
from worker.ledger import audit, migrate, revocation_answers
from worker.ledger import repository as repo
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.ledger.repository import WorkItem
from worker.ledger.revocation_answers import RevocationAnswer, RevocationAnswerCorruptError
from worker.ledger.schema import audit_log, metadata
from worker.ledger.schema import revocation_answers as answers_table

#: The signed events are recorded at the real time, and `audit verify` judges each answer at the time of the
#: events that relied on it: the answers are made to hold then. Whole seconds, as OCSP and CRL times.
NOW = datetime.now(UTC).replace(microsecond=0)
#: The certificate the signed events name (``cert_serial``), and the one the OCSP answers are about.
CERT_SERIAL = "ab"
KEYS = EvidenceKeys.generate()


@pytest.fixture(scope="module")
def ca() -> Issued:
    return generate_ca(key_size=2048)


def crl_answer(ca: Issued, *, number: int = 1, revoked: int = 0) -> RevocationAnswer:
    """A real CRL of ``ca`` (``revoked`` entries: a large CA's CRL is megabytes of serials and dates)."""
    entries = {serial: (NOW - timedelta(days=1), None) for serial in range(1_000, 1_000 + revoked)}
    der = certificate_revocation_list(
        ca, entries, last_update=NOW, next_update=NOW + timedelta(days=7), number=number
    )
    return RevocationAnswer(
        sha256=hashlib.sha256(der).hexdigest(), kind="crl", der=der, url="http://ca.test/ca.crl",
        this_update=NOW, next_update=NOW + timedelta(days=7),
    )  # fmt: skip


def ocsp_answer(ca: Issued) -> RevocationAnswer:
    request = ocsp_request_for_serial(ca.certificate, int(CERT_SERIAL, 16))
    der = ocsp_response(request, signer=ca, this_update=NOW, next_update=NOW + timedelta(days=1))
    return RevocationAnswer(
        sha256=hashlib.sha256(der).hexdigest(), kind="ocsp", der=der, url="http://ca.test/ocsp",
        this_update=NOW, next_update=NOW + timedelta(days=1),
    )  # fmt: skip


def built(engine: Engine, *his_keys: str) -> list[WorkItem]:
    """Versions registered and built through the repository, ready to be recorded as signed."""
    items: list[WorkItem] = []
    with engine.begin() as conn:
        refs = [EncounterRef(his_key=key, completed_at=NOW, changed_at=NOW) for key in his_keys]
        for registered in repo.read_items(
            conn, repo.register_refs(conn, refs, facility_code=FACILITY).version_ids
        ):
            document = signed_file(registered.his_key)
            repo.record_built(
                conn,
                registered,
                content_hash=hashlib.sha256(document).hexdigest(),
                tables=["XML1"],
                warnings=[],
            )
            items += repo.read_items(conn, [registered.version_id])
    return items


def signed_under(item: WorkItem, answer: RevocationAnswer | None) -> repo.Signed:
    document = signed_file(item.his_key)
    record: dict[str, object] = {"policy": "warn", "state": "good" if answer else "unknown"}
    return repo.Signed(item, document, hashlib.sha256(document).hexdigest(), revocation=record,
                       revocation_answer=answer)  # fmt: skip


def record(conn: sa.Connection, signed: list[repo.Signed]) -> None:
    repo.record_signed_many(conn, signed, cert_serial=CERT_SERIAL, keys=KEYS)


def kept_rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.sha256: row for row in conn.execute(sa.select(answers_table))}


def named_answers(engine: Engine) -> dict[int, str | None]:
    """version id → the answer its ``signed`` event names."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.version_id, audit_log.c.detail).where(audit_log.c.event == "signed")
        )
        return {row.version_id: json.loads(row.detail)["revocation"].get("answer_sha256") for row in rows}


@pytest.fixture
def answer_inserts(ledger: Engine) -> Iterator[list[str]]:
    """The INSERT statements sent for ``revocation_answers`` (what crosses the wire, not what is kept)."""
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO REVOCATION_ANSWERS"):
            sent.append(statement)

    sa.event.listen(ledger, "before_cursor_execute", capture)
    yield sent
    sa.event.remove(ledger, "before_cursor_execute", capture)


def test_one_row_per_distinct_answer_named_by_every_version_that_relied_on_it(
    ledger: Engine, ca: Issued, answer_inserts: list[str]
) -> None:
    by_ocsp, by_crl = ocsp_answer(ca), crl_answer(ca)
    items = built(ledger, "1001", "1002", "1003", "1004", "1005")
    with ledger.begin() as conn:
        record(conn, [signed_under(items[0], by_ocsp), signed_under(items[1], by_ocsp),
                      signed_under(items[2], by_crl), signed_under(items[3], by_ocsp),
                      signed_under(items[4], None)])  # fmt: skip
    rows = kept_rows(ledger)
    assert set(rows) == {by_ocsp.sha256, by_crl.sha256}
    assert len(answer_inserts) == 2  # once per distinct answer in the batch, not once per version
    for answer in (by_ocsp, by_crl):
        row = rows[answer.sha256]
        assert (row.kind, row.url, row.compression, row.size) == (
            answer.kind,
            answer.url,
            "zlib",
            len(answer.der),
        )
        assert zlib.decompress(row.der) == answer.der
    assert named_answers(ledger) == {
        items[0].version_id: by_ocsp.sha256, items[1].version_id: by_ocsp.sha256,
        items[2].version_id: by_crl.sha256, items[3].version_id: by_ocsp.sha256,
        items[4].version_id: None,  # unknown: no answer, nothing named
    }  # fmt: skip
    with ledger.connect() as conn:
        assert audit.verify_chain(conn).ok
        kept = revocation_answers.read(conn, by_ocsp.sha256.upper())  # as an inspector may paste it
    assert kept is not None
    assert kept.der == by_ocsp.der
    assert (kept.this_update, kept.next_update) == (by_ocsp.this_update, by_ocsp.next_update)


def test_a_kept_answer_is_neither_sent_again_nor_rewritten_by_later_batches(
    ledger: Engine, ca: Issued, answer_inserts: list[str]
) -> None:
    answer = crl_answer(ca, revoked=2_000)
    first, second = built(ledger, "2001"), built(ledger, "2002", "2003")
    with ledger.begin() as conn:
        record(conn, [signed_under(first[0], answer)])
    [kept] = kept_rows(ledger).values()
    with ledger.begin() as conn:
        record(conn, [signed_under(item, answer) for item in second])
    assert len(answer_inserts) == 1, "the CRL crossed the wire once: the second batch found it by key"
    [again] = kept_rows(ledger).values()
    assert (again.der, again.first_used_at) == (kept.der, kept.first_used_at)
    assert len(kept.der) < len(answer.der) // 2  # serials and dates compress well
    assert set(named_answers(ledger).values()) == {answer.sha256}


def test_an_answer_kept_by_another_process_meanwhile_is_not_an_error(pg_ledger: Engine, ca: Issued) -> None:
    """Two workers sign under the same new answer: both find it absent, both insert, the second does nothing
    (ON CONFLICT DO NOTHING). Deterministic: the other worker commits right after this one's lookup. SQLite
    needs no such test: its writers take the lock at BEGIN IMMEDIATE, so lookup and insert cannot be split."""
    answer = ocsp_answer(ca)
    [ours, theirs] = built(pg_ledger, "3001", "3002")
    raced: list[int] = []

    def the_other_worker_commits_after_our_lookup(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not raced and statement.lstrip().upper().startswith("SELECT REVOCATION_ANSWERS.SHA256"):
            with pg_ledger.begin() as other:
                record(other, [signed_under(theirs, answer)])
            raced.append(1)

    with pg_ledger.begin() as conn:
        sa.event.listen(conn, "after_cursor_execute", the_other_worker_commits_after_our_lookup)
        record(conn, [signed_under(ours, answer)])
    assert raced == [1]
    assert list(kept_rows(pg_ledger)) == [answer.sha256]
    assert named_answers(pg_ledger) == {ours.version_id: answer.sha256, theirs.version_id: answer.sha256}


def test_an_answer_is_kept_in_the_transaction_of_its_signed_versions(ledger: Engine, ca: Issued) -> None:
    answer = ocsp_answer(ca)
    [item] = built(ledger, "4001")

    def crash_before_commit() -> None:
        with ledger.begin() as conn:
            record(conn, [signed_under(item, answer)])
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash"):
        crash_before_commit()
    assert kept_rows(ledger) == {}
    assert named_answers(ledger) == {}


def test_an_answer_whose_bytes_do_not_match_its_hash_is_refused_and_found_on_read(
    ledger: Engine, ca: Issued
) -> None:
    answer = ocsp_answer(ca)
    [item, other] = built(ledger, "5001", "5002")
    forged = RevocationAnswer(sha256=answer.sha256, kind="ocsp", der=answer.der + b"\x00", url=answer.url,
                              this_update=NOW, next_update=None)  # fmt: skip
    with pytest.raises(ValueError, match="does not hash"), ledger.begin() as conn:
        record(conn, [signed_under(item, forged)])
    with ledger.begin() as conn:
        record(conn, [signed_under(other, answer)])
    with ledger.begin() as conn, append_only_lifted(conn, "revocation_answers"):
        conn.execute(sa.update(answers_table).values(der=zlib.compress(crl_answer(ca).der)))  # edited later
    with ledger.connect() as conn, pytest.raises(RevocationAnswerCorruptError, match="do not hash"):
        revocation_answers.read(conn, answer.sha256)
    with ledger.connect() as conn:
        assert revocation_answers.read(conn, "0" * 64) is None


# --------------------------------------------------------------------------------------- audit verify


def signed_event_ids(engine: Engine) -> dict[int, int]:
    """version id → the id of its ``signed`` audit event."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.version_id, audit_log.c.id).where(audit_log.c.event == "signed")
        )
        return {row.version_id: row.id for row in rows}


def named_by(engine: Engine, items: list[WorkItem]) -> tuple[tuple[int, int], ...]:
    """(event id, version id) of these versions' signed events, as a fault lists them."""
    events = signed_event_ids(engine)
    return tuple((events[item.version_id], item.version_id) for item in items)


@pytest.fixture
def answer_reads(ledger: Engine) -> Iterator[list[str]]:
    """The statements sent that read ``revocation_answers``."""
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM revocation_answers" in statement:
            sent.append(statement)

    sa.event.listen(ledger, "before_cursor_execute", capture)
    yield sent
    sa.event.remove(ledger, "before_cursor_execute", capture)


def audit_verify(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, list[str]]:
    """``vneid-sync audit verify`` on this ledger: (exit code, stdout, stderr lines)."""
    from worker.cli.app import main

    monkeypatch.setenv("VNEID_LEDGER__DATABASE_URL", engine.url.render_as_string(hide_password=False))
    capsys.readouterr()
    code = main(["audit", "verify"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.splitlines()


def test_audit_verify_checks_every_named_answer_in_one_query(
    ledger: Engine,
    ca: Issued,
    answer_reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    by_ocsp, by_crl = ocsp_answer(ca), crl_answer(ca, revoked=200)
    items = built(ledger, "8001", "8002", "8003", "8004", "8005", "8006")
    with ledger.begin() as conn:
        record(conn, [signed_under(items[0], by_ocsp), signed_under(items[1], by_crl),
                      signed_under(items[2], None)])  # fmt: skip
    with ledger.begin() as conn:
        record(conn, [signed_under(item, by_ocsp) for item in items[3:5]] + [signed_under(items[5], by_crl)])
    answer_reads.clear()
    with ledger.connect() as conn:
        report = audit.verify_chain(conn, batch=3)  # the chain read in several chunks, the answers in one
    assert report.ok
    assert report.answers == audit.AnswerCheck(named=2, events=5, faults=())
    assert len(answer_reads) == 1
    code, out, err = audit_verify(ledger, monkeypatch, capsys)
    assert (code, err) == (0, [])
    assert out.splitlines()[1] == "revocation answers intact: 2 kept, named by 5 signed events"


def test_audit_verify_names_each_missing_or_altered_answer_and_the_events_naming_it(
    ledger: Engine, ca: Issued, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lost, edited, garbled, intact = (ocsp_answer(ca), *(crl_answer(ca, number=n) for n in (1, 2, 3)))
    items = built(ledger, *(str(8100 + n) for n in range(10)))
    with ledger.begin() as conn:
        record(conn, [signed_under(item, lost) for item in items[:7]] + [
            signed_under(items[7], edited), signed_under(items[8], garbled), signed_under(items[9], intact)
        ])  # fmt: skip
    with ledger.begin() as conn, append_only_lifted(conn, "revocation_answers"):
        conn.execute(sa.delete(answers_table).where(answers_table.c.sha256 == lost.sha256))
        conn.execute(  # another CRL of the same CA: compressed fine, but not the one the events name
            sa.update(answers_table)
            .where(answers_table.c.sha256 == edited.sha256)
            .values(der=zlib.compress(crl_answer(ca, number=4).der))
        )
        conn.execute(
            sa.update(answers_table).where(answers_table.c.sha256 == garbled.sha256).values(der=b"\x00" * 64)
        )
    with ledger.connect() as conn:
        report = audit.verify_chain(conn)
    assert report.chain_intact
    assert not report.ok
    assert (report.answers.named, report.answers.events) == (4, 10)
    first_five = named_by(ledger, items[:5])  # of seven: the others are counted, not listed
    assert report.answers.faults == (
        audit.AnswerFault(lost.sha256, "missing", "", 7, first_five),
        audit.AnswerFault(edited.sha256, "altered",
                          "the stored bytes do not hash to their SHA-256 (edited or damaged)", 1,
                          named_by(ledger, items[7:8])),
        audit.AnswerFault(garbled.sha256, "altered", "the stored bytes do not decompress", 1,
                          named_by(ledger, items[8:9])),
    )  # fmt: skip

    code, out, err = audit_verify(ledger, monkeypatch, capsys)
    (edited_event, edited_version), (garbled_event, garbled_version) = named_by(ledger, items[7:9])
    listed = ", ".join(f"event {event} (version {version})" for event, version in first_five)
    assert (code, out) == (1, "")
    assert err == [
        f"revocation answer {lost.sha256} MISSING from the ledger: named by 7 signed events: {listed}, 2 more",
        f"revocation answer {edited.sha256} ALTERED (the stored bytes do not hash to their SHA-256 (edited or "
        f"damaged)): named by 1 signed event: event {edited_event} (version {edited_version})",
        f"revocation answer {garbled.sha256} ALTERED (the stored bytes do not decompress): named by 1 signed "
        f"event: event {garbled_event} (version {garbled_version})",
        "error: 3 of 4 revocation answers named by signed events are missing or altered (audit chain intact: "
        f"{report.rows_checked} rows)",
    ]


def test_audit_verify_checks_the_answers_named_before_a_break_in_the_chain(
    ledger: Engine, ca: Issued, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row after the break proves nothing, so neither do the answers it names; those named before it are
    checked and reported with the break."""
    early, late = ocsp_answer(ca), crl_answer(ca)
    [first], [second] = built(ledger, "8201"), built(ledger, "8202")
    with ledger.begin() as conn:
        record(conn, [signed_under(first, early)])
    with ledger.begin() as conn:
        record(conn, [signed_under(second, late)])
    broken = signed_event_ids(ledger)[second.version_id]
    with ledger.begin() as conn:
        with append_only_lifted(conn, "revocation_answers"):
            conn.execute(sa.delete(answers_table))
        with append_only_lifted(conn, "audit_log"):
            conn.execute(sa.update(audit_log).where(audit_log.c.id == broken).values(ma_ket_qua="500"))
    with ledger.connect() as conn:
        report = audit.verify_chain(conn)
    assert report.bad_row_id == broken
    assert report.answers == audit.AnswerCheck(
        named=1,
        events=1,
        faults=(audit.AnswerFault(early.sha256, "missing", "", 1, named_by(ledger, [first])),),
    )
    code, out, err = audit_verify(ledger, monkeypatch, capsys)
    assert (code, out) == (1, "")
    assert err[0].startswith(
        f"revocation answer {early.sha256} MISSING from the ledger: named by 1 signed event"
    )
    assert err[1] == (
        f"error: audit chain broken at row {broken}: content altered: the row hash does not match "
        f"({report.rows_checked} rows verified before it); 1 of 1 revocation answers named by signed events "
        "are missing or altered"
    )
    assert len(err) == 2


# ------------------------------------------------------------------------------------------ migration


def test_migrations_build_exactly_the_schema_module(ledger: Engine) -> None:
    with ledger.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
        assert "revocation_answers" in sa.inspect(conn).get_table_names()


def test_revision_0004_downgrades_only_while_no_answer_is_kept(sqlite_ledger: Engine, ca: Issued) -> None:
    downgrade(sqlite_ledger, "0003")
    assert "revocation_answers" not in sa.inspect(sqlite_ledger).get_table_names()
    migrate.upgrade(sqlite_ledger)
    [item] = built(sqlite_ledger, "6001")
    with sqlite_ledger.begin() as conn:
        record(conn, [signed_under(item, ocsp_answer(ca))])
    with pytest.raises(RuntimeError, match="1 revocation answers are kept"):
        downgrade(sqlite_ledger, "0003")  # revision 0005's step, before the refusal, is rolled back too
    assert migrate.is_up_to_date(sqlite_ledger)
    assert len(kept_rows(sqlite_ledger)) == 1


def test_the_crl_entries_survive_the_round_trip(ledger: Engine, ca: Issued) -> None:
    answer = crl_answer(ca, number=7, revoked=50)
    [item] = built(ledger, "7001")
    with ledger.begin() as conn:
        record(conn, [signed_under(item, answer)])
    with ledger.connect() as conn:
        kept = revocation_answers.read(conn, answer.sha256)
    assert kept is not None
    assert kept.der is not None
    crl = x509.load_der_x509_crl(kept.der)
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert len(crl) == 50


def test_kept_answers_refuse_update_and_delete_and_new_answers_are_still_kept(
    ledger: Engine, ca: Issued
) -> None:
    kept, new = ocsp_answer(ca), crl_answer(ca)
    [first, second] = built(ledger, "8301", "8302")
    with ledger.begin() as conn:
        record(conn, [signed_under(first, kept)])
    with pytest.raises(DBAPIError, match="revocation_answers is append-only"), ledger.begin() as conn:
        conn.execute(sa.update(answers_table).values(der=zlib.compress(new.der)))
    with pytest.raises(DBAPIError, match="revocation_answers is append-only"), ledger.begin() as conn:
        conn.execute(sa.delete(answers_table).where(answers_table.c.sha256 == kept.sha256))
    with ledger.begin() as conn:
        record(conn, [signed_under(second, new)])  # INSERT is what keep() does: still allowed
    rows = kept_rows(ledger)
    assert set(rows) == {kept.sha256, new.sha256}
    assert zlib.decompress(rows[kept.sha256].der) == kept.der
    with ledger.connect() as conn:
        assert audit.verify_chain(conn).ok


def test_revision_0005_downgrade_lifts_the_refusal_and_upgrade_restores_it(
    ledger: Engine, ca: Issued
) -> None:
    """On both dialects, in one transaction rolled back at the end: the session's PostgreSQL ledger stays at
    head whatever happens here."""
    [item] = built(ledger, "8401")
    with ledger.begin() as conn:
        record(conn, [signed_under(item, ocsp_answer(ca))])
    with ledger.connect() as conn, conn.begin() as transaction:
        config = alembic_on(conn)
        command.downgrade(config, "0004")
        conn.execute(sa.update(answers_table).values(url="http://edited.test/ocsp"))  # no trigger left
        conn.execute(sa.delete(answers_table))
        command.upgrade(config, "head")  # CREATE FUNCTION again: the downgrade dropped it too
        assert revocation_answers.keep(conn, [ocsp_answer(ca)], now=NOW) == 1  # INSERT: allowed
        for refused in (sa.update(answers_table).values(url="http://edited.test/"), sa.delete(answers_table)):
            with pytest.raises(DBAPIError, match="revocation_answers is append-only"), conn.begin_nested():
                conn.execute(refused)
        transaction.rollback()
    assert migrate.is_up_to_date(ledger)
    assert len(kept_rows(ledger)) == 1
    with pytest.raises(DBAPIError, match="append-only"), ledger.begin() as conn:
        conn.execute(sa.delete(answers_table))
