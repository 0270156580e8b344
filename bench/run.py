"""``make bench``: run every benchmark script on this machine, one after the other, and write docs/benchmarks.md.

Run: ``.venv/bin/python -m bench.run [--quick] [--output docs/benchmarks.md] [--only NAME ...]``.

Each script runs in its own child process (its own memory, logging and caches) and prints one JSON object;
this module collects them, keeps the raw results in ``var/bench/last-run.json`` and renders the table: step,
records/s, ms/record, ratio to one raw RSA-2048 signature, then the headline ratios against their targets.
A script that fails (e.g. another job restarted PostgreSQL under it) is retried once, then reported as failed.
The full run takes about five minutes on 2 cores; ``--quick`` shrinks every size for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import machine_description, progress
from bench.scale import throughput_per_tenth

ROOT = Path(__file__).resolve().parents[1]
RAW_RESULTS = ROOT / "var" / "bench" / "last-run.json"
SCALE_RESULTS = ROOT / "bench" / "results" / "scale-latest.json"
SCALE_PARTIAL = ROOT / "bench" / "results" / "scale-partial.json"

JOBS: dict[str, tuple[list[str], list[str]]] = {
    # name: (full arguments, --quick arguments)
    "steps": (["--calls", "500", "--rounds", "5"], ["--calls", "50", "--rounds", "3"]),
    "payload": (["--rounds", "300"], ["--rounds", "30"]),
    "sign": (["--records", "200", "--rounds", "5"], ["--records", "20", "--rounds", "3"]),
    "ledger": (
        ["--records", "500", "--repeats", "3"],
        ["--records", "100", "--register", "200", "--repeats", "1"],
    ),
    "pipeline": (["--encounters", "1000", "--repeats", "3"], ["--encounters", "100", "--repeats", "1"]),
    "coverage": (
        ["--rows", "200000", "--repeats", "3", "--his"],
        ["--rows", "20000", "--repeats", "1", "--his"],
    ),
}
MODULES = {
    "steps": "bench.bench_steps",
    "payload": "bench.bench_payload",
    "sign": "bench.bench_sign",
    "ledger": "bench.bench_ledger",
    "pipeline": "bench.bench_pipeline",
    "coverage": "bench.bench_coverage",
}
TARGET_CPU_RATIO = 5.0
TARGET_THROUGHPUT = 1.5
TARGET_COVERAGE_S = 2.0


def run_job(name: str, arguments: list[str], attempts: int = 2) -> dict[str, Any]:
    command = [sys.executable, "-m", MODULES[name], *arguments]
    for attempt in range(1, attempts + 1):
        progress(f"run: {name} ({' '.join(arguments)})" + (f", attempt {attempt}" if attempt > 1 else ""))
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
        seconds = round(time.perf_counter() - started, 1)
        if done.returncode == 0:
            try:
                result: dict[str, Any] = json.loads(done.stdout)
            except json.JSONDecodeError:
                result = {}
            if result:
                result["_seconds"] = seconds
                return result
        progress(f"run: {name} failed (exit {done.returncode}) after {seconds} s")
    return {"_failed": f"exit {done.returncode}", "_seconds": seconds}


# ----------------------------------------------------------------------------------------------- format


def num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "?"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**PASS**" if ok else "**FAIL**")


def get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


class Table:
    def __init__(self, floor_ms: float | None) -> None:
        self.floor = floor_ms
        self.rows: list[str] = [
            "| Step | records/s | ms/record | × raw RSA | clock | source and notes |",
            "|---|---:|---:|---:|---|---|",
        ]

    def add(self, step: str, ms: float | None, clock: str, notes: str = "") -> None:
        if ms is None:
            self.rows.append(f"| {step} | – | – | – | {clock} | {notes} (not measured) |")
            return
        ratio = ms / self.floor if self.floor else None
        self.rows.append(
            f"| {step} | {num(1000 / ms if ms else None)} | {num(ms)} | {num(ratio, 2)} | {clock} | {notes} |"
        )

    def section(self, title: str) -> None:
        self.rows.append(f"| ***{title}*** | | | | | |")


def machine_section(machine: dict[str, Any], results: dict[str, Any]) -> list[str]:
    libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items() if version)
    database = get(results, "pipeline", "database_version") or "–"
    return [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine['cpu_model']} |",
        f"| Cores | {machine['cores']} |",
        f"| Memory | {machine['memory_gb']} GB |",
        f"| Load average (1 min) when the run started | {machine['load_average_1m']} |",
        f"| OS | {machine['platform']} |",
        f"| Python | {machine['python']} |",
        f"| PostgreSQL | {database} (local, loopback) |",
        f"| Libraries | {libraries} |",
        f"| Date | {machine['date']} |",
        "",
    ]


def results_table(results: dict[str, Any]) -> tuple[list[str], float | None]:
    steps, payload, sign = results.get("steps", {}), results.get("payload", {}), results.get("sign", {})
    ledger, pipeline = results.get("ledger", {}), results.get("pipeline", {})
    floor = get(steps, "raw_rsa2048_sign", "cpu_ms") or get(pipeline, "raw_rsa2048_sign", "cpu_ms")
    table = Table(floor)
    table.section("Floor")
    table.add(
        "Raw RSA-2048 signature (cryptography, PKCS#1 v1.5, SHA-256, key loaded once)",
        floor,
        "CPU",
        "bench_steps; every ratio in this table is against this value",
    )
    table.section("Payload (bench_payload: in-patient record, ~25 KB of inner documents)")
    record = get(payload, "record") or {}
    note = f"{record.get('drug_lines', '?')} drug lines, envelope {record.get('envelope_bytes', '?')} B"
    table.add(
        "Build only (select, render, trees, serialise, envelope)",
        get(payload, "build_only", "median_ms"),
        "wall",
        note,
    )
    table.add(
        "Build + validate (`build_claim`: rules + XSD)",
        get(payload, "build_and_validate", "median_ms"),
        "wall",
        "what the pipeline runs per encounter",
    )
    table.add(
        "Envelope alone (base64 of 7 inner documents + GIAMDINHHS)",
        get(steps, "envelope", "cpu_ms"),
        "CPU",
        "bench_steps",
    )
    table.add(
        "Receiving side: `validate_envelope_bytes`",
        get(payload, "validate_envelope_bytes", "median_ms"),
        "wall",
        "the simulator's check, for scale",
    )
    table.section(f"Signing (bench_sign: ~{get(sign, 'envelope_bytes') or '?'} B envelope)")
    sources = get(sign, "sources") or {}
    for name, label in (
        ("file", "file key (PKCS#12, in memory)"),
        ("pkcs11", "PKCS#11 (SoftHSM2)"),
        ("remote", "remote signing service (reference server, loopback)"),
    ):
        source = sources.get(name)
        if isinstance(source, dict):
            table.add(
                f"Sign, {label}",
                source.get("ms_per_record"),
                "wall",
                f"key operation alone {num(source.get('key_operation_ms'))} ms",
            )
        else:
            table.add(f"Sign, {label}", None, "wall", str(source or "not run"))
    table.add(
        "signxml XMLSigner, same envelope (yardstick)",
        get(sign, "signxml_for_comparison", "ms_per_record"),
        "wall",
        "not our profile: signature under the root, re-serialised",
    )
    stages = get(pipeline, "stages", "cpu_ms_per_encounter") or {}
    size = get(pipeline, "stages", "median_signed_bytes")
    table.add(
        "Sign, file key, demo records",
        stages.get("sign_file_key"),
        "CPU",
        f"bench_pipeline stage, median signed file {size} B",
    )
    table.add(
        "Sign, python-xmlsec comparator, demo records",
        stages.get("sign_xmlsec_comparator"),
        "CPU",
        "template + SignatureContext per record, key loaded once",
    )
    table.section("Gateway client and evidence")
    table.add(
        "Form encoding of the signed file (`protocol.encode_form`)",
        get(steps, "gateway_form_encoding", "cpu_ms"),
        "CPU",
        "bench_steps, ~23.5 KB envelope",
    )
    table.add(
        "Same bytes by replacing `+ / =` directly (lower bound)",
        get(steps, "gateway_form_encoding_direct", "cpu_ms"),
        "CPU",
        f"identical bytes: {get(steps, 'gateway_form_encoding_direct', 'identical_bytes')}",
    )
    table.add(
        "Submit over HTTP to the simulator, incl. encoding (`BhxhGateway.submit`)",
        stages.get("submit_http_incl_encoding"),
        "CPU",
        "bench_pipeline stage, demo records",
    )
    table.add(
        "Evidence compression (zlib 6)", get(steps, "evidence_compression", "cpu_ms"), "CPU", "bench_steps"
    )
    table.add(
        "HIS read, one encounter at a time (`source.load`, demo adapter, PostgreSQL)",
        stages.get("his_load"),
        "CPU",
        "bench_pipeline stage: 12 queries per encounter (the straightforward pipeline's read)",
    )
    table.add(
        "HIS read in batches (`source.load_many`, batch size as the pipeline)",
        stages.get("his_load_many"),
        "CPU",
        "bench_pipeline stage: one transaction and one query per section per batch (ours)",
    )
    table.section("Ledger writes on PostgreSQL (bench_ledger)")
    for key, label in (
        ("register", "Discovery registration (`register_refs`)"),
        ("delivery_writes", "Delivery writes per version (built + signed + attempt)"),
    ):
        for variant, text in (("batched", "batched"), ("per_row_commit", "one commit per row")):
            entry = get(ledger, key, variant) or {}
            table.add(
                f"{label}, {text}",
                entry.get("cpu_ms_per_record"),
                "CPU",
                f"{entry.get('transaction', '')}; wall {num(entry.get('wall_ms_per_record'))} ms",
            )
    for variant, text in (
        ("one_event_per_transaction", "one event per transaction"),
        ("separate_appends_in_batch_transaction", "one append per event, 50 per transaction (today)"),
        ("one_append_per_batch", "one append of 50 events"),
    ):
        entry = get(ledger, "audit_append", variant) or {}
        table.add(
            f"Audit append, {text}",
            entry.get("cpu_ms_per_record"),
            "CPU",
            f"per event; wall {num(entry.get('wall_ms_per_record'))} ms",
        )
    naive = get(ledger, "naive_row_and_audit") or {}
    table.add(
        "Straightforward write: one row + one audit row per commit",
        naive.get("cpu_ms_per_record"),
        "CPU",
        f"wall {num(naive.get('wall_ms_per_record'))} ms",
    )
    table.section(f"End to end, {pipeline.get('encounters', '?')} demo encounters (bench_pipeline)")
    ours, plain = pipeline.get("ours") or {}, pipeline.get("straightforward") or {}
    table.add(
        "**Ours**: discovery + `process_versions` (batches of 50), CPU of the worker process",
        ours.get("cpu_ms_per_encounter"),
        "CPU",
        "per encounter; records/s = per CPU second",
    )
    table.add(
        "Ours, wall clock (one worker process, serial)",
        ours.get("wall_ms_per_encounter"),
        "wall",
        "waits on PostgreSQL and the simulator included",
    )
    table.add(
        "**Straightforward**: per-record Celery task, xmlsec, one commit per record",
        plain.get("cpu_ms_per_encounter"),
        "CPU",
        "per encounter",
    )
    table.add("Straightforward, wall clock", plain.get("wall_ms_per_encounter"), "wall", "")
    scale = load_scale()
    if scale:
        for run in scale.get("runs", []):
            table.add(
                f"Scale run: {run['encounters']:,} encounters, {run['workers']} Celery workers (Redis)",
                get(run, "cpu_ms_per_encounter", "workers"),
                "CPU",
                f"all worker processes, Celery and discovery included ({scale.get('finished', '')[:10]}"
                f"{', smoke' if scale.get('smoke') else ''})",
            )
    return table.rows, floor


def headline(results: dict[str, Any], floor: float | None) -> list[str]:
    pipeline, coverage = results.get("pipeline", {}), results.get("coverage", {})
    ours, plain = pipeline.get("ours") or {}, pipeline.get("straightforward") or {}
    cpu = ours.get("cpu_ms_per_encounter")
    ratio = cpu / floor if cpu and floor else None
    wall_ratio = get(pipeline, "headline", "ours_over_straightforward_wall_throughput")
    cpu_throughput = get(pipeline, "headline", "ours_over_straightforward_cpu_throughput")
    per_day = get(coverage, "ledger_per_day", "wall_s")
    rows = get(coverage, "rows", "encounters")
    estimate = get(coverage, "ledger_side_s_at_1m_linear_estimate")
    aggregate = get(coverage, "aggregate_by_state", "wall_s")
    whole = get(coverage, "whole_compute_demo_his", "compute", "wall_s")
    whole_1m = get(coverage, "whole_compute_demo_his_s_at_1m_linear_estimate")
    lines = [
        "## Headline",
        "",
        "| Target | Measured | Result |",
        "|---|---|---|",
        f"| Worker CPU per encounter ≤ {TARGET_CPU_RATIO:g} × one raw RSA-2048 signature | "
        f"{num(ratio, 1)} × ({num(cpu)} ms vs {num(floor, 4)} ms) | "
        f"{verdict(ratio <= TARGET_CPU_RATIO if ratio else None)} |",
        f"| Ours ÷ straightforward throughput ≥ {TARGET_THROUGHPUT:g} × (wall clock, one worker) | "
        f"{num(wall_ratio, 2)} × ({num(ours.get('records_per_s_wall'))} vs {num(plain.get('records_per_s_wall'))} "
        f"encounters/s) | {verdict(wall_ratio >= TARGET_THROUGHPUT if wall_ratio else None)} |",
        f"| Ours ÷ straightforward throughput ≥ {TARGET_THROUGHPUT:g} × (per CPU second: the capacity of a "
        f"saturated machine) | {num(cpu_throughput, 2)} × ({num(ours.get('records_per_cpu_s'))} vs "
        f"{num(plain.get('records_per_cpu_s'))} encounters per CPU s) | "
        f"{verdict(cpu_throughput >= TARGET_THROUGHPUT if cpu_throughput else None)} |",
        f"| Coverage over 1M ledger rows < {TARGET_COVERAGE_S:g} s (ledger side of `coverage.compute`) | "
        f"{num(per_day)} s over {count(rows)} rows; ~{num(estimate)} s at 1M (linear) | "
        f"{verdict(estimate < TARGET_COVERAGE_S if estimate else None)} (estimate) |",
        f"| Whole `coverage` by day (demo HIS adapter on PostgreSQL + ledger, one process) | {num(whole)} s over "
        f"{count(rows)} rows; ~{num(whole_1m)} s at 1M (linear) | "
        f"{verdict(whole_1m < TARGET_COVERAGE_S if whole_1m else None)} (estimate) |",
        f"| Coverage counts by state over the whole range (one GROUP BY) | {num(aggregate)} s over "
        f"{count(rows)} rows | {verdict(get(coverage, 'aggregate_target_met'))} (scaled to 1M) |",
        "",
    ]
    scale = load_scale()
    if scale and scale.get("coverage"):
        measured_1m = get(scale, "coverage", "ledger_per_day", "wall_s")
        whole_measured = get(scale, "coverage", "whole_compute_demo_his", "compute", "wall_s")
        scale_rows = get(scale, "coverage", "rows", "encounters")
        when = f"{(scale.get('coverage_finished') or scale.get('finished', ''))[:10]}"
        smoke = ", smoke size" if scale.get("smoke") else ""
        lines[-1:-1] = [
            f"| Coverage, ledger side, last `make bench-scale` ({when}{smoke}) | {num(measured_1m)} s over "
            f"{count(scale_rows)} rows | {verdict(get(scale, 'coverage', 'target_met'))} |",
            f"| Whole `coverage` by day, demo HIS, last `make bench-scale` ({when}{smoke}) | "
            f"{num(whole_measured)} s over {count(scale_rows)} rows | "
            f"{verdict(whole_measured < TARGET_COVERAGE_S if whole_measured else None)} |",
        ]
    return lines


def counted_section(pipeline: dict[str, Any]) -> list[str]:
    others = get(pipeline, "ours", "other_processes_cpu_ms_per_encounter") or {}
    plain_others = get(pipeline, "straightforward", "other_processes_cpu_ms_per_encounter") or {}
    return [
        "## What the end-to-end numbers count",
        "",
        f"- **Counted**: {pipeline.get('counted', '')}. Logging "
        f"at {pipeline.get('log_level', 'INFO')} as JSON to /dev/null, as in production minus the disk.",
        f"- **Not counted**: {pipeline.get('not_counted', '')}. For information, per encounter: simulator "
        f"{num(others.get('simulator'))} ms (straightforward {num(plain_others.get('simulator'))}), PostgreSQL "
        f"server {num(others.get('postgresql_server'))} ms (straightforward "
        f"{num(plain_others.get('postgresql_server'))}; all server processes, other clients included).",
        f"- **Setup**: {pipeline.get('database', '?')} scratch databases for the demo HIS and the ledger, "
        f"{pipeline.get('encounters', '?')} encounters without defects, batches of {pipeline.get('batch_size', '?')},"
        " the gateway simulator in a child process (no faults, in-memory, signatures required but not verified),"
        " the client-side rate limit lifted, `signer.verify_before_send` off (its default). Each repeat starts from an empty ledger and a reset simulator;"
        f" {pipeline.get('repeats', '?')} interleaved repeats of each pipeline after one warm-up each; medians.",
        f"- **Straightforward pipeline**: {get(pipeline, 'straightforward', 'includes') or ''}. Signer: "
        f"{get(pipeline, 'straightforward', 'comparator_signer') or '?'}"
        + (
            f" — python-xmlsec could not be used: {get(pipeline, 'straightforward', 'xmlsec_unavailable_reason')}"
            if get(pipeline, "straightforward", "xmlsec_unavailable_reason")
            else ""
        )
        + ". It keeps no versions, leases, content-hash deduplication, signed evidence or hash-chained audit:"
        " the comparison counts that machinery as our overhead.",
        "",
    ]


def where_time_goes(pipeline: dict[str, Any]) -> list[str]:
    stages = get(pipeline, "stages") or {}
    cpu = stages.get("cpu_ms_per_encounter") or {}
    total = get(pipeline, "ours", "cpu_ms_per_encounter")
    lines = [
        "## Where the time goes (ours, CPU ms per encounter)",
        "",
        "Each stage timed alone over the same encounters; the ledger is what remains of the measured total.",
        "",
        "| Stage | CPU ms | share |",
        "|---|---:|---:|",
    ]
    parts = [
        ("HIS read (`source.load_many` per batch)", cpu.get("his_load_many")),
        ("Build + validate (`build_claim`)", cpu.get("build_and_validate")),
        ("Sign (file key)", cpu.get("sign_file_key")),
        ("Submit over HTTP (incl. form encoding below)", cpu.get("submit_http_incl_encoding")),
        ("  of which form encoding (`protocol.encode_form`)", cpu.get("form_encoding_only")),
        ("Ledger + audit + evidence + discovery + logging (remainder)", stages.get("ours_ledger_and_rest")),
    ]
    for label, value in parts:
        share = f"{value / total:.0%}" if value is not None and total else "–"
        lines.append(f"| {label} | {num(value)} | {share} |")
    lines.append(f"| **Total** | **{num(total)}** | |")
    counts = get(pipeline, "ledger_statements_per_encounter") or {}
    lines += [
        "",
        f"Ledger statements per encounter: {num(counts.get('statements'), 1)}; ledger transactions "
        f"per encounter: {num(counts.get('commits'), 2)}.",
        "",
    ]
    profile = get(pipeline, "profile_process_versions") or {}
    for key, title, column in (
        ("top_cumulative", "our functions by cumulative time", "cumulative_s"),
        ("top_own_time", "all functions by own time", "own_s"),
    ):
        entries = profile.get(key) or []
        if not entries:
            continue
        share = "share_of_process_versions" if column == "cumulative_s" else "own_share"
        lines += [
            f"cProfile of the `process_versions` loop ({profile.get('clock')}; total {profile.get('total_s')} s), "
            f"{title}:",
            "",
            f"| Function | calls | {column.replace('_s', '')} s | share |",
            "|---|---:|---:|---:|",
            *(
                f"| `{row['function']}` | {row['calls']} | {row[column]} | {row[share]:.0%} |"
                for row in entries
            ),
            "",
        ]
    return lines


def coverage_section(coverage: dict[str, Any]) -> list[str]:
    if not coverage or coverage.get("_failed"):
        return ["## Coverage", "", "Not measured in this run.", ""]
    plan = get(coverage, "explain", "ledger_rows_one_day") or {}
    aggregate = get(coverage, "explain", "aggregate_by_state") or {}
    rows = get(coverage, "rows") or {}
    return [
        "## Coverage queries (bench_coverage)",
        "",
        f"Ledger of {rows.get('encounters', 0):,} encounters and {rows.get('versions', 0):,} versions over "
        f"{coverage.get('days')} days, filled by COPY in {coverage.get('fill_seconds')} s "
        f"({coverage.get('fill_rows_per_s', 0):,} encounters/s), then VACUUM ANALYZE.",
        "",
        "| Query | wall s | CPU s (this process) | rows |",
        "|---|---:|---:|---:|",
        f"| Ledger side of `coverage.compute`: `read_ledger_day` per day, every day | "
        f"{get(coverage, 'ledger_per_day', 'wall_s')} | {get(coverage, 'ledger_per_day', 'cpu_s_this_process')} | "
        f"{get(coverage, 'ledger_per_day', 'result_rows')} |",
        f"| Whole `coverage.compute`, HIS list in memory (a source without key listing: `list_completed`) | "
        f"{get(coverage, 'compute_in_memory_his', 'wall_s')} | "
        f"{get(coverage, 'compute_in_memory_his', 'cpu_s_this_process')} | "
        f"{get(coverage, 'compute_in_memory_his', 'result_rows')} |",
        f"| Whole `coverage.compute` by day, demo HIS adapter on PostgreSQL (keys alone, one query a day) | "
        f"{get(coverage, 'whole_compute_demo_his', 'compute', 'wall_s')} | "
        f"{get(coverage, 'whole_compute_demo_his', 'compute', 'cpu_s_this_process')} | "
        f"{get(coverage, 'whole_compute_demo_his', 'compute', 'result_rows')} |",
        f"| Demo HIS `list_completed` alone, every day (one `EncounterRef` per visit; reports by bucket) | "
        f"{get(coverage, 'whole_compute_demo_his', 'list_completed', 'wall_s')} | "
        f"{get(coverage, 'whole_compute_demo_his', 'list_completed', 'cpu_s_this_process')} | "
        f"{get(coverage, 'whole_compute_demo_his', 'list_completed', 'result_rows')} |",
        f"| `GROUP BY state` over the range | {get(coverage, 'aggregate_by_state', 'wall_s')} | "
        f"{get(coverage, 'aggregate_by_state', 'cpu_s_this_process')} | {get(coverage, 'aggregate_by_state', 'result_rows')} |",
        f"| `GROUP BY day, state` over the range | {get(coverage, 'aggregate_by_day_and_state', 'wall_s')} | "
        f"{get(coverage, 'aggregate_by_day_and_state', 'cpu_s_this_process')} | "
        f"{get(coverage, 'aggregate_by_day_and_state', 'result_rows')} |",
        "",
        f"Main query (one day), indexes used: {', '.join(plan.get('indexes_used') or []) or 'none'}; "
        f"sequential scans: {', '.join(plan.get('sequential_scans') or []) or 'none'}.",
        "",
        "```",
        plan.get("statement", ""),
        "",
        *plan.get("plan", []),
        "```",
        "",
        f"`GROUP BY state` over the whole range: indexes used: {', '.join(aggregate.get('indexes_used') or []) or 'none'}"
        f"; sequential scans: {', '.join(aggregate.get('sequential_scans') or []) or 'none'}"
        " (it reads every row of the range, so a sequential scan is the right plan).",
        "",
    ]


def scale_section() -> list[str]:
    scale = load_scale()
    if not scale:
        return [
            "## Scale runs",
            "",
            "No `make bench-scale` result yet (bench/results/scale-latest.json).",
            "",
        ]
    lines = [
        "## Last scale run (`make bench-scale`" + (", smoke size" if scale.get("smoke") else "") + ")",
        "",
        f"From bench/results/scale-latest.json, {scale.get('started')} – {scale.get('finished')}.",
        "",
        "| Encounters | elapsed s | accepted/s | per tenth (accepted/s) | worker CPU ms/enc | peak RSS MB "
        "| flat ±20 % | < 300 MB | re-dispatched | disturbed |",
        "|---:|---:|---:|---|---:|---:|---|---|---:|---|",
    ]
    for run in scale.get("runs", []):
        memory = run.get("memory") or {}
        lines.append(
            f"| {run['encounters']:,} | {run.get('elapsed_s')} | {run.get('throughput_accepted_per_s_overall')} | "
            f"{', '.join(str(v) for v in run.get('throughput_per_tenth') or [])} | "
            f"{get(run, 'cpu_ms_per_encounter', 'workers')} | {memory.get('peak_mb')} | "
            f"{verdict(memory.get('all_flat'))} | {verdict(memory.get('under_300_mb'))} | "
            f"{run.get('redispatched_versions', '–')} | {'yes' if run.get('disturbed_by_service_restart') else 'no'} |"
        )
    lines += [
        "",
        "*re-dispatched*: versions the driver's dispatch-due pass (every 30 s, as the beat) enqueued again because "
        "their message had been waiting longer than `delivery.stuck_after_s` (900 s): a backlog longer than "
        "that, or messages lost when Redis restarted. Duplicates are harmless (the lease and the state skip "
        "done versions) but cost broker traffic and claims. *disturbed*: PostgreSQL or Redis restarted during "
        "the run (other jobs on this machine restart them).",
        "",
    ]
    for run in scale.get("runs", []):
        processes = get(run, "memory", "processes") or {}
        lines += [
            f"RSS per worker process, {run['encounters']:,} encounters (MB: at 10 % / peak after / end): "
            + "; ".join(
                f"{name} {value.get('at_10_percent_mb')} / {value.get('peak_after_10_percent_mb')} / {value.get('end_mb')}"
                for name, value in sorted(processes.items())
            )
            + (f". Note: {run['note']}" if run.get("note") else "")
            + ".",
            "",
        ]
    return lines


def partial_scale_section() -> list[str]:
    """A scale run stopped before its end (``bench.scale`` saves its samples every few minutes): what it had
    reached, when it is newer than the last complete run."""
    try:
        partial: dict[str, Any] = json.loads(SCALE_PARTIAL.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    if SCALE_RESULTS.exists() and SCALE_RESULTS.stat().st_mtime >= SCALE_PARTIAL.stat().st_mtime:
        return []  # that run finished: its summary is above
    timeline: list[dict[str, Any]] = partial.get("timeline") or []
    if not timeline:
        return []
    size, last = partial["encounters"], timeline[-1]
    discovered = next((row["t_s"] for row in timeline if row["registered"] >= size), None)
    rates = throughput_per_tenth(size, timeline)
    memory = partial.get("memory") or {}
    processes = memory.get("processes") or {}
    return [
        f"## Scale run stopped before its end ({size:,} encounters)",
        "",
        f"From bench/results/scale-partial.json, saved {partial.get('saved')}: the run ended before its summary was written "
        f"(a session's time limit, or the driver failed) at t = {last['t_s']:.0f} s with {last['registered']:,} encounters registered "
        f"({'all discovered at t = ' + format(discovered, '.0f') + ' s' if discovered is not None else 'discovery unfinished'}) "
        f"and {last['accepted']:,} accepted ({last['accepted'] / size:.0%}); no summary, worker CPU or coverage "
        "figure exists for it.",
        "",
        "| accepted/s per completed tenth | peak RSS MB | flat ±20 % after 10 % | < 300 MB | re-dispatched |",
        "|---|---:|---|---|---:|",
        f"| {', '.join(str(rate) for rate in rates) or '–'} | {memory.get('peak_mb')} | "
        f"{verdict(memory.get('all_flat'))} | {verdict(memory.get('under_300_mb'))} | "
        f"{partial.get('redispatched_versions', '–')} |",
        "",
        "RSS per worker process (MB: at 10 % / peak after / last sample): "
        + "; ".join(
            f"{name} {value.get('at_10_percent_mb')} / {value.get('peak_after_10_percent_mb')} / {value.get('end_mb')}"
            for name, value in sorted(processes.items())
        )
        + ".",
        "",
    ]


def load_scale() -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(SCALE_RESULTS.read_text(encoding="utf-8"))
        return data
    except (OSError, json.JSONDecodeError):
        return None


def render(results: dict[str, Any], machine: dict[str, Any], total_s: float, quick: bool) -> str:
    rows, floor = results_table(results)
    failed = [name for name, value in results.items() if value.get("_failed")]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`bench/run.py`) on {machine['date']} in {total_s:.0f} s"
        + (" with `--quick` sizes (smoke test, not representative)" if quick else "")
        + ". Do not edit by hand: run `make bench` again. Speed is measured here, never asserted in tests.",
        "",
    ]
    if failed:
        lines += [f"**Failed in this run** (see the log): {', '.join(failed)}.", ""]
    lines += headline(results, floor)
    lines += machine_section(machine, results)
    lines += [
        "## Results",
        "",
        "ms/record are medians; `CPU` = this process's CPU time, `wall` = elapsed.",
        "",
        *rows,
        "",
    ]
    lines += counted_section(results.get("pipeline", {}))
    lines += where_time_goes(results.get("pipeline", {}))
    lines += coverage_section(results.get("coverage", {}))
    lines += scale_section()
    lines += partial_scale_section()
    lines += [
        "## Reproduce",
        "",
        "```",
        "make services   # PostgreSQL (and Redis for bench-scale) on 127.0.0.1",
        "make bench      # this page, about 5 minutes on 2 cores",
        "make bench-scale                       # 200k and 1M encounters with Celery workers (hours)",
        "VNEID_BENCH_SCALE_SMOKE=1 make bench-scale   # the same at 2 000 encounters, about a minute",
        ".venv/bin/python -m bench.bench_pipeline --encounters 2000   # any script alone prints JSON",
        "```",
        "",
        "Raw results of this run: var/bench/last-run.json (not committed).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the harness")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--only", action="append", choices=sorted(JOBS), help="run only these (repeatable)")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="re-render the page from var/bench/last-run.json (e.g. after a scale run), measuring nothing",
    )
    args = parser.parse_args()
    if args.render_only:
        saved = json.loads(RAW_RESULTS.read_text(encoding="utf-8"))
        meta = saved.pop("_run")
        args.output.write_text(
            render(saved, meta["machine"], meta["seconds"], meta["quick"]), encoding="utf-8"
        )
        progress(f"run: re-rendered {args.output} from {RAW_RESULTS}")
        return
    machine = machine_description()
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for name, (full, quick) in JOBS.items():
        if args.only and name not in args.only:
            continue
        results[name] = run_job(name, quick if args.quick else full)
    total = time.perf_counter() - started
    RAW_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    saved = {**results, "_run": {"machine": machine, "seconds": total, "quick": args.quick}}
    RAW_RESULTS.write_text(json.dumps(saved, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results, machine, total, args.quick), encoding="utf-8")
    progress(f"run: wrote {args.output} in {total:.0f} s")


if __name__ == "__main__":
    main()
