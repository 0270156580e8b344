"""Anchors of the audit chain: the head written down off the server. A consistent rewrite of the whole chain
(triggers lifted, every hash recomputed) still passes ``audit verify``; it must not pass ``--anchors``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.integration.ledger.append_only import append_only_lifted
from worker.ledger import audit
from worker.ledger.audit import AuditEvent
from worker.ledger.schema import audit_log

AT = datetime(2026, 3, 20, 3, 0, 0, tzinfo=UTC)


def _append(engine: Engine, count: int, *, start: int = 0) -> None:
    with engine.begin() as conn:
        audit.append(
            conn,
            [
                AuditEvent("attempt", ma_lk=f"79999-{i}", version_id=i, ma_ket_qua="200", detail={"n": i})
                for i in range(start, start + count)
            ],
        )


def _head(engine: Engine) -> audit.Anchor:
    with engine.connect() as conn:
        anchor = audit.chain_head(conn, facility_code="79999", software=audit.software(), at=AT)
    assert anchor is not None
    return anchor


def _rewrite_consistently(engine: Engine, index: int, **changes: object) -> None:
    """What someone with the owner's rights can do: change the ``index``-th row, then recompute the links and
    hashes of it and every row after it, so that the chain verifies again."""
    with engine.begin() as conn, append_only_lifted(conn, "audit_log"):
        rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).mappings().all()
        prev = audit.GENESIS
        for position, stored in enumerate(rows):
            row = dict(stored) | (changes if position == index else {})
            digest = audit.row_hash(prev, row)
            if position >= index:
                values = (changes if position == index else {}) | {"prev_hash": prev, "row_hash": digest}
                conn.execute(sa.update(audit_log).where(audit_log.c.id == row["id"]).values(**values))
            prev = digest


def test_the_head_is_the_last_event_and_its_line_round_trips(ledger: Engine) -> None:
    with ledger.connect() as conn:
        assert audit.chain_head(conn, facility_code="79999", software="x", at=AT) is None  # empty chain
    _append(ledger, 4)
    _append(ledger, 2, start=4)
    anchor = _head(ledger)
    with ledger.connect() as conn:
        last = conn.execute(sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(1)).mappings().one()
    assert (anchor.event_id, anchor.row_hash, anchor.events) == (last["id"], last["row_hash"], 6)

    line = anchor.line()
    assert "\n" not in line
    data = json.loads(line)
    assert line == json.dumps(data, sort_keys=True, separators=(",", ":")), "sorted keys, no spaces"
    assert list(data) == sorted(audit.ANCHOR_KEYS)
    assert data["at"] == "2026-03-20T03:00:00Z"
    assert data["software"].startswith("vneid-sync ")
    assert "+" not in data["software"]
    assert audit.parse_anchor(line) == anchor
    # Re-serialised by whoever stored it (indented, other key order): still the same anchor.
    assert audit.parse_anchor(json.dumps(dict(reversed(list(data.items()))))) == anchor


def _line(**changes: object) -> str:
    good = {"at": "2026-03-20T03:00:00Z", "event_id": 7, "events": 7, "facility_code": "79999",
            "row_hash": "a" * 64, "software": "vneid-sync 0.1.0"}  # fmt: skip
    return json.dumps(good | changes)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"event_id": 1}', "missing at, events"),
        (_line(event_id="7"), "positive integers"),
        (_line(events=0), "positive integers"),
        (_line(row_hash="A" * 64), "hex"),
        (_line(row_hash="a" * 63), "hex"),
        (_line(at="yesterday"), "ISO 8601"),
    ],
)
def test_a_line_that_is_not_an_anchor_says_why(text: str, reason: str) -> None:
    with pytest.raises(audit.AnchorFormatError, match=reason):
        audit.parse_anchor(text)


def test_anchors_hold_while_the_chain_only_grows(ledger: Engine) -> None:
    _append(ledger, 3)
    first = _head(ledger)
    _append(ledger, 5, start=3)
    second = _head(ledger)
    _append(ledger, 1, start=8)
    with ledger.connect() as conn:
        assert audit.check_anchors(conn, [(1, first), (2, second), (3, first)]) == ()
        assert audit.verify_chain(conn).ok


def test_a_consistent_rewrite_passes_the_chain_check_but_not_the_anchors(ledger: Engine) -> None:
    """The point of anchors: the rewritten chain links perfectly, yet the anchored heads are no longer on it."""
    _append(ledger, 1)
    before = _head(ledger)  # event 1: anchored before the rewritten row, still on the chain
    _append(ledger, 3, start=1)
    middle = _head(ledger)
    _append(ledger, 3, start=4)
    newest = _head(ledger)

    _rewrite_consistently(ledger, 2, ma_ket_qua="403")  # the third event: an accepted claim made refused

    with ledger.connect() as conn:
        assert audit.verify_chain(conn).ok, "the rewrite is consistent: the chain alone cannot tell"
        faults = audit.check_anchors(conn, [(1, before), (2, middle), (3, newest)])
        stored = {
            row.id: row.row_hash for row in conn.execute(sa.select(audit_log.c.id, audit_log.c.row_hash))
        }
    assert [(fault.line, fault.problem) for fault in faults] == [(2, "mismatch"), (3, "mismatch")]
    assert faults[0].found_hash == stored[middle.event_id] != middle.row_hash
    assert faults[1].found_hash == stored[newest.event_id] != newest.row_hash


def test_a_chain_cut_short_misses_its_anchored_head(ledger: Engine) -> None:
    _append(ledger, 2)
    kept = _head(ledger)
    _append(ledger, 2, start=2)
    cut = _head(ledger)
    with ledger.begin() as conn, append_only_lifted(conn, "audit_log"):
        conn.execute(sa.delete(audit_log).where(audit_log.c.id > kept.event_id))  # the newest events gone
    with ledger.connect() as conn:
        assert audit.verify_chain(conn).ok, "a chain cut at its end still links"
        faults = audit.check_anchors(conn, [(1, kept), (2, cut)])
    assert [(fault.line, fault.problem, fault.found_hash) for fault in faults] == [(2, "missing", None)]


def test_every_anchor_is_checked_in_one_query(ledger: Engine) -> None:
    _append(ledger, 2)
    anchors = []
    for n in range(60):  # more anchors than a day's: one statement however many
        _append(ledger, 1, start=2 + n)
        anchors.append((n + 1, _head(ledger)))
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(ledger, "before_cursor_execute", count)
    try:
        with ledger.connect() as conn:
            assert audit.check_anchors(conn, anchors) == ()
    finally:
        sa.event.remove(ledger, "before_cursor_execute", count)
    assert len([s for s in statements if "audit_log" in s]) == 1


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_anchor_then_verify_finds_the_consistent_rewrite(
    pg_ledger: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli.app import main

    monkeypatch.setenv("VNEID_LEDGER__DATABASE_URL", pg_ledger.url.render_as_string(hide_password=False))
    anchors = tmp_path / "anchors.jsonl"
    assert main(["audit", "anchor"]) == 1, "an empty chain has no head to anchor"
    assert "empty" in capsys.readouterr().err

    _append(pg_ledger, 3)
    assert main(["audit", "anchor", "--append", str(anchors)]) == 0
    printed = capsys.readouterr().out.strip()
    _append(pg_ledger, 3, start=3)
    assert main(["audit", "anchor", "--append", str(anchors)]) == 0
    newest = capsys.readouterr().out.strip()
    assert anchors.read_text().splitlines() == [printed, newest]
    assert json.loads(newest)["events"] == 6

    assert main(["audit", "anchor", "--out", str(tmp_path / "one.json")]) == 0
    assert json.loads((tmp_path / "one.json").read_text())["event_id"] == json.loads(newest)["event_id"]
    capsys.readouterr()

    assert main(["audit", "verify", "--anchors", str(anchors)]) == 0
    out = capsys.readouterr().out
    assert "intact: 6 rows" in out
    assert "anchors on the chain: 2 of 2" in out

    _rewrite_consistently(pg_ledger, 1, ma_ket_qua="403")
    assert main(["audit", "verify"]) == 0, "without anchors the rewrite goes unseen"
    capsys.readouterr()
    assert main(["audit", "verify", "--anchors", str(anchors)]) == 1
    err = capsys.readouterr().err
    assert "2 of 2 anchors are not on the chain" in err
    assert f"anchor line 1 (event {json.loads(printed)['event_id']} of 3, " in err
    assert "MISMATCH" in err
    assert "anchor line 2" in err


def test_cli_append_starts_a_new_line_after_a_cut_one_and_verify_names_a_bad_line(
    pg_ledger: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.cli.app import main

    monkeypatch.setenv("VNEID_LEDGER__DATABASE_URL", pg_ledger.url.render_as_string(hide_password=False))
    _append(pg_ledger, 2)
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text('{"event_id": 1, "row_')  # a copy that stopped half-way through its last line
    assert main(["audit", "anchor", "--append", str(anchors)]) == 0
    line = capsys.readouterr().out.strip()
    assert anchors.read_text().splitlines() == ['{"event_id": 1, "row_', line]
    assert main(["audit", "verify", "--anchors", str(anchors)]) == 2
    assert "line 1 is not an anchor: not JSON" in capsys.readouterr().err
    assert main(["audit", "anchor", "--out", "a", "--append", "b"]) == 2
    assert main(["audit", "verify", "--anchors", str(tmp_path / "absent.jsonl")]) == 2
