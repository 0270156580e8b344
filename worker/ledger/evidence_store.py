"""How an ``evidence`` row is sealed and opened, and its upkeep: key census, rekey, retention purge, audited reads.

Plain functions on the caller's connection, like ``repository``; the key ring is always passed in. What is
sealed is the stored representation (the zlib bytes of the signed file, the receipt's JSON), so re-sealing
with another key never decompresses or re-encodes anything: the signed bytes stay exactly as sent.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from worker.ledger import audit
from worker.ledger.audit import AuditEvent
from worker.ledger.db import as_utc
from worker.ledger.evidence_crypto import EvidenceKeys, EvidenceKind, UnknownEvidenceKeyError
from worker.ledger.schema import audit_log, deliveries, encounters, evidence, versions
from worker.ledger.states import State

#: Columns ``open_document`` reads.
DOCUMENT_COLUMNS = (
    evidence.c.version_id,
    evidence.c.signed_document,
    evidence.c.compression,
    evidence.c.document_key_id,
)
#: Columns ``open_receipt`` reads.
RECEIPT_COLUMNS = (
    evidence.c.version_id,
    evidence.c.sealed_receipt,
    evidence.c.receipt_key_id,
    evidence.c.receipt,
)
#: Hub deliveries in these states are done with the signed bytes; any other still needs them.
_DELIVERY_DONE = (State.ACCEPTED.value, State.REJECTED.value)


def document_columns(keys: EvidenceKeys, version_id: int, document: bytes) -> dict[str, object]:
    """The column values that keep ``document`` (the exact signed bytes) for ``version_id``."""
    sealed = keys.seal(zlib.compress(document, 6), version_id=version_id, kind=EvidenceKind.SIGNED_DOCUMENT)
    return {"signed_document": sealed.blob, "document_key_id": sealed.key_id, "compression": "zlib"}


def receipt_columns(keys: EvidenceKeys, version_id: int, receipt: dict[str, object]) -> dict[str, object]:
    """The column values that keep the gateway's receipt (``thongDiep`` may echo personal data)."""
    text = json.dumps(receipt, ensure_ascii=False, separators=(",", ":"))
    sealed = keys.seal(text.encode("utf-8"), version_id=version_id, kind=EvidenceKind.RECEIPT)
    return {"sealed_receipt": sealed.blob, "receipt_key_id": sealed.key_id}


def _stored_document(keys: EvidenceKeys, row: Any) -> bytes:
    """The document as stored before sealing (compressed); rows from before sealing are stored as they are."""
    raw = bytes(row.signed_document)
    if row.document_key_id is None:
        return raw
    return keys.open(
        raw, key_id=row.document_key_id, version_id=row.version_id, kind=EvidenceKind.SIGNED_DOCUMENT
    )


def open_document(keys: EvidenceKeys, row: Any) -> bytes:
    """The exact signed bytes of a row selected with ``DOCUMENT_COLUMNS`` (its document must be present)."""
    stored = _stored_document(keys, row)
    return zlib.decompress(stored) if row.compression == "zlib" else stored


