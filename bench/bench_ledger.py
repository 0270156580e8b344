"""Ledger write costs on PostgreSQL: batched per transaction (as the pipeline does) vs one commit per row.

Run: ``.venv/bin/python -m bench.bench_ledger [--batch 50] [--records 500] [--repeats 3]``; prints JSON.

Measured on a scratch ledger (``migrate.upgrade``), CPU of this process and wall time per record, medians over
repeats; every case works on fresh rows.

- ``register``: ``repository.register_refs`` for discovered encounters, 1000 per transaction (discovery's
  page) vs one transaction per encounter.
- ``delivery_writes``: what ``process_versions`` records per version — ``record_built``, ``record_signed``
  (with a ~23.5 KB signed document, zlib-compressed and AES-256-GCM-sealed as evidence) and ``record_attempt`` (accepted) — with one
  transaction per step per batch of ``--batch`` versions through the set-based ``record_*_many`` calls (as the
  pipeline does) vs one commit per singular call.
- ``audit_append``: ``audit.append`` of one event per transaction; ``--batch`` separate appends of one event
  in one transaction (what the per-item ``record_*`` calls do inside a batch); one append of ``--batch``
  events in one transaction (the lock and the chain-head read paid once).
- ``naive_row_and_audit``: one plain ledger-like row + one audit row per transaction (the straightforward
  pipeline's write).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa

from bench.bench_pipeline import _naive_metadata, naive_audit, naive_records
from bench.bench_sign import sample_envelope
from bench.common import FACILITY, emit, machine_description, measured, progress, scratch_database
from schemas.ports import EncounterRef
from worker.ledger import audit, migrate
from worker.ledger import repository as repo
from worker.ledger.audit import AuditEvent
from worker.ledger.db import create_ledger_engine, utcnow
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.ledger.repository import AttemptResult, WorkItem
from worker.ledger.states import State

_keys = itertools.count(1)
#: Evidence is sealed as in production (AES-256-GCM after zlib); the key lives in memory only.
KEYS = EvidenceKeys.generate()


def fresh_refs(count: int) -> list[EncounterRef]:
    base = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    refs = []
    for _ in range(count):
        number = next(_keys)
        when = base + timedelta(minutes=number)
        refs.append(
            EncounterRef(
                his_key=f"L{number:08d}",
                completed_at=when,
                changed_at=when,
                visit_type="01",
                department="K01",
                insured=True,
            )
        )
    return refs


def registered_items(engine: sa.Engine, count: int) -> list[WorkItem]:
    with engine.begin() as conn:
        registration = repo.register_refs(conn, fresh_refs(count), facility_code=FACILITY)
        return repo.read_items(conn, registration.version_ids)


def timed(action: Callable[[], int]) -> tuple[float, float, int]:
    with measured() as span:
        records = action()
    return span.cpu_s, span.wall_s, records


def case(samples: list[tuple[float, float, int]], **extra: Any) -> dict[str, Any]:
    cpu = statistics.median(s[0] * 1000 / s[2] for s in samples)
    wall = statistics.median(s[1] * 1000 / s[2] for s in samples)
    return {
        "cpu_ms_per_record": round(cpu, 4),
        "wall_ms_per_record": round(wall, 4),
        "records_per_s_wall": round(1000 / wall, 1),
        "records_per_round": samples[0][2],
        **extra,
    }


def delivery_steps(conn: sa.Connection, item: WorkItem, signed: bytes, step: str) -> None:
    if step == "built":
        repo.record_built(
            conn,
            item,
            content_hash=hashlib.sha256(item.ma_lk.encode()).hexdigest(),
            tables=("XML1", "XML2", "XML3"),
            warnings=(),
        )
    elif step == "signed":
        digest = hashlib.sha256(signed + item.ma_lk.encode()).hexdigest()
        repo.record_signed(conn, item, signed=signed, signed_sha256=digest, cert_serial="1a2b3c", keys=KEYS)
    else:
        repo.record_attempt(
            conn,
            item,
            destination="bhxh",
            result=AttemptResult(State.ACCEPTED),
            http_status=200,
            ma_ket_qua="200",
            ma_giao_dich=f"GD{item.version_id}",
            thoi_gian_tiep_nhan="20260301080000",
            request_hash="0" * 64,
            receipt={"maKetQua": "200"},
            duplicate=False,
            keys=KEYS,
        )


STEPS = ("built", "signed", "attempt")


def writes_batched(engine: sa.Engine, items: Sequence[WorkItem], signed: bytes, batch: int) -> int:
    """What ``process_versions`` does per batch: one set-based call per step, one transaction each."""
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        with engine.begin() as conn:
            repo.record_built_many(
                conn,
                [
                    repo.Built(
                        item, hashlib.sha256(item.ma_lk.encode()).hexdigest(), ("XML1", "XML2", "XML3")
                    )
                    for item in chunk
                ],
            )
        with engine.begin() as conn:
            repo.record_signed_many(
                conn,
                [
                    repo.Signed(item, signed, hashlib.sha256(signed + item.ma_lk.encode()).hexdigest())
                    for item in chunk
                ],
                cert_serial="1a2b3c",
                keys=KEYS,
            )
        with engine.begin() as conn:
            repo.record_attempts(
                conn,
                [
                    repo.Attempt(
                        item,
                        AttemptResult(State.ACCEPTED),
                        200,
                        "200",
                        f"GD{item.version_id}",
                        "20260301080000",
                        "0" * 64,
                        {"maKetQua": "200"},
                        False,
                    )
                    for item in chunk
                ],
                destination="bhxh",
                keys=KEYS,
            )
    return len(items)


def writes_per_commit(engine: sa.Engine, items: Sequence[WorkItem], signed: bytes) -> int:
    for item in items:
        for step in STEPS:
            with engine.begin() as conn:
                delivery_steps(conn, item, signed, step)
    return len(items)


def events(count: int) -> list[AuditEvent]:
    return [
        AuditEvent(
            "attempt",
            ma_lk=f"{FACILITY}-A{next(_keys)}",
            version_id=1,
            request_hash="0" * 64,
            ma_ket_qua="200",
            detail={"result": "accepted"},
        )
        for _ in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--records", type=int, default=500, help="records per round (per-commit cases)")
    parser.add_argument("--register", type=int, default=1000, help="refs per discovery page")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    batch, records, repeats = int(args.batch), int(args.records), int(args.repeats)
    per_page = int(args.register)
    signed = sample_envelope()
    with scratch_database("ledger") as (url, kind):
        engine = create_ledger_engine(url)
        migrate.upgrade(engine)
        _naive_metadata.create_all(engine)
        registered_items(engine, 100)  # warm-up: compiled statement caches, connections
        result: dict[str, Any] = {
            "benchmark": "ledger",
            "machine": machine_description(),
            "database": kind,
            "batch": batch,
            "repeats": repeats,
        }

        progress("ledger: register_refs")
        batched = [
            timed(partial(lambda size: len(registered_items(engine, size)), per_page)) for _ in range(repeats)
        ]

        def register_each() -> int:
            for ref in fresh_refs(records):
                with engine.begin() as conn:
                    repo.register_refs(conn, [ref], facility_code=FACILITY)
            return records

        single = [timed(register_each) for _ in range(repeats)]
        result["register"] = {
            "batched": case(batched, transaction=f"{per_page} encounters per transaction"),
            "per_row_commit": case(single, transaction="one encounter per transaction"),
        }

        progress("ledger: delivery writes")
        batched = []
        single = []
        for _ in range(repeats):
            items = registered_items(engine, records)
            batched.append(timed(partial(writes_batched, engine, items, signed, batch)))
            items = registered_items(engine, records)
            single.append(timed(partial(writes_per_commit, engine, items, signed)))
        result["delivery_writes"] = {
            "batched": case(
                batched, transaction=f"3 transactions per batch of {batch} (built, signed, attempt)"
            ),
            "per_row_commit": case(single, transaction="3 transactions per version"),
            "signed_document_bytes": len(signed),
        }

        progress("ledger: audit append")

        def one_per_transaction() -> int:
            for event in events(records):
                with engine.begin() as conn:
                    audit.append(conn, [event])
            return records

        def appends_in_one_transaction() -> int:
            for _ in range(records // batch):
                with engine.begin() as conn:
                    for event in events(batch):
                        audit.append(conn, [event])
            return records // batch * batch

        def one_append_per_batch() -> int:
            for _ in range(records // batch):
                with engine.begin() as conn:
                    audit.append(conn, events(batch))
            return records // batch * batch

        result["audit_append"] = {
            "one_event_per_transaction": case([timed(one_per_transaction) for _ in range(repeats)]),
            "separate_appends_in_batch_transaction": case(
                [timed(appends_in_one_transaction) for _ in range(repeats)],
                transaction=f"{batch} append calls of one event, one transaction",
            ),
            "one_append_per_batch": case(
                [timed(one_append_per_batch) for _ in range(repeats)],
                transaction=f"one append of {batch} events, one transaction",
            ),
        }

        def naive_rows() -> int:
            for number in range(records):
                now = utcnow()
                with engine.begin() as conn:
                    conn.execute(
                        sa.insert(naive_records).values(
                            ma_lk=f"N{number}", his_key=f"N{number}", state="accepted", sent_at=now
                        )
                    )
                    conn.execute(sa.insert(naive_audit).values(at=now, event="attempt", ma_lk=f"N{number}"))
            return records

        result["naive_row_and_audit"] = case(
            [timed(naive_rows) for _ in range(repeats)], transaction="one row + one audit row per transaction"
        )
        engine.dispose()
    emit(result)


if __name__ == "__main__":
    main()
