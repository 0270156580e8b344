"""Scale runs (``make bench-scale``; long, not in CI): discover and submit a large demo HIS with real workers.

Run: ``.venv/bin/python -m bench.scale [--sizes 200000,1000000] [--workers 2] [--coverage-rows 1000000]``;
``--smoke`` (or ``VNEID_BENCH_SCALE_SMOKE=1``) runs 2 000 encounters and 50 000 coverage rows in about a
minute; ``VNEID_BENCH_SCALE_SIZES`` / ``VNEID_BENCH_SCALE_COVERAGE_ROWS`` override the sizes. Prints JSON and
keeps it in ``bench/results/scale-latest.json``, committed: a scale run takes hours and each session starts
on a new machine (``bench.run`` shows the last scale run in docs/benchmarks.md; a smoke run goes to
``var/bench/scale-smoke.json`` and never replaces it). ``--coverage-only`` measures the coverage part again
and keeps the runs of the last result. ``--simulator-checks minimal`` (the default
here) spares the simulator its XSD check of every file, so that it is not the bottleneck of the run.

For each size: a scratch PostgreSQL demo HIS of N encounters (``--seed-base`` of them written by the demo
seeder, the rest SQL copies of those: ``bench.replicate``), a scratch PostgreSQL ledger, the gateway
simulator (child process, in-memory), the file signer, and ``--workers`` real Celery worker processes
(``vneid-sync worker -c 1 --pool prefork``: a main process and one pool child each) on Redis
(``VNEID_BENCH_REDIS_URL``, default db 15 of 127.0.0.1; the embedded SQLite broker when Redis is unreachable).
One ``vneid.discover`` task starts everything: discovery registers every encounter, then enqueues the batches
the workers deliver. The driver samples, every few seconds, the ledger's versions by state and the resident
memory (psutil) of every worker process, until no version is active.

Reported: throughput over time (encounters accepted per second per tenth of the run), CPU seconds of the
worker processes per encounter (Celery and Redis overhead included, unlike bench_pipeline), and per worker
process the RSS after 10 % of the encounters, its peak after that and at the end — "flat" means the peak is
within 20 % of the 10 % mark, and every peak must stay under 300 MB. Then coverage over ``--coverage-rows``.
Workers log at WARNING (a million INFO lines would only measure the disk). When the PostgreSQL server runs
without autovacuum (the CI configuration does), the driver runs VACUUM (ANALYZE) on the ledger's tables every
five minutes in its place: without it the versions table's dead index entries made ``record_built``'s
"supersede older versions" query go from 0.05 ms to 24 ms after 140 000 deliveries (stale statistics, a
BitmapAnd over the state index). A run during which PostgreSQL or Redis restarted is flagged ``disturbed``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs installed; bench/ is outside mypy's scope
import redis
import sqlalchemy as sa

from bench.bench_coverage import run as coverage_run
from bench.common import cpu_seconds, emit, machine_description, postgres_server_pids, progress
from bench.stack import BenchStack
from worker.celery_app import create_celery, queued_messages
from worker.demo import worker_command_line
from worker.ledger.schema import versions
from worker.ledger.states import ACTIVE
from worker.pipeline import discovery
from worker.pipeline.context import Pipeline

REDIS_URL = os.environ.get("VNEID_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
RESULT_FILE = Path("bench/results/scale-latest.json")
SMOKE_FILE = Path("var/bench/scale-smoke.json")
# Rewritten every few minutes during a run: a run stopped before its end (a session's time, a reboot) still leaves
# its timeline and RSS samples behind.
PARTIAL_FILE = Path("bench/results/scale-partial.json")
PARTIAL_EVERY_S = 300.0
RSS_LIMIT_MB = 300
DISPATCH_EVERY_S = 30.0  # as the beat's dispatch-due schedule
VACUUM_EVERY_S = 300.0  # when the server runs without autovacuum (CI config), the driver stands in for it
FLAT_WITHIN = 0.20


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def write_config(path: Path, sections: dict[str, Any]) -> Path:
    """Settings as TOML: top-level values first, then ``[section]`` / ``[section.name]`` tables."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in sections.items():
        if isinstance(value, dict):
            if all(isinstance(item, dict) for item in value.values()) and value:
                tables.extend((f"{key}.{name}", item) for name, item in value.items())
            else:
                tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, values in tables:
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(item)}" for key, item in values.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def broker_url() -> tuple[str, str]:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
        return REDIS_URL, "redis"
    except redis.RedisError:
        return "", "embedded SQLite broker (Redis unreachable)"


