"""End-to-end worker CPU per encounter, and the same encounters through a straightforward per-record pipeline.

Run: ``.venv/bin/python -m bench.bench_pipeline [--encounters 1000] [--repeats 3] [--sqlite]``; prints JSON.

**Ours** (``worker.pipeline``): the demo HIS (scratch PostgreSQL database) seeded with N encounters → watermark
discovery (``discovery.discover``) → ``delivery.process_versions`` over batches of 50, in this process: HIS read
→ build → validate → sign (file key) → submit over HTTP to the gateway simulator (a child process) → ledger and
hash-chained audit commits (scratch PostgreSQL ledger).

**Straightforward**: the same encounters, one record at a time: list the HIS keys, then per record one Celery
task (a throwaway Celery app with ``task_always_eager``: ``.delay()`` runs the task through Celery's tracer —
request context, signals, state, an ``EagerResult`` — but with no broker, serialisation or worker round trip,
which flatters it) that loads the encounter with the same adapter, builds and validates it with the same
``build_claim``, signs it with python-xmlsec (template + ``xmlsec.SignatureContext`` per record, key loaded
once), submits it with the same gateway client to the same simulator, and commits one ledger-like row plus one
audit row in its own transaction.

**Counted**: ``time.process_time()`` of this process (every thread: SQLAlchemy/psycopg client work, lxml,
OpenSSL, httpx, logging at INFO rendered as JSON to /dev/null, Prometheus counters). **Not counted**: the
PostgreSQL server processes (the HIS and ledger queries' server side, WAL, fsync) and the simulator process
(parsing, XSD check, recording); their CPU is sampled with psutil and reported apart, for information only (the
PostgreSQL figure includes any other client of that server). Wall time counts everything the process waited for.
Each repeat starts from an empty ledger and a reset simulator; medians over repeats; one warm-up run of each
pipeline first (not counted).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from celery import Celery
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from signxml import methods
from signxml.algorithms import CanonicalizationMethod
from signxml.signer import XMLSigner

from adapters.gateway.bhxh import protocol
from adapters.gateway.registry import create_gateways
from adapters.his.registry import create_source
from bench.common import (
    FACILITY,
    cpu_seconds,
    emit,
    machine_description,
    measured,
    per_call,
    postgres_server_pids,
    progress,
    server_version,
)
from bench.stack import BenchStack
from schemas import PayloadValidationError, build_claim
from schemas.ports import DocumentKind, Gateway
from worker.bootstrap import payload_options
from worker.ledger.db import create_ledger_engine, utcnow
from worker.pipeline import delivery, discovery
from worker.pipeline.context import Pipeline

# ------------------------------------------------------------------------------------ the comparator


class XmlsecSigner:
    """The textbook python-xmlsec enveloped signature: a template under CHUKYDONVI, one SignatureContext per
    record (a context cannot sign twice), the key and certificate loaded once."""

    label = "python-xmlsec (libxmlsec1): template + SignatureContext per record, key loaded once"

    def __init__(self, key_pem: bytes, certificate_pem: bytes) -> None:
        import xmlsec  # noqa: PLC0415  # may fail (libxml2 mismatch with lxml): then SignxmlSigner stands in

        self._xmlsec = xmlsec
        self._etree = etree
        self._key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
        self._key.load_cert_from_memory(certificate_pem, xmlsec.constants.KeyDataFormatPem)

    def sign(self, document: bytes) -> bytes:
        xmlsec, constants = self._xmlsec, self._xmlsec.constants
        root = self._etree.fromstring(document)
        signature = xmlsec.template.create(root, constants.TransformInclC14N, constants.TransformRsaSha256)
        root[-1].append(signature)  # CHUKYDONVI, the root's last child
        reference = xmlsec.template.add_reference(signature, constants.TransformSha256, uri="")
        xmlsec.template.add_transform(reference, constants.TransformEnveloped)
        xmlsec.template.add_transform(reference, constants.TransformInclC14N)
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
        context = xmlsec.SignatureContext()
        context.key = self._key
        context.sign(signature)
        return bytes(self._etree.tostring(root, xml_declaration=True, encoding="utf-8"))


class SignxmlSigner:
    """Fallback comparator when python-xmlsec cannot be imported (libxml2 mismatch with lxml)."""

    label = "signxml XMLSigner (FALLBACK: python-xmlsec unavailable), enveloped under the root"

    def __init__(self, key: Any, certificate_pem: bytes) -> None:
        self._etree = etree
        self._key = key
        self._certificate = certificate_pem.decode("ascii")  # signxml takes PEM text
        self._signer = XMLSigner(
            method=methods.enveloped,
            signature_algorithm="rsa-sha256",
            digest_algorithm="sha256",
            c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,
        )

    def sign(self, document: bytes) -> bytes:
        signed = self._signer.sign(self._etree.fromstring(document), key=self._key, cert=self._certificate)
        return bytes(self._etree.tostring(signed, xml_declaration=True, encoding="utf-8"))


def comparator_signer(stack: BenchStack, probe: bytes) -> tuple[XmlsecSigner | SignxmlSigner, str | None]:
    """python-xmlsec, or signxml with the reason xmlsec could not be used."""
    key = stack.pki.hospital.key
    certificate_pem = stack.pki.hospital.certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        signer: XmlsecSigner | SignxmlSigner = XmlsecSigner(key_pem, certificate_pem)
        signer.sign(probe)
        return signer, None
    except Exception as exc:  # ImportError or xmlsec.Error: say why, then fall back
        return SignxmlSigner(key, certificate_pem), f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------ the straightforward pipeline

_naive_metadata = sa.MetaData()
naive_records = sa.Table(
    "bench_naive_records",
    _naive_metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("ma_lk", sa.String(100), nullable=False),
    sa.Column("his_key", sa.String(200), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("signed_sha256", sa.String(64)),
    sa.Column("ma_ket_qua", sa.String(20)),
    sa.Column("ma_giao_dich", sa.String(100)),
    sa.Column("http_status", sa.Integer),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
)
naive_audit = sa.Table(
    "bench_naive_audit",
    _naive_metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("ma_lk", sa.String(100)),
    sa.Column("request_hash", sa.String(64)),
    sa.Column("ma_ket_qua", sa.String(20)),
)


class Straightforward:
    """One eager Celery task per record; per record: load, build, xmlsec sign, submit, one commit."""

    def __init__(self, stack: BenchStack, signer: XmlsecSigner | SignxmlSigner) -> None:
        settings = stack.settings
        self.engine = create_ledger_engine(stack.ledger_url)
        _naive_metadata.create_all(self.engine)
        self.source = create_source(settings.his, FACILITY, url=stack.his_url)
        self.gateway: Gateway = create_gateways(
            settings.destinations, default_facility_code=settings.payload.facility_code
        )["bhxh"]
        self.options = payload_options(settings.payload)
        self.signer = signer
        self.app = Celery("bench-straightforward", set_as_current=False)
        self.app.conf.update(
            task_always_eager=True,
            task_eager_propagates=True,
            task_ignore_result=True,
            broker_url="memory://",
        )

        def deliver_one(his_key: str) -> str:
            return self._deliver_one(his_key)

        self.task = self.app.task(name="bench.deliver_one")(deliver_one)

    def _deliver_one(self, his_key: str) -> str:
        encounter = self.source.load(his_key)
        if encounter is None:
            return "missing"
        try:
            payload = build_claim(encounter, self.options)
        except PayloadValidationError:
            self._commit(
                encounter.ma_lk, his_key, "invalid", content_hash=None, signed_sha256=None, receipt=None
            )
            return "invalid"
        signed = self.signer.sign(payload.document)
        receipt = self.gateway.submit(signed, DocumentKind.CLAIM)
        self._commit(
            encounter.ma_lk,
            his_key,
            receipt.outcome.value,
            content_hash=payload.content_hash,
            signed_sha256=receipt.request_sha256,
            receipt=receipt,
        )
        return receipt.outcome.value

    def _commit(
        self,
        ma_lk: str,
        his_key: str,
        state: str,
        *,
        content_hash: str | None,
        signed_sha256: str | None,
        receipt: Any,
    ) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(naive_records).values(
                    ma_lk=ma_lk,
                    his_key=his_key,
                    state=state,
                    content_hash=content_hash,
                    signed_sha256=signed_sha256,
                    ma_ket_qua=getattr(receipt, "ma_ket_qua", None),
                    ma_giao_dich=getattr(receipt, "ma_giao_dich", None),
                    http_status=getattr(receipt, "http_status", None),
                    sent_at=now,
                )
            )
            conn.execute(
                sa.insert(naive_audit).values(
                    at=now,
                    event="attempt",
                    ma_lk=ma_lk,
                    request_hash=signed_sha256,
                    ma_ket_qua=getattr(receipt, "ma_ket_qua", None),
                )
            )

    def run(self) -> Counter[str]:
        keys = [ref.his_key for ref in self.source.discover(None)]
        outcomes: Counter[str] = Counter()
        for key in keys:
            self.task.delay(key)
            outcomes["tasks"] += 1
        return outcomes

    def reset(self) -> None:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("TRUNCATE bench_naive_records, bench_naive_audit RESTART IDENTITY")
            else:
                conn.execute(sa.delete(naive_records))
                conn.execute(sa.delete(naive_audit))

    def accepted(self) -> int:
        with self.engine.connect() as conn:
            query = sa.select(sa.func.count()).where(naive_records.c.state == "accepted")
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        self.gateway.close()
        self.source.close()
        self.engine.dispose()


# ------------------------------------------------------------------------------------------ measuring


@dataclass
class Run:
    encounters: int
    cpu_s: float
    wall_s: float
    simulator_cpu_s: float
    postgres_cpu_s: float
    phases: dict[str, dict[str, float]] = field(default_factory=dict)
    outcome: dict[str, int] = field(default_factory=dict)


class OtherProcesses:
    """CPU of the simulator and the PostgreSQL server processes over a block (informational)."""

    def __init__(self, simulator_pid: int) -> None:
        self.simulator_pid = simulator_pid

    def __enter__(self) -> OtherProcesses:
        self._sim = cpu_seconds([self.simulator_pid])
        self._pg = {pid: cpu_seconds([pid]) for pid in postgres_server_pids()}
        return self

    def __exit__(self, *_: object) -> None:
        self.simulator_s = cpu_seconds([self.simulator_pid]) - self._sim
        after = {pid: cpu_seconds([pid]) for pid in postgres_server_pids()}
        # A backend that ended during the block is lost; a new one counts from zero.
        self.postgres_s = sum(value - self._pg.get(pid, 0.0) for pid, value in after.items())


def run_ours(stack: BenchStack, pipeline: Pipeline, n: int) -> Run:
    stack.reset(pipeline)
    totals: Counter[str] = Counter()
    with OtherProcesses(stack.simulator_pid) as others, measured() as whole:
        with measured() as found_span:
            found = discovery.discover(pipeline)
        with measured() as delivered_span:
            for batch in discovery.chunked(found.version_ids, pipeline.settings.delivery.batch_size):
                result = delivery.process_versions(pipeline, batch, owner="bench")
                totals.update({k: v for k, v in vars(result).items() if isinstance(v, int) and v})
    return Run(
        encounters=n,
        cpu_s=whole.cpu_s,
        wall_s=whole.wall_s,
        simulator_cpu_s=others.simulator_s,
        postgres_cpu_s=others.postgres_s,
        phases={
            "discovery": {"cpu_s": found_span.cpu_s, "wall_s": found_span.wall_s},
            "process_versions": {"cpu_s": delivered_span.cpu_s, "wall_s": delivered_span.wall_s},
        },
        outcome={"discovered": found.seen, **totals},
    )


def run_straightforward(stack: BenchStack, naive: Straightforward, n: int) -> Run:
    naive.reset()
    stack.reset_simulator()
    with OtherProcesses(stack.simulator_pid) as others, measured() as whole:
        outcome = naive.run()
    return Run(
        encounters=n,
        cpu_s=whole.cpu_s,
        wall_s=whole.wall_s,
        simulator_cpu_s=others.simulator_s,
        postgres_cpu_s=others.postgres_s,
        outcome={**outcome, "accepted": naive.accepted()},
    )


def summarise(runs: list[Run]) -> dict[str, Any]:
    n = runs[0].encounters
    cpu = statistics.median(run.cpu_s for run in runs)
    wall = statistics.median(run.wall_s for run in runs)
    summary: dict[str, Any] = {
        "cpu_ms_per_encounter": round(cpu * 1000 / n, 3),
        "wall_ms_per_encounter": round(wall * 1000 / n, 3),
        "records_per_s_wall": round(n / wall, 1),
        "records_per_cpu_s": round(n / cpu, 1),
        "cpu_ms_per_encounter_each_repeat": [round(run.cpu_s * 1000 / n, 3) for run in runs],
        "wall_ms_per_encounter_each_repeat": [round(run.wall_s * 1000 / n, 3) for run in runs],
        "other_processes_cpu_ms_per_encounter": {
            "simulator": round(statistics.median(run.simulator_cpu_s for run in runs) * 1000 / n, 3),
            "postgresql_server": round(statistics.median(run.postgres_cpu_s for run in runs) * 1000 / n, 3),
        },
        "outcome_last_repeat": runs[-1].outcome,
    }
    if runs[0].phases:
        summary["phases_cpu_ms_per_encounter"] = {
            name: round(statistics.median(run.phases[name]["cpu_s"] for run in runs) * 1000 / n, 3)
            for name in runs[0].phases
        }
        summary["phases_wall_ms_per_encounter"] = {
            name: round(statistics.median(run.phases[name]["wall_s"] for run in runs) * 1000 / n, 3)
            for name in runs[0].phases
        }
    return summary


def raw_rsa_ms(stack: BenchStack) -> dict[str, float]:
    """One RSA-2048 PKCS#1 v1.5 SHA-256 signature with the same key, in this process (CPU and wall ms)."""
    key = stack.pki.hospital.key
    data = b"<SignedInfo>" + b"x" * 900
    cpu, wall = per_call(lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256()), 500, 5)
    return {"cpu_ms": round(cpu, 4), "wall_ms": round(wall, 4)}


