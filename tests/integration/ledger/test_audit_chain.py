from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from tests.integration.ledger.append_only import append_only_lifted
from worker.ledger import audit
from worker.ledger.audit import AuditEvent
from worker.ledger.schema import audit_log


def _append(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        audit.append(
            conn,
            [
                AuditEvent("attempt", ma_lk=f"79999-{i}", version_id=i, ma_ket_qua="200", detail={"n": i})
                for i in range(count)
            ],
        )


def test_intact_chain_verifies(ledger: Engine) -> None:
    _append(ledger, 5)
    _append(ledger, 3)
    with ledger.connect() as conn:
        report = audit.verify_chain(conn)
    assert report.ok
    assert report.rows_checked == 8


def test_database_refuses_updates_and_deletes(ledger: Engine) -> None:
    _append(ledger, 2)
    with pytest.raises(DBAPIError), ledger.begin() as conn:
        conn.execute(sa.update(audit_log).values(ma_ket_qua="500"))
    with pytest.raises(DBAPIError), ledger.begin() as conn:
        conn.execute(sa.delete(audit_log))


def test_edited_row_is_named(ledger: Engine) -> None:
    _append(ledger, 6)
    with ledger.begin() as conn, append_only_lifted(conn, "audit_log"):
        target = conn.execute(
            sa.select(audit_log.c.id).order_by(audit_log.c.id).offset(3).limit(1)
        ).scalar_one()
        conn.execute(sa.update(audit_log).where(audit_log.c.id == target).values(ma_ket_qua="500"))
    with ledger.connect() as conn:
        report = audit.verify_chain(conn)
    assert not report.ok
    assert report.bad_row_id == target
    assert "altered" in (report.reason or "")


def test_deleted_row_breaks_the_link_of_the_next(ledger: Engine) -> None:
    _append(ledger, 6)
    with ledger.begin() as conn, append_only_lifted(conn, "audit_log"):
        ids = conn.execute(sa.select(audit_log.c.id).order_by(audit_log.c.id)).scalars().all()
        conn.execute(sa.delete(audit_log).where(audit_log.c.id == ids[2]))
    with ledger.connect() as conn:
        report = audit.verify_chain(conn)
    assert not report.ok
    assert report.bad_row_id == ids[3]
    assert "deleted" in (report.reason or "")


def test_rehashed_forgery_is_still_detected(ledger: Engine) -> None:
    """Editing a row and recomputing its own hash breaks the next row's link."""
    _append(ledger, 4)
    with ledger.begin() as conn, append_only_lifted(conn, "audit_log"):
        rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).mappings().all()
        forged = dict(rows[1]) | {"ma_ket_qua": "403"}
        conn.execute(
            sa.update(audit_log)
            .where(audit_log.c.id == forged["id"])
            .values(ma_ket_qua="403", row_hash=audit.row_hash(forged["prev_hash"], forged))
        )
    with ledger.connect() as conn:
        report = audit.verify_chain(conn)
    assert not report.ok
    assert report.bad_row_id == rows[2]["id"]


def test_cli_audit_verify_exit_codes(
    pg_ledger: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli.app import main

    monkeypatch.setenv("VNEID_LEDGER__DATABASE_URL", pg_ledger.url.render_as_string(hide_password=False))
    _append(pg_ledger, 3)
    assert main(["audit", "verify"]) == 0
    assert "intact: 3 rows" in capsys.readouterr().out
    with pg_ledger.begin() as conn, append_only_lifted(conn, "audit_log"):
        first = conn.execute(sa.select(sa.func.min(audit_log.c.id))).scalar_one()
        conn.execute(sa.update(audit_log).where(audit_log.c.id == first).values(event="accepted"))
    assert main(["audit", "verify"]) == 1
    assert f"broken at row {first}" in capsys.readouterr().err
