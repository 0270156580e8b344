"""Reading encounters from the demo HIS: ``load`` one key at a time against ``load_many`` in batches.

Run: ``.venv/bin/python -m bench.bench_his [--encounters 1000] [--batch 50] [--repeats 3]``; prints JSON on
stdout. From another script: ``bench.bench_his.run(encounters=1000, batch_size=50, repeats=3)`` returns the
same dictionary.

A scratch PostgreSQL database (``VNEID_TEST_PG_URL`` or postgres@127.0.0.1; a SQLite file when PostgreSQL is
unreachable, said in ``database``) is seeded with ``--encounters`` demo encounters (5 % with defects, as
``vneid-sync demo seed`` does) and read through the ``demo`` adapter (sql_mapping + the bundled mapping):

- ``per_key``: ``load(key)`` for every completed encounter, one transaction each (the pre-batch pipeline);
- ``batched``: ``load_many(keys)`` over batches of ``--batch`` keys, one transaction per batch (what the
  pipeline does now).

Counted per encounter (medians over repeats, after one warm-up pass of each; the two ways alternate within
each repeat, so a busy machine weighs on both alike): this process's CPU
(``time.process_time``: SQLAlchemy, psycopg, row conversion, building the ``Encounter``), wall time, and the
SQL statements sent (a ``before_cursor_execute`` listener; pool pre-ping is not counted). The PostgreSQL server
processes' CPU is sampled with psutil and reported apart, for information (it includes any other client of
that server). ``identical`` says whether both ways gave the same result for every key.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from adapters.his.demo.seed import seed_demo_his
from adapters.his.demo.source import DemoSource
from bench.common import (
    FACILITY,
    cpu_seconds,
    emit,
    machine_description,
    measured,
    postgres_server_pids,
    progress,
    scratch_database,
    server_version,
)
from schemas.ports import SourceDataError
from worker.config import HisSettings

Outcome = Any  # Encounter | SourceDataError | None, compared by value (errors by type and message)


@contextmanager
def statement_counter(engine: sa.Engine) -> Iterator[list[int]]:
    """A one-element list holding the number of statements the engine sent while the block ran."""
    count = [0]

    def count_statement(*_: object) -> None:
        count[0] += 1

    sa.event.listen(engine, "before_cursor_execute", count_statement)
    try:
        yield count
    finally:
        sa.event.remove(engine, "before_cursor_execute", count_statement)


def _comparable(outcome: object) -> object:
    if isinstance(outcome, SourceDataError):
        return (type(outcome).__name__, str(outcome))
    return outcome


def read_per_key(source: DemoSource, keys: Sequence[str], _batch_size: int) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    for key in keys:
        try:
            results[key] = source.load(key)
        except SourceDataError as exc:
            results[key] = exc
    return results


def read_batched(source: DemoSource, keys: Sequence[str], batch_size: int) -> dict[str, Outcome]:
    results: dict[str, Outcome] = {}
    for first in range(0, len(keys), batch_size):
        results.update(source.load_many(keys[first : first + batch_size]))
    return results


@dataclass
class Samples:
    cpu_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    server_cpu_s: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)

    def per_encounter(self, count: int, *, with_server: bool) -> dict[str, Any]:
        def ms(values: list[float]) -> float:
            return round(statistics.median(values) * 1000 / count, 3)

        return {
            "cpu_ms_per_encounter": ms(self.cpu_s),
            "wall_ms_per_encounter": ms(self.wall_s),
            "queries_per_encounter": round(statistics.median(self.statements) / count, 2),
            "server_cpu_ms_per_encounter": ms(self.server_cpu_s) if with_server else None,
        }


def _read_once(source: DemoSource, server: list[int], samples: Samples, read: Callable[[], object]) -> None:
    server_before = cpu_seconds(server)
    with statement_counter(source.engine) as count, measured() as span:
        read()
    samples.server_cpu_s.append(cpu_seconds(server) - server_before)
    samples.cpu_s.append(span.cpu_s)
    samples.wall_s.append(span.wall_s)
    samples.statements.append(count[0])


def run(encounters: int = 1000, batch_size: int = 50, repeats: int = 3) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="vneid-bench-his-") as directory,
        scratch_database("his", Path(directory)) as (url, kind),
    ):
        progress(f"seeding {encounters} demo encounters ({kind})")
        seeded = seed_demo_his(url, encounters=encounters, random_seed=2026, facility_code=FACILITY)
        source = DemoSource.from_settings(HisSettings(), url=url, facility_code=FACILITY)
        try:
            keys = [ref.his_key for ref in source.discover(None)]
            progress(f"reading {len(keys)} encounters per key and in batches of {batch_size}, {repeats}x")
            # Warm-up of both (pool, statement caches, the server's pages), then the two ways alternate so
            # that both see the same machine (other jobs share these 2 cores).
            by_key = read_per_key(source, keys, batch_size)
            by_batch = read_batched(source, keys, batch_size)
            server = postgres_server_pids() if source.engine.dialect.name == "postgresql" else []
            one_by_one, batched = Samples(), Samples()
            for _ in range(repeats):
                _read_once(source, server, one_by_one, lambda: read_per_key(source, keys, batch_size))
                _read_once(source, server, batched, lambda: read_batched(source, keys, batch_size))
            identical = all(_comparable(by_key[key]) == _comparable(by_batch[key]) for key in keys)
        finally:
            source.close()
        version = server_version(url)
    unreadable = sum(isinstance(outcome, SourceDataError) for outcome in by_key.values())
    per_key = one_by_one.per_encounter(len(keys), with_server=bool(server))
    in_batches = batched.per_encounter(len(keys), with_server=bool(server))
    return {
        "benchmark": "his_load",
        "machine": machine_description(),
        "database": kind,
        "server_version": version,
        "adapter": "demo (sql_mapping, bundled mapping.toml)",
        "encounters": len(keys),
        "seeded": seeded.total,
        "unreadable": unreadable,
        "batch_size": batch_size,
        "repeats": repeats,
        "per_key": per_key,
        "batched": in_batches,
        "cpu_ratio_per_key_over_batched": round(
            per_key["cpu_ms_per_encounter"] / in_batches["cpu_ms_per_encounter"], 2
        ),
        "identical": identical,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encounters", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    emit(run(args.encounters, args.batch, args.repeats))


if __name__ == "__main__":
    main()