def stage_breakdown(
    stack: BenchStack, pipeline: Pipeline, naive: Straightforward, ours_cpu_ms: float, naive_cpu_ms: float
) -> dict[str, Any]:
    """Each stage alone over the same encounters (CPU ms per encounter); the ledger is what remains."""
    stack.reset(pipeline)
    source = pipeline.source()
    keys = [ref.his_key for ref in source.discover(None)]
    n = len(keys)
    stages: dict[str, float] = {}

    def timed(name: str, action: Callable[[], Any]) -> Any:
        with measured() as span:
            value = action()
        stages[name] = round(span.cpu_s * 1000 / n, 3)
        return value

    with measured() as listing:
        keys = [ref.his_key for ref in source.discover(None)]
    timed("his_load", lambda: [source.load(key) for key in keys])  # the straightforward pipeline's read
    size = pipeline.settings.delivery.batch_size

    def load_batched() -> list[Any]:
        loaded: list[Any] = []
        for start in range(0, n, size):
            chunk = keys[start : start + size]
            found = source.load_many(chunk)
            loaded += [found[key] for key in chunk]
        return loaded

    encounters = timed("his_load_many", load_batched)  # ours: load_many per batch, as process_versions
    built = timed(
        "build_and_validate", lambda: [build_claim(e, pipeline.payload_options) for e in encounters]
    )
    documents = [payload.document for payload in built]
    signed = timed("sign_file_key", lambda: [pipeline.signer.sign(document) for document in documents])
    timed("sign_xmlsec_comparator", lambda: [naive.signer.sign(document) for document in documents])
    timed(
        "form_encoding_only",
        lambda: [protocol.encode_form({protocol.FIELD_FILE: protocol.encode_file(s)}) for s in signed],
    )
    _, gateway = pipeline.primary_gateway()
    timed("submit_http_incl_encoding", lambda: [gateway.submit(s, DocumentKind.CLAIM) for s in signed])

    def noop_task(key: str) -> str:
        return key

    noop = naive.app.task(name="bench.noop")(noop_task)
    timed("celery_eager_task_overhead", lambda: [noop.delay(key) for key in keys])
    stages["his_listing"] = round(listing.cpu_s * 1000 / n, 3)
    shared = stages["build_and_validate"] + stages["submit_http_incl_encoding"]
    ours_stages = shared + stages["his_load_many"] + stages["sign_file_key"]
    naive_stages = (
        shared + stages["his_load"] + stages["sign_xmlsec_comparator"] + stages["celery_eager_task_overhead"]
    )
    return {
        "cpu_ms_per_encounter": stages,
        "ours_ledger_and_rest": round(ours_cpu_ms - ours_stages, 3),
        "straightforward_ledger_and_rest": round(naive_cpu_ms - naive_stages, 3),
        "median_signed_bytes": int(statistics.median(len(s) for s in signed)),
        "note": "ledger_and_rest = measured end-to-end CPU minus the stages above (ledger writes, audit, "
        "evidence compression, claim/lease, discovery/listing, logging)",
    }