class Workers:
    """Celery worker processes started by this run (and only those are stopped)."""

    def __init__(self, config: Path, directory: Path, count: int) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        for index in range(count):
            log = (directory / f"worker{index}.log").open("ab")
            command = worker_command_line(
                config, f"bench{index}-{os.getpid()}@%h", ("submission", "discovery")
            )
            environment = dict(os.environ, VNEID_CONFIG=str(config))
            self.processes.append(
                subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
            )
            log.close()

    def trees(self) -> dict[str, list[psutil.Process]]:
        """``worker<i>`` → its main process and pool children."""
        found: dict[str, list[psutil.Process]] = {}
        for index, process in enumerate(self.processes):
            with suppress(psutil.Error):
                main = psutil.Process(process.pid)
                found[f"worker{index}"] = [main, *main.children(recursive=True)]
        return found

    def rss_mb(self) -> dict[str, float]:
        sample: dict[str, float] = {}
        for name, tree in self.trees().items():
            for position, process in enumerate(tree):
                with suppress(psutil.Error):
                    role = "main" if position == 0 else f"child{position}"
                    sample[f"{name}.{role}"] = round(process.memory_info().rss / 1024 / 1024, 1)
        return sample

    def cpu_s(self) -> float:
        return sum(cpu_seconds([process.pid for process in tree]) for tree in self.trees().values())

    def alive(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for process in self.processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with suppress(psutil.Error):
                    for child in psutil.Process(process.pid).children(recursive=True):
                        child.kill()
                process.kill()
                process.wait()


def keep_logs(directory: Path, size: int) -> None:
    """Worker logs outlive the scratch directory (var/bench/scale-logs/<size>/)."""
    target = Path("var/bench/scale-logs") / str(size)
    target.mkdir(parents=True, exist_ok=True)
    for log in directory.glob("worker*.log"):
        (target / log.name).write_bytes(log.read_bytes())


def ledger_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(versions.c.state, sa.func.count()).group_by(versions.c.state)).all()
    return {str(state): int(count) for state, count in rows}


def service_identity(ledger_url: str, broker: str) -> dict[str, str | None]:
    """When PostgreSQL started and which Redis run this is: a change means another job restarted them."""
    identity: dict[str, str | None] = {"postgresql_started": None, "redis_run_id": None}
    engine = sa.create_engine(ledger_url)
    with suppress(Exception), engine.connect() as conn:
        identity["postgresql_started"] = str(
            conn.exec_driver_sql("SELECT pg_postmaster_start_time()").scalar()
        )
    engine.dispose()
    if broker.startswith("redis"):
        with suppress(Exception):
            client = redis.Redis.from_url(broker, socket_connect_timeout=2)
            identity["redis_run_id"] = str(client.info("server").get("run_id"))
            client.close()
    return identity


