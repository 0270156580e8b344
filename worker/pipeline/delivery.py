"""Advance a batch of ledger versions as far as they can go: load → build → validate → sign → submit.

Idempotent by construction: versions are re-read and leased from the ledger (ids in, nothing trusted from the
message), done versions are skipped, the exact signed bytes are stored before the first attempt and every
resubmission sends those bytes, and the gateway's "already received" counts as accepted. A crash anywhere
leaves the version active; the lease expires and the dispatcher picks it up again.
"""

from __future__ import annotations

import contextvars
import hashlib
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import Connection

from schemas import PayloadValidationError, build_claim
from schemas.domain import Encounter
from schemas.ports import (
    DocumentKind,
    Gateway,
    GatewayReceipt,
    Outcome,
    RevocationAwareSigner,
    SourceDataError,
)
from worker.ledger import repository as repo
from worker.ledger.db import utcnow
from worker.ledger.repository import WorkItem
from worker.ledger.revocation_answers import RevocationAnswer
from worker.ledger.states import State
from worker.logging import get_logger
from worker.pipeline import hubs, policy
from worker.pipeline.context import Pipeline

log = get_logger(__name__)
_rng = random.SystemRandom()


@dataclass
class BatchResult:
    claimed: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    quarantined: int = 0
    unchanged: int = 0
    retrying: int = 0
    dead: int = 0
    hidden: int = 0
    deferred: int = 0
    retry_at: datetime | None = None
    retry_ids: list[int] = field(default_factory=list)


def source_hash(encounter: Encounter) -> str:
    """Identity of content that could not be built (quarantine): a digest of the canonical model."""
    return hashlib.sha256(
        repr(
            (
                encounter.patient,
                encounter.visit,
                encounter.drug_lines,
                encounter.service_lines,
                encounter.cls_results,
                encounter.clinical_notes,
            )
        ).encode("utf-8")
    ).hexdigest()


def unreadable_issue(exc: SourceDataError) -> dict[str, object]:
    """The quarantine reason for an encounter the adapter could not read (no value is ever included)."""
    return {
        "table": exc.section,
        "row": None,
        "field": exc.column,
        "rule": "HIS.unreadable",
        "severity": "error",
        "message_vi": "Không đọc được dữ liệu của lượt khám từ HIS (giá trị sai định dạng hoặc mã chưa ánh xạ).",
        "message_en": "The encounter could not be read from the HIS (malformed value or unmapped code).",
        "hint": "Fix the value in the HIS, or add it to the mapping's value map, then `quarantine retry`.",
    }


@dataclass
class _Builds:
    """What building a batch made of each item: a payload to sign, a quarantine reason, or nothing in the HIS."""

    built: list[tuple[repo.Built, bytes]] = field(default_factory=list)
    quarantined: list[repo.Quarantined] = field(default_factory=list)
    missing: list[WorkItem] = field(default_factory=list)


def _build_and_sign(pipeline: Pipeline, items: Sequence[WorkItem], result: BatchResult) -> dict[int, bytes]:
    """Build, validate and sign; record outcomes in two transactions. Returns version id → signed bytes."""
    builds = _build(pipeline, items)
    to_sign = _record_builds(pipeline, builds, result)
    signed = _sign(pipeline, to_sign)
    with pipeline.engine.begin() as conn:
        repo.record_signed_many(
            conn,
            signed,
            cert_serial=format(pipeline.signer.certificate.serial_number, "x"),
            keys=pipeline.evidence_keys,
        )
    return {entry.item.version_id: entry.document for entry in signed}


