"""Make sure only one scheduler (beat), or one discovery, runs at a time: a PostgreSQL session advisory lock, or
a lock file for SQLite."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

_LOCK_KEYS = {"beat": 0x76626561, "discovery": 0x76646973}  # "vbea", "vdis"


class AlreadyRunningError(RuntimeError):
    pass


@contextmanager
def single_instance(engine: Engine, name: str, data_dir: Path) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEYS[name]}).scalar()
            if not got:
                raise AlreadyRunningError(f"another {name} holds the ledger lock; only one may run")
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEYS[name]})
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / f"{name}.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise AlreadyRunningError(f"another {name} holds {handle.name}; only one may run") from exc
        yield