def _receipt_text(keys: EvidenceKeys, row: Any) -> bytes | None:
    if row.receipt_key_id is not None:
        return keys.open(
            bytes(row.sealed_receipt),
            key_id=row.receipt_key_id,
            version_id=row.version_id,
            kind=EvidenceKind.RECEIPT,
        )
    if row.receipt is None:
        return None
    return json.dumps(row.receipt, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def open_receipt(keys: EvidenceKeys, row: Any) -> dict[str, object] | None:
    """The receipt of a row selected with ``RECEIPT_COLUMNS``; ``None`` when there is none (yet)."""
    text = _receipt_text(keys, row)
    if text is None:
        return None
    receipt: dict[str, object] = json.loads(text)
    return receipt


# ------------------------------------------------------------------------------------------- key census


@dataclass(frozen=True, slots=True)
class Census:
    """What the evidence table holds, by key: ids and counts only."""

    sealed: dict[str, int]  # key id -> sealed blobs (documents and receipts)
    plain_documents: int  # written before sealing existed
    plain_receipts: int
    purged: int

    def unopenable(self, keys: EvidenceKeys) -> dict[str, int]:
        return {key_id: self.sealed[key_id] for key_id in keys.missing(self.sealed)}

    def check(self, keys: EvidenceKeys) -> None:
        """``UnknownEvidenceKeyError`` naming the first key id the ring lacks (and how many blobs need it)."""
        missing = self.unopenable(keys)
        if missing:
            key_id, blobs = min(missing.items())
            raise UnknownEvidenceKeyError(key_id, subject=f"{blobs} stored evidence blob(s) are")


def census(conn: sa.Connection) -> Census:
    sealed: dict[str, int] = {}
    for key_column, blob_column in (
        (evidence.c.document_key_id, evidence.c.signed_document),
        (evidence.c.receipt_key_id, evidence.c.sealed_receipt),
    ):
        rows = conn.execute(
            sa.select(key_column, sa.func.count())
            .where(key_column.is_not(None), blob_column.is_not(None))
            .group_by(key_column)
        )
        for key_id, blobs in rows:
            sealed[key_id] = sealed.get(key_id, 0) + blobs

    def rows_where(condition: sa.ColumnElement[bool]) -> int:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(evidence).where(condition)).scalar_one()
        )

    return Census(
        sealed=sealed,
        plain_documents=rows_where(
            sa.and_(evidence.c.signed_document.is_not(None), evidence.c.document_key_id.is_(None))
        ),
        plain_receipts=rows_where(
            sa.and_(evidence.c.receipt.is_not(None), evidence.c.receipt_key_id.is_(None))
        ),
        purged=rows_where(evidence.c.purged_at.is_not(None)),
    )


# ------------------------------------------------------------------------------------------------ rekey


@dataclass(frozen=True, slots=True)
class RekeyBatch:
    documents: int
    receipts: int
    last_version_id: int | None  # resume after this one; None when nothing was left


def _stale(key_column: sa.Column[Any], keys: EvidenceKeys) -> sa.ColumnElement[bool]:
    return sa.or_(key_column.is_(None), key_column != keys.active_id)


def rekey_batch(conn: sa.Connection, keys: EvidenceKeys, *, after_version_id: int, limit: int) -> RekeyBatch:
    """Re-seal with the active key the next ``limit`` rows (by version id) that another key or no key seals.

    Rows are locked while re-sealed (a worker recording a receipt waits), and each batch commits with the
    caller's transaction: an interrupted rekey resumes where it stopped, finished rows are never touched."""
    stale_document = sa.and_(
        evidence.c.signed_document.is_not(None), _stale(evidence.c.document_key_id, keys)
    )
    stale_receipt = sa.or_(
        sa.and_(evidence.c.receipt_key_id.is_(None), evidence.c.receipt.is_not(None)),
        sa.and_(evidence.c.sealed_receipt.is_not(None), evidence.c.receipt_key_id != keys.active_id),
    )
    rows = conn.execute(
        sa.select(*DOCUMENT_COLUMNS, *RECEIPT_COLUMNS[1:])
        .where(evidence.c.version_id > after_version_id, sa.or_(stale_document, stale_receipt))
        .order_by(evidence.c.version_id)
        .limit(limit)
        .with_for_update()
    ).all()
    documents: list[dict[str, object]] = []
    receipts: list[dict[str, object]] = []
    for row in rows:
        if row.signed_document is not None and row.document_key_id != keys.active_id:
            sealed = keys.seal(
                _stored_document(keys, row), version_id=row.version_id, kind=EvidenceKind.SIGNED_DOCUMENT
            )
            documents.append({"v": row.version_id, "blob": sealed.blob, "key_id": sealed.key_id})
        text = _receipt_text(keys, row) if row.receipt_key_id != keys.active_id else None
        if text is not None:
            sealed = keys.seal(text, version_id=row.version_id, kind=EvidenceKind.RECEIPT)
            receipts.append({"v": row.version_id, "blob": sealed.blob, "key_id": sealed.key_id})
    where = evidence.c.version_id == sa.bindparam("v")
    if documents:
        conn.execute(
            sa.update(evidence)
            .where(where)
            .values(signed_document=sa.bindparam("blob"), document_key_id=sa.bindparam("key_id")),
            documents,
        )
    if receipts:
        # SQL NULL, not JSON null: the plain copy of a receipt must be gone, not turned into a literal.
        conn.execute(
            sa.update(evidence)
            .where(where)
            .values(
                sealed_receipt=sa.bindparam("blob"), receipt_key_id=sa.bindparam("key_id"), receipt=sa.null()
            ),
            receipts,
        )
    return RekeyBatch(len(documents), len(receipts), rows[-1].version_id if rows else None)