def _build(pipeline: Pipeline, items: Sequence[WorkItem]) -> _Builds:
    """Load the batch from the HIS at once and build each payload; nothing is recorded yet."""
    builds = _Builds()
    loaded = pipeline.source().load_many([item.his_key for item in items])
    for item in items:
        encounter = loaded[item.his_key]
        if isinstance(encounter, SourceDataError):
            digest = f"unreadable:{encounter.section}.{encounter.column}"
            builds.quarantined.append(repo.Quarantined(item, digest, [unreadable_issue(encounter)]))
        elif encounter is None:
            builds.missing.append(item)
        else:
            _build_one(pipeline, item, encounter, builds)
    return builds


def _build_one(pipeline: Pipeline, item: WorkItem, encounter: Encounter, builds: _Builds) -> None:
    try:
        payload = build_claim(encounter, pipeline.payload_options)
    except PayloadValidationError as exc:
        builds.quarantined.append(
            repo.Quarantined(item, source_hash(encounter), repo.issues_json(exc.issues))
        )
        return
    warnings = sorted({str(issue.rule) for issue in payload.warnings})
    builds.built.append((repo.Built(item, payload.content_hash, payload.tables, warnings), payload.document))


def _record_builds(pipeline: Pipeline, builds: _Builds, result: BatchResult) -> list[tuple[WorkItem, bytes]]:
    """Record the batch's builds in one transaction; return the items (with their documents) still to sign:
    a build the ledger found ``unchanged`` (another version has its content) is not signed again."""
    with pipeline.engine.begin() as conn:
        repo.record_missing_in_his(conn, builds.missing)
        repo.record_quarantined_many(conn, builds.quarantined)
        states = repo.record_built_many(conn, [entry for entry, _ in builds.built])
    to_sign = [
        (entry.item, document)
        for entry, document in builds.built
        if states[entry.item.version_id] is State.BUILT
    ]
    result.unchanged += len(builds.built) - len(to_sign)
    result.hidden += len(builds.missing)
    result.quarantined += len(builds.quarantined)
    for entry in builds.quarantined:
        log.warning(
            "encounter quarantined",
            ma_lk=entry.item.ma_lk,
            version_id=entry.item.version_id,
            rules=sorted({str(issue.get("rule")) for issue in entry.issues}),
        )
    return to_sign


def _sign(pipeline: Pipeline, to_sign: Sequence[tuple[WorkItem, bytes]]) -> list[repo.Signed]:
    """Sign each document, check the signature when a verifier is wired, and note the revocation status
    (and CA answer) each signature relied on."""
    signed: list[repo.Signed] = []
    answers: dict[str, RevocationAnswer] = {}  # one ledger copy per distinct CA answer in the batch
    for item, document in to_sign:
        signed_bytes = pipeline.signer.sign(document)
        if pipeline.verifier is not None:
            pipeline.verifier(signed_bytes)  # a signer defect must stop here, before anything is kept or sent
        digest = hashlib.sha256(signed_bytes).hexdigest()
        record, answer = _revocation(pipeline, answers)
        signed.append(repo.Signed(item, signed_bytes, digest, revocation=record, revocation_answer=answer))
    return signed


def _revocation(
    pipeline: Pipeline, answers: dict[str, RevocationAnswer]
) -> tuple[dict[str, object], RevocationAnswer | None]:
    """The certificate's revocation status the signature just made was allowed on, for its audit event
    (DOMAIN.md §10.5), and the CA's signed answer (DER OCSP response or CRL) behind it, which the ledger keeps
    once per distinct answer. The revocation guard (adapters/signers/revocation/guard.py) knows both; a signer
    without the guard checked nothing (``signer.revocation = "off"``), and the record says so. ``answers``
    holds the ledger's form of each answer already met in the batch, so it is made once, not per file."""
    signer = pipeline.signer
    if not isinstance(signer, RevocationAwareSigner) or (record := signer.revocation_record()) is None:
        return {"policy": pipeline.settings.signer.revocation, "state": "not_checked"}, None
    found = signer.revocation_answer()
    if found is None:
        return record, None
    if found.sha256 not in answers:
        answers[found.sha256] = RevocationAnswer(
            sha256=found.sha256,
            kind=found.source.value,
            der=found.der,
            url=found.url,
            this_update=found.this_update,
            next_update=found.next_update,
        )
    return record, answers[found.sha256]