def autovacuum_enabled(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW autovacuum").scalar()).lower() == "on"


def vacuum_ledger(engine: sa.Engine) -> None:
    """What autovacuum would do: the ledger's hot tables are updated several times per version (no HOT
    updates: ``state`` is indexed), so without it dead index entries pile up and plans go stale."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) versions, encounters, evidence, audit_log")


def wait_for_workers(app: Any, count: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with suppress(Exception):
            if len(app.control.ping(timeout=1.0) or []) >= count:
                return
        time.sleep(1)
    progress("scale: workers did not all answer a ping; starting anyway")


@dataclass
class Observed:
    """What the driver saw while the workers ran."""

    timeline: list[dict[str, Any]] = field(default_factory=list)
    resent: int = 0
    elapsed: float = 0.0
    final: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    disturbed: bool = False
    vacuums: int = 0


def run_size(
    size: int, workers_count: int, interval_s: float, simulator_checks: str, seed_base: int = 0
) -> dict[str, Any]:
    url, broker_kind = broker_url()
    with BenchStack(
        encounters=size,
        bad_share=0.0,
        log_level="WARNING",
        keep_files=False,
        simulator_checks=simulator_checks,
        seed_base=seed_base,
    ) as stack:
        size = stack.encounters  # copies come in whole multiples of the seeded base
        progress(f"scale: {size} encounters seeded in {stack.seed_seconds:.0f} s ({stack.database_kind})")
        broker = url or f"sqla+sqlite:///{stack.directory / 'broker.sqlite3'}"
        sections = stack.sections(broker={"url": broker}, logging={"level": "WARNING", "format": "json"})
        config = write_config(stack.directory / "config.toml", sections)
        dispatcher = stack.pipeline()  # migrates the ledger; the driver's engine and the beat's dispatch-due
        app = create_celery(stack.make_settings(broker={"url": broker}))
        with suppress(Exception):
            app.control.purge()  # leftovers of an interrupted run on the bench's own broker database
        workers = Workers(config, stack.directory, workers_count)
        try:
            wait_for_workers(app, workers_count)
            observed = observe(
                stack, dispatcher, app, workers, size=size, interval_s=interval_s, broker=broker
            )
        finally:
            workers.stop()
            app.close()
            dispatcher.close()
            keep_logs(stack.directory, size)
        simulator = stack.simulator_stats()
    summary = summarise(size, workers_count, broker_kind, stack, observed=observed, simulator=simulator)
    if observed.disturbed:
        summary["note"] = (
            "PostgreSQL or Redis was restarted by another job during the run: the stalls (lost messages wait "
            "for dispatch-due after stuck_after_s) are that, not the worker"
        )
    return summary


def observe(
    stack: BenchStack,
    dispatcher: Pipeline,
    app: Any,
    workers: Workers,
    *,
    size: int,
    interval_s: float,
    broker: str,
) -> Observed:
    """Start discovery, sample until no version is active (or the deadline), redispatch like the beat."""
    engine = dispatcher.engine
    observed = Observed()
    before = {
        "workers": workers.cpu_s(),
        "simulator": cpu_seconds([stack.simulator_pid]),
        "postgresql": cpu_seconds(postgres_server_pids()),
    }
    identity = service_identity(stack.ledger_url, broker)
    started = time.monotonic()
    app.send_task("vneid.discover")
    deadline = started + max(1200.0, size * 0.1)
    next_dispatch = started + DISPATCH_EVERY_S
    emulate_autovacuum = not autovacuum_enabled(engine)
    next_vacuum = started + VACUUM_EVERY_S
    while time.monotonic() < deadline:
        time.sleep(interval_s)
        if emulate_autovacuum and time.monotonic() >= next_vacuum:
            next_vacuum += VACUUM_EVERY_S
            with suppress(Exception):
                vacuum_ledger(engine)
                observed.vacuums += 1
        if time.monotonic() >= next_dispatch:
            # The beat's dispatch-due: what recovers versions whose message was lost.
            next_dispatch += DISPATCH_EVERY_S
            with suppress(Exception):
                for batch in discovery.due_batches(dispatcher, queued_messages=queued_messages(app)):
                    app.send_task("vneid.process_batch", args=(batch,))
                    observed.resent += len(batch)
        counts = ledger_counts(engine)
        registered = sum(counts.values())
        active = sum(counts.get(state.value, 0) for state in ACTIVE)
        observed.timeline.append(
            {
                "t_s": round(time.monotonic() - started, 1),
                "registered": registered,
                "accepted": counts.get("accepted", 0),
                "active": active,
                "rss_mb": workers.rss_mb(),
            }
        )
        if not workers.alive():
            progress("scale: a worker exited; its log is kept in var/bench/scale-logs")
            break
        if registered >= size and active == 0:
            break
        if len(observed.timeline) % max(int(PARTIAL_EVERY_S / interval_s), 1) == 0:
            save_partial(size, observed)
        if len(observed.timeline) % max(int(60 / interval_s), 1) == 0:
            progress(
                f"scale: t={observed.timeline[-1]['t_s']:.0f}s registered={registered} "
                f"accepted={counts.get('accepted', 0)} active={active}"
            )
    observed.elapsed = time.monotonic() - started
    after = {
        "workers": workers.cpu_s(),
        "simulator": cpu_seconds([stack.simulator_pid]),
        "postgresql": cpu_seconds(postgres_server_pids()),
    }
    observed.cpu = {name: after[name] - before[name] for name in before}
    observed.final = ledger_counts(engine)
    observed.disturbed = identity != service_identity(stack.ledger_url, broker)
    return observed


def save_partial(size: int, observed: Observed) -> None:
    """The samples so far, with the memory verdict they support, for a run that may not reach its end."""
    PARTIAL_FILE.parent.mkdir(parents=True, exist_ok=True)
    partial = {
        "encounters": size,
        "saved": datetime.now().astimezone().isoformat(timespec="seconds"),
        "redispatched_versions": observed.resent,
        "memory": memory_report(size, observed.timeline),
        "timeline": observed.timeline,
    }
    PARTIAL_FILE.write_text(json.dumps(partial, ensure_ascii=False, default=str), encoding="utf-8")


def summarise(
    size: int,
    workers_count: int,
    broker_kind: str,
    stack: BenchStack,
    *,
    observed: Observed,
    simulator: dict[str, Any],
) -> dict[str, Any]:
    timeline, elapsed, final, cpu = observed.timeline, observed.elapsed, observed.final, observed.cpu
    accepted = final.get("accepted", 0)
    discovered_at = next((row["t_s"] for row in timeline if row["registered"] >= size), None)
    first_accept = next((row["t_s"] for row in timeline if row["accepted"] > 0), None)
    tenths = throughput_per_tenth(size, timeline)
    rates = [rate for rate in tenths if rate]
    memory = memory_report(size, timeline)
    return {
        "encounters": size,
        "workers": workers_count,
        "worker_processes": "vneid-sync worker -c 1 --pool prefork (main + one pool child each)",
        "broker": broker_kind,
        "database": stack.database_kind,
        "seed_seconds": stack.seed_seconds,
        "seed_base": stack.seed_base if 0 < stack.seed_base < size else None,
        "elapsed_s": round(elapsed, 1),
        "final_states": final,
        "all_accepted": accepted == size,
        "discovery_done_at_s": discovered_at,
        "first_accepted_at_s": first_accept,
        "throughput_accepted_per_s_overall": round(accepted / (elapsed - (first_accept or 0.0)), 1)
        if elapsed > (first_accept or 0.0)
        else None,
        "throughput_per_tenth": tenths,
        "throughput_min_over_max": round(min(rates) / max(rates), 3) if rates else None,
        "cpu_ms_per_encounter": {name: round(value * 1000 / max(size, 1), 3) for name, value in cpu.items()},
        "simulator_stats": {
            key: simulator.get(key) for key in ("accepted", "duplicates", "rejected", "requests")
        },
        "memory": memory,
        "redispatched_versions": observed.resent,
        "vacuums_by_driver": observed.vacuums,
        "disturbed_by_service_restart": observed.disturbed,
        "timeline": timeline[:: max(len(timeline) // 60, 1)],
    }


def throughput_per_tenth(size: int, timeline: list[dict[str, Any]]) -> list[float | None]:
    """Accepted/s over each completed tenth of the encounters: from the first acceptance to 10 %, then from
    k*10 % to (k+1)*10 % accepted."""
    first_accept = next((row["t_s"] for row in timeline if row["accepted"] > 0), None)
    tenths: list[float | None] = []
    previous_t = first_accept or 0.0
    previous_n = 0
    for k in range(1, 11):
        mark = size * k / 10
        row = next((r for r in timeline if r["accepted"] >= mark), None)
        if row is None:
            break
        span = row["t_s"] - previous_t
        tenths.append(round((row["accepted"] - previous_n) / span, 1) if span > 0 else None)
        previous_t, previous_n = row["t_s"], row["accepted"]
    return tenths


def memory_report(size: int, timeline: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted({name for row in timeline for name in row["rss_mb"]})
    mark = next((i for i, row in enumerate(timeline) if row["accepted"] >= size / 10), None)
    processes: dict[str, Any] = {}
    for name in names:
        values = [row["rss_mb"][name] for row in timeline if name in row["rss_mb"]]
        after_mark = [row["rss_mb"][name] for row in timeline[mark or 0 :] if name in row["rss_mb"]]
        baseline = after_mark[0] if after_mark else None
        peak_after = max(after_mark) if after_mark else None
        processes[name] = {
            "peak_mb": max(values) if values else None,
            "at_10_percent_mb": baseline,
            "peak_after_10_percent_mb": peak_after,
            "end_mb": values[-1] if values else None,
            "flat_within_20_percent": (peak_after <= baseline * (1 + FLAT_WITHIN))
            if baseline and peak_after
            else None,
        }
    peaks = [value["peak_mb"] for value in processes.values() if value["peak_mb"] is not None]
    return {
        "processes": processes,
        "peak_mb": max(peaks) if peaks else None,
        "under_300_mb": bool(peaks) and max(peaks) < RSS_LIMIT_MB,
        "all_flat": all(value["flat_within_20_percent"] is not False for value in processes.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    smoke_default = os.environ.get("VNEID_BENCH_SCALE_SMOKE", "") not in ("", "0")
    parser.add_argument("--smoke", action="store_true", default=smoke_default, help="2 000 encounters, quick")
    parser.add_argument("--sizes", default=os.environ.get("VNEID_BENCH_SCALE_SIZES"))
    parser.add_argument(
        "--coverage-rows",
        type=int,
        default=int(os.environ.get("VNEID_BENCH_SCALE_COVERAGE_ROWS", "0")) or None,
    )
    parser.add_argument(
        "--coverage-only",
        action="store_true",
        help="only the coverage part, kept with the last scale run's results (seeding 1M visits takes long)",
    )
    parser.add_argument(
        "--runs-only",
        action="store_true",
        help="only the scale runs, kept with the last result's coverage part (which takes minutes at 1M)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--seed-base",
        type=int,
        default=10_000,
        help="encounters written by the demo seeder; the rest are SQL copies of them (bench.replicate); "
        "0 = the seeder writes every encounter (about 30 min for 1M)",
    )
    parser.add_argument("--interval", type=float, default=None, help="seconds between samples")
    parser.add_argument(
        "--simulator-checks",
        choices=("minimal", "auto"),
        default="minimal",
        help="the simulator's file checks: minimal (structure, no XSD; the default here, so the simulator is "
        "not the bottleneck) or auto (XSD, as in the e2e tests)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("2000" if args.smoke else "200000,1000000")).split(",") if s]
    coverage_rows = args.coverage_rows or (50_000 if args.smoke else 1_000_000)
    result: dict[str, Any] = {
        "benchmark": "scale",
        "smoke": args.smoke,
        "simulator_checks": args.simulator_checks,
        "machine": machine_description(),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs": [],
    }
    target = SMOKE_FILE if args.smoke else RESULT_FILE
    previous = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
    if args.coverage_only:  # keep the last runs: only the coverage part is measured again
        sizes = []
        result = {**previous, "machine": result["machine"]}
    for size in sizes:
        interval = args.interval or (1.0 if size <= 20_000 else 5.0)
        progress(f"scale: {size} encounters with {args.workers} worker processes")
        result["runs"].append(run_size(size, args.workers, interval, args.simulator_checks, args.seed_base))
    if args.runs_only:  # keep the last coverage part
        result.update({key: previous[key] for key in ("coverage", "coverage_finished") if key in previous})
        result["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
    else:
        progress(f"scale: coverage over {coverage_rows} ledger rows")
        result["coverage"] = coverage_run(coverage_rows, 3, his=True)
        result["coverage"].pop("machine", None)
        result["coverage_finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
        if not args.coverage_only or "finished" not in result:
            result["finished"] = result["coverage_finished"]
    # A smoke run checks the harness: it must not replace the last real scale run that bench.run reports.
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    emit(result)


if __name__ == "__main__":
    main()
