"""What the simulator received: every accepted file (SQLite) and counters, queryable by tests over HTTP.

Duplicate detection is one atomic insert: a unique key on (loaiHoSo, maCSKCB, MA_LK, content hash), so two
concurrent sends of the same visit store one record, and the second gets the first one's ``maGiaoDich``.
One connection behind a lock: the simulator is a test tool; correctness over throughput.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ma_giao_dich TEXT NOT NULL UNIQUE,
    thoi_gian_tiep_nhan TEXT NOT NULL,
    received_at TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    variant TEXT NOT NULL,
    loai_ho_so TEXT NOT NULL,
    username TEXT NOT NULL,
    ma_cskcb TEXT NOT NULL,
    ma_tinh TEXT NOT NULL,
    ma_lk TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    file_sha256 TEXT NOT NULL,
    file_size INTEGER NOT NULL,
    tables TEXT NOT NULL,
    signature_verified INTEGER,
    file BLOB,
    UNIQUE (loai_ho_so, ma_cskcb, ma_lk, content_hash)
);
CREATE INDEX IF NOT EXISTS accepted_ma_lk ON accepted (ma_lk);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COLUMNS = (
    "ma_giao_dich",
    "thoi_gian_tiep_nhan",
    "received_at",
    "endpoint",
    "variant",
    "loai_ho_so",
    "username",
    "ma_cskcb",
    "ma_tinh",
    "ma_lk",
    "content_hash",
    "file_sha256",
    "file_size",
    "tables",
    "signature_verified",
)


@dataclass(frozen=True, slots=True)
class AcceptedRecord:
    ma_giao_dich: str
    thoi_gian_tiep_nhan: str  # yyyyMMddHHmmss, Vietnam time
    received_at: str  # ISO 8601 UTC
    endpoint: str
    variant: str
    loai_ho_so: str
    username: str
    ma_cskcb: str
    ma_tinh: str
    ma_lk: str
    content_hash: str
    file_sha256: str
    file_size: int
    tables: str  # comma-separated LOAIHOSO values in the file ("XML0" for a check-in)
    signature_verified: bool | None  # None: no trust store configured

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SimulatorStore:
    def __init__(self, state_dir: Path | None = None, *, keep_files: bool = True) -> None:
        """``state_dir``: where ``simulator.sqlite3`` lives (kept across restarts); ``None``: in memory."""
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
        target = str(state_dir / "simulator.sqlite3") if state_dir is not None else ":memory:"
        self._keep_files = keep_files
        self._lock = threading.Lock()
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.executescript(_SCHEMA)

    def accept(self, record: AcceptedRecord, file: bytes) -> tuple[AcceptedRecord, bool]:
        """Store ``record`` unless the same file was accepted before; returns (the stored record, duplicate)."""
        values = [getattr(record, column) for column in _COLUMNS]
        placeholders = ", ".join("?" for _ in range(len(_COLUMNS) + 1))
        with self._lock:
            cursor = self._db.execute(
                f"INSERT INTO accepted ({', '.join(_COLUMNS)}, file) VALUES ({placeholders}) "  # noqa: S608 - fixed column names
                "ON CONFLICT (loai_ho_so, ma_cskcb, ma_lk, content_hash) DO NOTHING",
                [*values, file if self._keep_files else None],
            )
            if cursor.rowcount == 1:
                return record, False
            row = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM accepted "  # noqa: S608 - fixed column names
                "WHERE loai_ho_so = ? AND ma_cskcb = ? AND ma_lk = ? AND content_hash = ?",
                (record.loai_ho_so, record.ma_cskcb, record.ma_lk, record.content_hash),
            ).fetchone()
        return _record(row), True

    def accepted(self, *, ma_lk: str | None = None, loai_ho_so: str | None = None) -> list[AcceptedRecord]:
        query = f"SELECT {', '.join(_COLUMNS)} FROM accepted WHERE 1 = 1"  # noqa: S608 - fixed column names
        parameters: list[str] = []
        if ma_lk is not None:
            query += " AND ma_lk = ?"
            parameters.append(ma_lk)
        if loai_ho_so is not None:
            query += " AND loai_ho_so = ?"
            parameters.append(loai_ho_so)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", parameters).fetchall()
        return [_record(row) for row in rows]

    def file(self, ma_giao_dich: str) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT file FROM accepted WHERE ma_giao_dich = ?", (ma_giao_dich,)
            ).fetchone()
        return bytes(row["file"]) if row is not None and row["file"] is not None else None

    def count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    def counters(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT name, value FROM counters ORDER BY name").fetchall()
        return {row["name"]: int(row["value"]) for row in rows}

    def reset(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM accepted")
            self._db.execute("DELETE FROM counters")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: sqlite3.Row) -> AcceptedRecord:
    data = dict(row)
    verified = data["signature_verified"]
    data["signature_verified"] = None if verified is None else bool(verified)
    return AcceptedRecord(**data)