# ------------------------------------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class PurgeResult:
    cutoff: datetime
    purged: int
    remaining: int  # eligible rows left for the next run (more than ``limit`` were eligible)


def _purgeable(cutoff: datetime) -> sa.Select[tuple[int]]:
    """Evidence of accepted versions whose visit ended before ``cutoff`` and that no hub still has to receive."""
    hub_pending = (
        sa.select(deliveries.c.version_id)
        .where(deliveries.c.version_id == evidence.c.version_id, deliveries.c.state.not_in(_DELIVERY_DONE))
        .exists()
    )
    return (
        sa.select(evidence.c.version_id)
        .join(versions, versions.c.id == evidence.c.version_id)
        .join(encounters, encounters.c.ma_lk == versions.c.ma_lk)
        .where(
            evidence.c.purged_at.is_(None),
            versions.c.state == State.ACCEPTED.value,
            encounters.c.completed_at < cutoff,
            ~hub_pending,
        )
    )


def purge_expired(
    conn: sa.Connection,
    *,
    retention_days: int,
    now: datetime,
    limit: int = 50_000,
    dry_run: bool = False,
    actor: str | None = None,
) -> PurgeResult:
    """Clear the signed bytes and receipt of every accepted version whose visit is older than the retention.

    The row stays with its hash, ``stored_at`` and ``purged_at`` (the proof that evidence existed and when
    it went); the version row keeps ``maKetQua``/``maGiaoDich``. A version that is not accepted (still in
    flight, rejected, dead, superseded) is never touched. One audit event per run, with counts only; a dry
    run changes and appends nothing."""
    if retention_days < 1:
        raise ValueError(f"evidence retention of {retention_days} days: it must be at least 1 day")
    cutoff = now - timedelta(days=retention_days)
    eligible = _purgeable(cutoff)

    def count() -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(eligible.subquery())).scalar_one())

    if dry_run:
        return PurgeResult(cutoff, 0, count())
    ids = list(conn.execute(eligible.order_by(evidence.c.version_id).limit(limit)).scalars())
    for start in range(0, len(ids), 500):
        conn.execute(
            sa.update(evidence)
            .where(evidence.c.version_id.in_(ids[start : start + 500]))
            .values(
                signed_document=None,
                document_key_id=None,
                sealed_receipt=None,
                receipt_key_id=None,
                receipt=sa.null(),
                purged_at=now,
            )
        )
    remaining = count()
    detail: dict[str, object] = {
        "versions": len(ids),
        "remaining": remaining,
        "retention_days": retention_days,
        "cutoff": as_utc(cutoff).isoformat(),  # type: ignore[union-attr]  # cutoff is not None
    }
    audit.append(conn, [AuditEvent("evidence_purged", detail=detail)], actor=actor)
    return PurgeResult(cutoff, len(ids), remaining)


# ------------------------------------------------------------------------------------------ audited read