def _load_signed(pipeline: Pipeline, items: Sequence[WorkItem], signed: dict[int, bytes]) -> dict[str, str]:
    """Fill ``signed`` with the stored bytes of versions signed earlier; return the stopped destinations."""
    with pipeline.engine.begin() as conn:
        signed.update(
            repo.signed_documents(
                conn,
                [item.version_id for item in items if item.version_id not in signed],
                pipeline.evidence_keys,
            )
        )
        return repo.stopped_destinations(conn)


def _attempt(
    pipeline: Pipeline, item: WorkItem, receipt: GatewayReceipt, *, destination: str, now: datetime
) -> repo.Attempt:
    """What the delivery policy makes of one gateway answer, as the ledger records it."""
    decision = policy.decide(
        receipt, attempts_before=item.attempts, settings=pipeline.settings.delivery, now=now, rng=_rng
    )
    return repo.Attempt(
        item,
        decision,
        http_status=receipt.http_status,
        ma_ket_qua=receipt.ma_ket_qua,
        ma_giao_dich=receipt.ma_giao_dich,
        thoi_gian_tiep_nhan=receipt.thoi_gian_tiep_nhan,
        request_hash=receipt.request_sha256,
        receipt={
            "maKetQua": receipt.ma_ket_qua,
            "maGiaoDich": receipt.ma_giao_dich,
            "thoiGianTiepNhan": receipt.thoi_gian_tiep_nhan,
            "thongDiep": receipt.thong_diep,
            "httpStatus": receipt.http_status,
            "duplicate": receipt.duplicate,
            "destination": destination,
        },
        duplicate=receipt.duplicate,
    )


def _tally(result: BatchResult, attempt: repo.Attempt) -> None:
    decision = attempt.result
    _count(result, decision.state, attempt.duplicate)
    if decision.state is State.SUBMITTED and decision.next_attempt_at is not None:
        result.retry_ids.append(attempt.item.version_id)
        if result.retry_at is None or decision.next_attempt_at < result.retry_at:
            result.retry_at = decision.next_attempt_at


def _halt(
    conn: Connection,
    pipeline: Pipeline,
    destination: str,
    receipt: GatewayReceipt,
    *,
    deferred: Sequence[WorkItem],
    now: datetime,
    result: BatchResult,
) -> None:
    """An AUTH/CONFIG answer: the destination is stopped or its 401 counted (``policy.halt_destination``); the
    versions not sent are left as they are and looked at again later."""
    stopped = policy.halt_destination(conn, destination, receipt)
    label = "destination-stopped" if stopped else "auth-retry"
    until = now + policy.recheck_after(stopped, pipeline.settings.delivery)
    repo.defer(conn, deferred, reason=f"{label}:{destination}", until=until)
    result.deferred += len(deferred)
    if stopped:
        log.error(
            "destination stopped: configuration or authentication error",
            destination=destination,
            reason=policy.halt_reason(receipt),
        )