def statement_counts(stack: BenchStack, pipeline: Pipeline) -> dict[str, float]:
    """Ledger statements and commits per encounter in one run of ours (event listeners on the engine)."""
    counts: Counter[str] = Counter()

    def on_execute(*_: object, **__: object) -> None:
        counts["statements"] += 1

    def on_commit(*_: object) -> None:
        counts["commits"] += 1

    sa.event.listen(pipeline.engine, "before_cursor_execute", on_execute)
    sa.event.listen(pipeline.engine, "commit", on_commit)
    try:
        run = run_ours(stack, pipeline, stack.encounters)
    finally:
        sa.event.remove(pipeline.engine, "before_cursor_execute", on_execute)
        sa.event.remove(pipeline.engine, "commit", on_commit)
    return {name: round(value / run.encounters, 2) for name, value in counts.items()}


def profile_ours(stack: BenchStack, pipeline: Pipeline, top: int) -> dict[str, Any]:
    """cProfile of the process_versions loop (its default wall clock timer: waits on PostgreSQL and the
    simulator show up inside the calls that wait). Two views: our own functions (worker/, adapters/, schemas/)
    by cumulative time, and every function by own time (where the interpreter actually spends it)."""
    stack.reset(pipeline)
    found = discovery.discover(pipeline)
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in discovery.chunked(found.version_ids, pipeline.settings.delivery.batch_size):
        delivery.process_versions(pipeline, batch, owner="bench")
    profiler.disable()
    entries = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # pstats keeps its table there
    total = max((value[3] for value in entries.values()), default=1.0)
    repo = str(Path(__file__).resolve().parents[1]) + "/"

    def row(key: tuple[str, int, str], value: tuple[Any, ...]) -> dict[str, Any]:
        file, line, name = key
        where = file.replace(repo, "").split("site-packages/")[-1].split("/lib/python3.11/")[-1]
        return {
            "function": f"{where}:{line}({name})",
            "calls": value[1],
            "cumulative_s": round(value[3], 3),
            "own_s": round(value[2], 3),
            "share_of_process_versions": round(value[3] / total, 3),
            "own_share": round(value[2] / total, 3),
        }

    own_code = tuple(repo + package for package in ("worker/", "adapters/", "schemas/"))
    ours = [item for item in entries.items() if item[0][0].startswith(own_code)]
    by_cumulative = sorted(ours, key=lambda item: item[1][3], reverse=True)[:top]
    by_own = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[: max(top // 2, 10)]
    return {
        "clock": "wall (cProfile default timer), under profiling overhead",
        "total_s": round(total, 3),
        "top_cumulative": [row(key, value) for key, value in by_cumulative],
        "top_own_time": [row(key, value) for key, value in by_own],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encounters", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--sqlite", action="store_true", help="SQLite files instead of PostgreSQL")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    n = args.encounters
    with BenchStack(encounters=n, bad_share=0.0, log_level=args.log_level, sqlite_only=args.sqlite) as stack:
        progress(f"pipeline: {n} encounters seeded in {stack.seed_seconds:.1f} s ({stack.database_kind})")
        pipeline = stack.pipeline()
        first = pipeline.source().load(next(iter(pipeline.source().discover(None))).his_key)
        assert first is not None
        probe = build_claim(first, pipeline.payload_options).document
        signer, fallback_reason = comparator_signer(stack, probe)
        naive = Straightforward(stack, signer)
        try:
            progress("pipeline: warm-up of both pipelines (not counted)")
            run_ours(stack, pipeline, n)
            run_straightforward(stack, naive, n)
            ours: list[Run] = []
            plain: list[Run] = []
            for repeat in range(args.repeats):  # interleaved, so a load change on the machine hits both
                ours.append(run_ours(stack, pipeline, n))
                plain.append(run_straightforward(stack, naive, n))
                progress(
                    f"pipeline: repeat {repeat + 1}/{args.repeats}: ours {ours[-1].cpu_s * 1000 / n:.2f} "
                    f"ms CPU/enc, straightforward {plain[-1].cpu_s * 1000 / n:.2f}"
                )
            rsa = raw_rsa_ms(stack)
            ours_summary, plain_summary = summarise(ours), summarise(plain)
            progress("pipeline: stage breakdown, statement counts, profile")
            stages = stage_breakdown(
                stack,
                pipeline,
                naive,
                ours_summary["cpu_ms_per_encounter"],
                plain_summary["cpu_ms_per_encounter"],
            )
            statements = statement_counts(stack, pipeline)
            profile = profile_ours(stack, pipeline, args.profile_top)
            database_version = server_version(stack.ledger_url)
        finally:
            naive.close()
            pipeline.close()
    cpu_ratio = ours_summary["cpu_ms_per_encounter"] / rsa["cpu_ms"]
    emit(
        {
            "benchmark": "pipeline",
            "machine": machine_description(),
            "database": stack.database_kind,
            "database_version": database_version,
            "encounters": n,
            "bad_share": 0.0,
            "batch_size": stack.settings.delivery.batch_size,
            "repeats": args.repeats,
            "log_level": args.log_level,
            "seed_seconds": stack.seed_seconds,
            "counted": "time.process_time() of the benchmark process (all its threads): discovery, HIS reads "
            "(client side), build, validation, signing, HTTP client, ledger and audit client work, "
            "logging, metrics",
            "not_counted": "PostgreSQL server processes (HIS and ledger queries, WAL, fsync) and the gateway "
            "simulator process; reported apart under other_processes_cpu_ms_per_encounter",
            "raw_rsa2048_sign": rsa,
            "ours": ours_summary,
            "straightforward": {
                "comparator_signer": signer.label,
                "xmlsec_unavailable_reason": fallback_reason,
                "includes": "HIS key listing; per record an eager Celery task (.delay with task_always_eager: tracer, "
                "request context, signals; no broker, no serialisation), adapter load, build_claim, "
                "xmlsec signature, gateway submit (same client, same simulator), one transaction "
                "with one ledger-like row and one audit row",
                **plain_summary,
            },
            "stages": stages,
            "ledger_statements_per_encounter": statements,
            "profile_process_versions": profile,
            "headline": {
                "cpu_per_encounter_over_raw_rsa": round(cpu_ratio, 2),
                "cpu_target": 5.0,
                "cpu_target_met": cpu_ratio <= 5.0,
                "ours_over_straightforward_wall_throughput": round(
                    plain_summary["wall_ms_per_encounter"] / ours_summary["wall_ms_per_encounter"], 3
                ),
                "ours_over_straightforward_cpu_throughput": round(
                    plain_summary["cpu_ms_per_encounter"] / ours_summary["cpu_ms_per_encounter"], 3
                ),
                "throughput_target": 1.5,
            },
        }
    )


if __name__ == "__main__":
    main()
