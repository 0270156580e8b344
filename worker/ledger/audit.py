"""Append-only, hash-chained audit log: one row per attempt and state change.

Each row carries the hash of the previous row and its own hash over its content, so editing or deleting a
row breaks the chain at that point; ``verify_chain`` names the first row that does not fit. Appends are
serialised (a PostgreSQL advisory lock; SQLite's write lock) so concurrent workers keep one chain.
Rows hold ids, hashes and result codes only — never personal data or the gateway's free-text message.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from worker.ledger.db import as_utc, is_postgresql, utcnow
from worker.ledger.schema import audit_log

GENESIS = "0" * 64
_ADVISORY_LOCK_KEY = 0x766E6964  # "vnid": one chain per ledger database
_HASHED_FIELDS = (
    "at",
    "actor",
    "event",
    "ma_lk",
    "version_id",
    "destination",
    "request_hash",
    "http_status",
    "ma_ket_qua",
    "ma_giao_dich",
    "thoi_gian_tiep_nhan",
    "detail",
)


def default_actor() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event: str
    ma_lk: str | None = None
    version_id: int | None = None
    destination: str | None = None
    request_hash: str | None = None
    http_status: int | None = None
    ma_ket_qua: str | None = None
    ma_giao_dich: str | None = None
    thoi_gian_tiep_nhan: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


def _canonical(row: dict[str, object]) -> bytes:
    values = {}
    for name in _HASHED_FIELDS:
        value = row.get(name)
        if isinstance(value, datetime):
            value = as_utc(value).isoformat(timespec="microseconds")  # type: ignore[union-attr]  # not None here
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def row_hash(prev_hash: str, row: dict[str, object]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + _canonical(row)).hexdigest()


def _lock_chain(conn: sa.Connection) -> None:
    if is_postgresql(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    # SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE).


def append(conn: sa.Connection, events: Sequence[AuditEvent], *, actor: str | None = None) -> None:
    """Append events in order, inside the caller's transaction (the lock is held until it commits)."""
    if not events:
        return
    _lock_chain(conn)
    prev = conn.execute(sa.select(audit_log.c.row_hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
    prev = prev or GENESIS
    now = utcnow()
    who = actor or default_actor()
    rows = []
    for event in events:
        row: dict[str, object] = {
            "at": now,
            "actor": who,
            "event": event.event,
            "ma_lk": event.ma_lk,
            "version_id": event.version_id,
            "destination": event.destination,
            "request_hash": event.request_hash,
            "http_status": event.http_status,
            "ma_ket_qua": event.ma_ket_qua,
            "ma_giao_dich": event.ma_giao_dich,
            "thoi_gian_tiep_nhan": event.thoi_gian_tiep_nhan,
            "detail": json.dumps(event.detail, sort_keys=True, ensure_ascii=False) if event.detail else None,
        }
        row["prev_hash"] = prev
        row["row_hash"] = prev = row_hash(prev, row)
        rows.append(row)
    conn.execute(sa.insert(audit_log), rows)


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    rows_checked: int
    bad_row_id: int | None = None
    reason: str | None = None


def verify_chain(conn: sa.Connection, *, batch: int = 5000) -> ChainReport:
    """Walk the chain in id order; report the first row whose content or link does not match."""
    prev = GENESIS
    checked = 0
    last_id = 0
    columns = [audit_log.c.id, audit_log.c.prev_hash, audit_log.c.row_hash] + [
        audit_log.c[name] for name in _HASHED_FIELDS
    ]
    while True:
        chunk = conn.execute(
            sa.select(*columns).where(audit_log.c.id > last_id).order_by(audit_log.c.id).limit(batch)
        ).mappings()
        rows: Iterable[sa.RowMapping] = list(chunk)
        if not rows:
            return ChainReport(ok=True, rows_checked=checked)
        for row in rows:
            if row["prev_hash"] != prev:
                return ChainReport(
                    False, checked, row["id"], "link broken: a row before it was deleted or altered"
                )
            expected = row_hash(prev, dict(row))
            if row["row_hash"] != expected:
                return ChainReport(False, checked, row["id"], "content altered: the row hash does not match")
            prev = row["row_hash"]
            last_id = row["id"]
            checked += 1
