"""Shared helpers of the bench scripts: scratch databases, timers, the machine description, the wiring.

Nothing here is used by the worker itself. Databases are scratch PostgreSQL databases created and dropped
around a run (``VNEID_TEST_PG_URL`` or postgres@127.0.0.1, like tests/services.py); when PostgreSQL is not
reachable the callers fall back to SQLite files and say so in their JSON (``database`` key).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import lxml.etree
import psutil  # type: ignore[import-untyped]  # no stubs installed; bench/ is outside mypy's scope
import sqlalchemy as sa
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("VNEID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
FACILITY = "79999"
#: Libraries whose versions change the numbers (reported with every run).
LIBRARIES = (
    "cryptography",
    "lxml",
    "xmlsec",
    "signxml",
    "sqlalchemy",
    "psycopg",
    "celery",
    "httpx",
    "structlog",
    "psutil",
)


# ------------------------------------------------------------------------------------------ databases


def postgresql_reachable() -> bool:
    engine = sa.create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@contextmanager
def scratch_database(prefix: str, fallback_dir: Path | None = None) -> Iterator[tuple[str, str]]:
    """(url, kind) of a fresh database dropped on exit: PostgreSQL, else a SQLite file in ``fallback_dir``."""
    name = f"vneid_bench_{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError:
        admin.dispose()
        if fallback_dir is None:
            raise
        yield f"sqlite:///{fallback_dir / f'{prefix}.sqlite3'}", "sqlite (PostgreSQL unreachable)"
        return
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), "postgresql"
    finally:
        drop_database(admin, name)


def drop_database(admin: sa.Engine, name: str, attempts: int = 10) -> None:
    """Drop a scratch database; survives a server restart by someone else (other jobs share the server)."""
    for attempt in range(attempts):
        admin.dispose()  # pooled connections may have been killed by a restart
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            break
        except sa.exc.OperationalError:
            if attempt == attempts - 1:
                progress(f"could not drop scratch database {name}; drop it by hand")
            time.sleep(3)
    admin.dispose()


def server_version(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                return str(conn.exec_driver_sql("SHOW server_version").scalar())
            return f"sqlite {conn.exec_driver_sql('select sqlite_version()').scalar()}"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------- timing


@dataclass
class Span:
    """CPU seconds of this process (all its threads) and wall seconds over a ``with measured()`` block."""

    cpu_s: float = 0.0
    wall_s: float = 0.0


@contextmanager
def measured() -> Iterator[Span]:
    span = Span()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield span
    finally:
        span.cpu_s = time.process_time() - cpu
        span.wall_s = time.perf_counter() - wall


def per_call(action: Callable[[], object], calls: int, rounds: int, warmup: int = 20) -> tuple[float, float]:
    """(CPU ms, wall ms) per call: medians over ``rounds`` rounds of ``calls`` calls, after a warm-up."""
    for _ in range(warmup):
        action()
    cpu, wall = [], []
    for _ in range(rounds):
        with measured() as span:
            for _ in range(calls):
                action()
        cpu.append(span.cpu_s * 1000 / calls)
        wall.append(span.wall_s * 1000 / calls)
    return statistics.median(cpu), statistics.median(wall)


def rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def ms(seconds: float, count: int = 1) -> float:
    return round(seconds * 1000 / max(count, 1), 3)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU of the given processes (and nothing else); missing processes count zero."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def postgres_server_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (informational: other clients may use it too)."""
    pids = []
    for process in psutil.process_iter(["name"]):
        if (process.info.get("name") or "").startswith("postgres"):
            pids.append(process.pid)
    return pids


# -------------------------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["libxml2"] = ".".join(map(str, lxml.etree.LIBXML_VERSION))
    versions["openssl"] = _openssl_version()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _openssl_version() -> str | None:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend  # noqa: PLC0415  # private path, may be gone

        return str(backend.openssl_version_text())
    except Exception:  # informational only
        return None


# -------------------------------------------------------------------------------------------- output


def emit(result: dict[str, Any]) -> None:
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


def progress(message: str) -> None:
    """Progress goes to stderr: stdout carries the JSON only."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
