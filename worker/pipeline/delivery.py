"""Advance a batch of ledger versions as far as they can go: load → build → validate → sign → submit.

Idempotent by construction: versions are re-read and leased from the ledger (ids in, nothing trusted from the
message), done versions are skipped, the exact signed bytes are stored before the first attempt and every
resubmission sends those bytes, and the gateway's "already received" counts as accepted. A crash anywhere
leaves the version active; the lease expires and the dispatcher picks it up again.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas import PayloadValidationError, build_claim
from worker.domain import Encounter
from worker.ledger import repository as repo
from worker.ledger.db import utcnow
from worker.ledger.repository import WorkItem
from worker.ledger.states import State
from worker.logging import get_logger
from worker.pipeline.context import Pipeline
from worker.pipeline.policy import decide
from worker.ports import DocumentKind, GatewayReceipt, Outcome

log = get_logger(__name__)
_rng = random.SystemRandom()
#: How long a stopped destination's versions wait before the dispatcher looks at them again.
STOPPED_RECHECK = timedelta(minutes=5)


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
    return hashlib.sha256(repr((encounter.patient, encounter.visit, encounter.drug_lines, encounter.service_lines,
                                encounter.cls_results, encounter.clinical_notes)).encode("utf-8")).hexdigest()  # fmt: skip


def _build_and_sign(pipeline: Pipeline, items: Sequence[WorkItem], result: BatchResult) -> dict[int, bytes]:
    """Build, validate and sign; record outcomes in two transactions. Returns version id → signed bytes."""
    source = pipeline.source()
    built: list[tuple[WorkItem, bytes, str, tuple[str, ...], list[str]]] = []
    quarantined: list[tuple[WorkItem, str, list[dict[str, object]]]] = []
    missing: list[WorkItem] = []
    for item in items:
        encounter = source.load(item.his_key)
        if encounter is None:
            missing.append(item)
            continue
        try:
            payload = build_claim(encounter, pipeline.payload_options)
        except PayloadValidationError as exc:
            quarantined.append((item, source_hash(encounter), repo.issues_json(exc.issues)))
            continue
        warnings = sorted({str(issue.rule) for issue in payload.warnings})
        built.append((item, payload.document, payload.content_hash, payload.tables, warnings))
    to_sign: list[tuple[WorkItem, bytes]] = []
    with pipeline.engine.begin() as conn:
        for item in missing:
            repo.record_missing_in_his(conn, item)
        for item, digest, issues in quarantined:
            repo.record_quarantined(conn, item, source_hash=digest, issues=issues)
        for item, document, content_hash, tables, warnings in built:
            state = repo.record_built(conn, item, content_hash=content_hash, tables=tables, warnings=warnings)
            if state is State.BUILT:
                to_sign.append((item, document))
            else:
                result.unchanged += 1
    result.hidden += len(missing)
    result.quarantined += len(quarantined)
    for item, _, issues in quarantined:
        log.warning("encounter quarantined", ma_lk=item.ma_lk, version_id=item.version_id,
                    rules=sorted({str(i.get("rule")) for i in issues}))  # fmt: skip
    signed: dict[int, bytes] = {}
    serial = format(pipeline.signer.certificate.serial_number, "x")
    with pipeline.engine.begin() as conn:
        for item, document in to_sign:
            signed_bytes = pipeline.signer.sign(document)
            digest = hashlib.sha256(signed_bytes).hexdigest()
            repo.record_signed(conn, item, signed=signed_bytes, signed_sha256=digest, cert_serial=serial)
            signed[item.version_id] = signed_bytes
    return signed


def _submit(
    pipeline: Pipeline, items: Sequence[WorkItem], signed: dict[int, bytes], result: BatchResult
) -> None:
    destination, gateway = pipeline.primary_gateway()
    with pipeline.engine.begin() as conn:
        stopped = repo.stopped_destinations(conn)
        missing_bytes = [item for item in items if item.version_id not in signed]
        for item in missing_bytes:
            document = repo.signed_document(conn, item.version_id)
            if document is not None:
                signed[item.version_id] = document
    sendable = [item for item in items if item.version_id in signed]
    if destination in stopped:
        with pipeline.engine.begin() as conn:
            repo.defer(
                conn, sendable, reason=f"destination-stopped:{destination}", until=utcnow() + STOPPED_RECHECK
            )
        result.deferred += len(sendable)
        return
    attempts: list[tuple[WorkItem, GatewayReceipt]] = []
    stop_reason: str | None = None
    for index, item in enumerate(sendable):
        receipt = gateway.submit(signed[item.version_id], DocumentKind.CLAIM)
        log.info("gateway attempt", ma_lk=item.ma_lk, version_id=item.version_id, destination=destination,
                 outcome=receipt.outcome.value, ma_ket_qua=receipt.ma_ket_qua, ma_giao_dich=receipt.ma_giao_dich,
                 http_status=receipt.http_status, elapsed_ms=round(receipt.elapsed_ms, 1))  # fmt: skip
        if receipt.outcome in (Outcome.AUTH, Outcome.CONFIG):
            stop_reason = f"{receipt.outcome.value}:{receipt.ma_ket_qua or receipt.http_status}"
            deferred = sendable[index:]
            break
        attempts.append((item, receipt))
    else:
        deferred = []
    now = utcnow()
    with pipeline.engine.begin() as conn:
        for item, receipt in attempts:
            decision = decide(receipt, attempts_before=item.attempts, settings=pipeline.settings.delivery,
                              now=now, rng=_rng)  # fmt: skip
            repo.record_attempt(
                conn, item, destination=destination, result=decision, http_status=receipt.http_status,
                ma_ket_qua=receipt.ma_ket_qua, ma_giao_dich=receipt.ma_giao_dich,
                thoi_gian_tiep_nhan=receipt.thoi_gian_tiep_nhan, request_hash=receipt.request_sha256,
                receipt={"maKetQua": receipt.ma_ket_qua, "maGiaoDich": receipt.ma_giao_dich,
                         "thoiGianTiepNhan": receipt.thoi_gian_tiep_nhan, "thongDiep": receipt.thong_diep,
                         "httpStatus": receipt.http_status, "duplicate": receipt.duplicate,
                         "destination": destination},
                duplicate=receipt.duplicate,
            )  # fmt: skip
            _count(result, decision.state, receipt.duplicate)
            if decision.state is State.SUBMITTED and decision.next_attempt_at is not None:
                result.retry_ids.append(item.version_id)
                if result.retry_at is None or decision.next_attempt_at < result.retry_at:
                    result.retry_at = decision.next_attempt_at
        if stop_reason is not None:
            repo.stop_destination(conn, destination, stop_reason)
            repo.defer(
                conn, deferred, reason=f"destination-stopped:{destination}", until=now + STOPPED_RECHECK
            )
            result.deferred += len(deferred)
            log.error("destination stopped: configuration or authentication error", destination=destination,
                      reason=stop_reason)  # fmt: skip


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