@dataclass(frozen=True, slots=True)
class EvidenceRead:
    ma_lk: str
    version_id: int
    state: str
    signed_sha256: str
    stored_at: datetime
    purged_at: datetime | None
    document: bytes | None
    receipt: dict[str, object] | None
    #: The detail of the version's ``signed`` audit event: the certificate serial and the revocation status
    #: the signature was allowed on (``None`` when the audit log has no such event).
    signing: dict[str, object] | None = None

    def signing_summary(self) -> str:
        """One line for an inspector: the certificate and its revocation status when this file was signed."""
        signing = self.signing or {}
        said = f"certificate serial {signing.get('cert_serial', 'unknown')}"
        record = signing.get("revocation")
        if not isinstance(record, dict):  # versions signed before the status was kept
            return f"{said}; revocation status when signed: not recorded"
        if record.get("cert_sha256"):
            said += f" (SHA-256 {record['cert_sha256']})"
        policy = f"signer.revocation = {record.get('policy')}"
        if record.get("state") == "not_checked":
            return f"{said}; revocation status when signed: not checked ({policy})"
        parts = [f"{str(record.get('source', '')).upper()} {record.get('url') or ''}".strip()]
        for name in ("this_update", "next_update", "checked_at"):
            if record.get(name):
                parts.append(f"{name.replace('_', ' ')} {record[name]}")
        parts += [str(problem) for problem in record.get("problems") or ()]
        parts.append(policy)
        return f"{said}; revocation status when signed: {record.get('state')} ({'; '.join(parts)})"


def _signing_detail(conn: sa.Connection, ma_lk: str, version_id: int) -> dict[str, object] | None:
    """The detail of the newest ``signed`` audit event of a version (found through the ``ma_lk`` index)."""
    text = conn.execute(
        sa.select(audit_log.c.detail)
        .where(
            audit_log.c.ma_lk == ma_lk, audit_log.c.version_id == version_id, audit_log.c.event == "signed"
        )
        .order_by(audit_log.c.id.desc())
        .limit(1)
    ).scalar()
    if not text:
        return None
    detail: dict[str, object] = json.loads(text)
    return detail


def read_evidence(
    conn: sa.Connection,
    keys: EvidenceKeys,
    *,
    ma_lk: str,
    version_id: int | None,
    reader: str,
    parts: Sequence[EvidenceKind],
) -> EvidenceRead | None:
    """One version's evidence (the newest stored one of ``ma_lk`` unless ``version_id`` is given), opened.

    Appends an ``evidence_read`` audit event naming the reader and what was opened, in the caller's
    transaction: a read that is not recorded does not happen. ``None`` when the version has no evidence."""
    query = (
        sa.select(
            versions.c.ma_lk,
            versions.c.state,
            evidence.c.signed_sha256,
            evidence.c.stored_at,
            evidence.c.purged_at,
            *DOCUMENT_COLUMNS,
            *RECEIPT_COLUMNS[1:],
        )
        .join(versions, versions.c.id == evidence.c.version_id)
        .where(versions.c.ma_lk == ma_lk)
        .order_by(evidence.c.version_id.desc())
        .limit(1)
    )
    if version_id is not None:
        query = query.where(evidence.c.version_id == version_id)
    row = conn.execute(query).first()
    if row is None:
        return None
    document = (
        open_document(keys, row)
        if EvidenceKind.SIGNED_DOCUMENT in parts and row.signed_document is not None
        else None
    )
    receipt = open_receipt(keys, row) if EvidenceKind.RECEIPT in parts else None
    opened = [kind.value for kind, value in ((EvidenceKind.SIGNED_DOCUMENT, document), (EvidenceKind.RECEIPT, receipt))
              if value is not None]  # fmt: skip
    if opened:
        audit.append(
            conn,
            [AuditEvent("evidence_read", ma_lk=row.ma_lk, version_id=row.version_id, request_hash=row.signed_sha256,
                        detail={"reader": reader, "parts": opened})],
            actor=reader,
        )  # fmt: skip
    return EvidenceRead(
        ma_lk=row.ma_lk,
        version_id=row.version_id,
        state=row.state,
        signed_sha256=row.signed_sha256,
        stored_at=as_utc(row.stored_at),  # type: ignore[arg-type]  # stored_at is NOT NULL
        purged_at=as_utc(row.purged_at),
        document=document,
        receipt=receipt,
        signing=_signing_detail(conn, row.ma_lk, row.version_id),
    )