def _send(
    pipeline: Pipeline,
    gateway: Gateway,
    destination: str,
    items: Sequence[WorkItem],
    signed: dict[int, bytes],
) -> list[GatewayReceipt | None]:
    """Send a batch with up to ``delivery.submit_concurrency`` requests in flight; receipts in item order.

    A real gateway answers in tens to hundreds of milliseconds: one request at a time would leave the worker
    idle most of the time. Once an answer says the credentials or the account are wrong (AUTH/CONFIG), no
    further request starts (``None``); requests already in flight finish and are recorded as usual."""
    halted = threading.Event()

    def send(item: WorkItem) -> GatewayReceipt | None:
        if halted.is_set():
            return None
        with structlog.contextvars.bound_contextvars(ma_lk=item.ma_lk, version_id=item.version_id):
            receipt = gateway.submit(signed[item.version_id], DocumentKind.CLAIM)
        pipeline.observer.submitted(destination, receipt)
        if policy.stops_destination(receipt):
            halted.set()
        return receipt

    workers = min(pipeline.settings.delivery.submit_concurrency, len(items))
    if workers <= 1:
        return [send(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"submit-{destination}") as pool:
        # Each request runs in a copy of this thread's context: the task and encounter ids stay on its logs.
        futures = [pool.submit(contextvars.copy_context().run, send, item) for item in items]
        return [future.result() for future in futures]


def _submit(
    pipeline: Pipeline, items: Sequence[WorkItem], signed: dict[int, bytes], result: BatchResult
) -> None:
    destination, gateway = pipeline.primary_gateway()
    stopped = _load_signed(pipeline, items, signed)
    sendable = [item for item in items if item.version_id in signed]
    if destination in stopped:
        with pipeline.engine.begin() as conn:
            repo.defer(
                conn,
                sendable,
                reason=f"destination-stopped:{destination}",
                until=utcnow() + policy.STOPPED_RECHECK,
            )
        result.deferred += len(sendable)
        return
    receipts = _send(pipeline, gateway, destination, sendable, signed)
    attempts: list[tuple[WorkItem, GatewayReceipt]] = []
    halted: GatewayReceipt | None = None
    deferred: list[WorkItem] = []
    for item, receipt in zip(sendable, receipts, strict=True):
        if receipt is not None and not policy.stops_destination(receipt):
            attempts.append((item, receipt))
            continue
        # Not sent (the destination halted first) or halted here: left as it is, tried again later.
        halted = halted or receipt
        deferred.append(item)
    now = utcnow()
    recorded = [
        _attempt(pipeline, item, receipt, destination=destination, now=now) for item, receipt in attempts
    ]
    for attempt in recorded:
        _tally(result, attempt)
    with pipeline.engine.begin() as conn:
        repo.record_attempts(conn, recorded, destination=destination, keys=pipeline.evidence_keys)
        accepted = [item.version_id for item, receipt in attempts if receipt.outcome is Outcome.ACCEPTED]
        if accepted:
            repo.clear_auth_failures(conn, destination)
            hubs.queue_for_hubs(conn, accepted, hubs.secondary_destinations(pipeline))
        if halted is not None:
            _halt(conn, pipeline, destination, halted, deferred=deferred, now=now, result=result)


def _count(result: BatchResult, state: State, duplicate: bool) -> None:
    if state is State.ACCEPTED:
        result.accepted += 1
        result.duplicates += int(duplicate)
    elif state is State.REJECTED:
        result.rejected += 1
    elif state is State.DEAD:
        result.dead += 1
    elif state is State.SUBMITTED:
        result.retrying += 1


def process_versions(pipeline: Pipeline, version_ids: Sequence[int], *, owner: str) -> BatchResult:
    """The whole delivery of a batch; safe to call twice with the same ids, concurrently or after a crash."""
    result = BatchResult()
    lease = timedelta(seconds=pipeline.settings.delivery.stuck_after_s)
    with pipeline.engine.begin() as conn:
        items = repo.claim(conn, version_ids, owner=owner, lease=lease)
    result.claimed = len(items)
    if not items:
        return result
    try:
        needs_build = [item for item in items if item.state in (State.DISCOVERED, State.BUILT)]
        signed = _build_and_sign(pipeline, needs_build, result) if needs_build else {}
        with pipeline.engine.begin() as conn:
            fresh = repo.read_items(conn, [item.version_id for item in items])
        ready = [item for item in fresh if item.state in (State.SIGNED, State.SUBMITTED)]
        if ready:
            _submit(pipeline, ready, signed, result)
    finally:
        with pipeline.engine.begin() as conn:
            repo.release(conn, [item.version_id for item in items])
    return result
