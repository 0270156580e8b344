"""Discovery over a large demo HIS in bounded memory: throughput, and peak RSS sampled while it runs.

Run: ``.venv/bin/python bench/bench_discovery.py [--encounters 200000] [--page-size 500] [--url URL]``;
prints JSON on stdout. Without ``--url`` it creates a scratch PostgreSQL database (``VNEID_TEST_PG_URL`` or
postgres@127.0.0.1) and drops it afterwards, or falls back to a temporary SQLite file when PostgreSQL is not
reachable. Not part of the test suite.

What it shows: ``discover(None)`` and ``list_completed`` over every encounter page through the HIS with
keyset pages of ``page_size`` rows, so resident memory stays flat — ``rss_mb.checkpoints`` samples RSS every
10 % of the rows and ``rss_mb.growth_during_discovery`` is the peak minus the RSS after the first page.
Loading encounters (``load``) is timed on a small sample for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from adapters.his.demo.source import DemoSource
from schemas.domain.values import VIETNAM_TZ
from worker.config import HisSettings
from worker.logging import configure_logging

PG_ADMIN_URL = os.environ.get("VNEID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


class RssSampler:
    """Samples this process's resident memory every ``interval_s`` in a background thread."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.process = psutil.Process()
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval_s)

    def now(self) -> int:
        rss = self.process.memory_info().rss
        self.peak = max(self.peak, rss)
        return rss

    def __enter__(self) -> RssSampler:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _mb(value: int) -> float:
    return round(value / 1024 / 1024, 1)


@contextmanager
def his_database(url: str | None) -> Iterator[tuple[str, str]]:
    """(url, kind): the given URL, else a scratch PostgreSQL database, else a temporary SQLite file."""
    if url:
        yield url, make_url(url).get_backend_name()
        return
    name = f"vneid_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError:
        admin.dispose()
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'his.sqlite3'}", "sqlite (PostgreSQL unavailable)"
        return
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), "postgresql"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def _walk(iterator: Iterator[Any], total: int, sampler: RssSampler) -> dict[str, Any]:
    began = time.perf_counter()
    step = max(total // 10, 1)
    checkpoints: list[float] = []
    after_first_page = None
    count = 0
    for count, _ in enumerate(iterator, start=1):
        if after_first_page is None:
            after_first_page = sampler.now()
        if count % step == 0:
            checkpoints.append(_mb(sampler.now()))
    seconds = time.perf_counter() - began
    return {
        "rows": count,
        "seconds": round(seconds, 2),
        "rows_per_s": round(count / seconds) if seconds else None,
        "rss_after_first_page": after_first_page or sampler.now(),
        "checkpoints_mb": checkpoints,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encounters", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--url", help="An existing demo HIS to read (not seeded, not dropped).")
    parser.add_argument("--load-sample", type=int, default=500)
    args = parser.parse_args()
    configure_logging("WARNING", "json")

    with his_database(args.url) as (url, kind):
        seed_seconds = None
        if not args.url:
            # Seed in a child process, so the memory measured here is discovery's alone.
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "worker.cli.app", "demo", "seed", "--encounters", str(args.encounters),
                 "--url", url, "--bad-share", "0.05", "--since", "2026-01-01", "--until", "2026-06-30", "--seed", "42"],
                check=True,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            seed_seconds = round(time.perf_counter() - began, 1)
        source = DemoSource.from_settings(
            HisSettings(page_size=args.page_size), url=url, facility_code="79999"
        )
        try:
            with RssSampler() as sampler:
                rss_start = sampler.now()
                discovery = _walk(source.discover(None), args.encounters, sampler)
                sweep = _walk(
                    # From December: a "discharge before admission" defect can end a visit before 2026.
                    source.list_completed(
                        datetime(2025, 12, 1, tzinfo=VIETNAM_TZ), datetime(2026, 8, 1, tzinfo=VIETNAM_TZ)
                    ),
                    args.encounters,
                    sampler,
                )
                keys = [
                    ref.his_key
                    for _, ref in zip(range(args.load_sample), source.discover(None), strict=False)
                ]
                began = time.perf_counter()
                for key in keys:
                    source.load(key)
                load_seconds = time.perf_counter() - began
                rss_end = sampler.now()
                peak = sampler.peak
        finally:
            source.close()

    result = {
        "benchmark": "bench_discovery",
        "when": datetime.now(VIETNAM_TZ).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "database": kind,
        "encounters": args.encounters,
        "page_size": args.page_size,
        "seed_seconds": seed_seconds,
        "discover": {key: value for key, value in discovery.items() if key != "rss_after_first_page"},
        "list_completed": {key: value for key, value in sweep.items() if key != "rss_after_first_page"},
        "load": {
            "encounters": len(keys),
            "seconds": round(load_seconds, 2),
            "per_s": round(len(keys) / load_seconds) if load_seconds else None,
        },
        "rss_mb": {
            "start": _mb(rss_start),
            "after_first_page": _mb(discovery["rss_after_first_page"]),
            "peak": _mb(peak),
            "end": _mb(rss_end),
            "growth_during_discovery": _mb(peak - discovery["rss_after_first_page"]),
        },
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
