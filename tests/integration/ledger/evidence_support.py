"""Evidence rows made through the repository, as the pipeline makes them, for the evidence tests."""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.ports import EncounterRef
from worker.ledger import repository as repo
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.ledger.repository import AttemptResult, WorkItem
from worker.ledger.schema import evidence
from worker.ledger.states import State

FACILITY = "79999"
NOW = datetime(2036, 3, 1, 8, 0, tzinfo=UTC)
#: What a signed file and a rejection message may carry: personal data that must never be readable at rest.
CARD_NUMBER = "DN4797920000123"
PATIENT_FRAGMENT = f"<HO_TEN>NGUYỄN THỊ BẢO NGỌC</HO_TEN><MA_THE_BHYT>{CARD_NUMBER}</MA_THE_BHYT>"
THONG_DIEP = f"Sai ngày sinh của bệnh nhân NGUYỄN THỊ BẢO NGỌC, thẻ {CARD_NUMBER}"


def signed_file(his_key: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><GIAMDINHHS><MA_LK>{his_key}</MA_LK>{PATIENT_FRAGMENT}'
        "<Signature>c2lnbmF0dXJl</Signature></GIAMDINHHS>"
    ).encode()


def sent_version(
    engine: Engine,
    keys: EvidenceKeys,
    his_key: str,
    *,
    completed_at: datetime = NOW,
    state: State | None = State.ACCEPTED,
) -> WorkItem:
    """A visit built and signed through the repository, then answered with ``state`` (None: not sent yet)."""
    document = signed_file(his_key)
    with engine.begin() as conn:
        ref = EncounterRef(his_key=his_key, completed_at=completed_at, changed_at=completed_at)
        [item] = repo.read_items(conn, repo.register_refs(conn, [ref], facility_code=FACILITY).version_ids)
        repo.record_built(
            conn, item, content_hash=hashlib.sha256(document).hexdigest(), tables=["XML1"], warnings=[]
        )
        [item] = repo.read_items(conn, [item.version_id])
        repo.record_signed(conn, item, signed=document, signed_sha256=hashlib.sha256(document).hexdigest(),
                           cert_serial="ab", keys=keys)  # fmt: skip
        if state is not None:
            repo.record_attempt(
                conn, item, destination="bhxh", result=AttemptResult(state), http_status=200,
                ma_ket_qua="200" if state is State.ACCEPTED else "422", ma_giao_dich=f"GD{his_key}",
                thoi_gian_tiep_nhan="20360301080000", request_hash=hashlib.sha256(document).hexdigest(),
                receipt={"maKetQua": "200", "maGiaoDich": f"GD{his_key}", "thongDiep": THONG_DIEP},
                duplicate=False, keys=keys,
            )  # fmt: skip
        [item] = repo.read_items(conn, [item.version_id])
    return item


def legacy_row(engine: Engine, item: WorkItem, document: bytes, receipt: dict[str, object]) -> None:
    """Turn a row into what the code before encryption wrote: zlib bytes, plain JSON receipt, no key ids."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(evidence)
            .where(evidence.c.version_id == item.version_id)
            .values(signed_document=zlib.compress(document, 6), compression="zlib", document_key_id=None,
                    receipt=receipt, sealed_receipt=None, receipt_key_id=None)
        )  # fmt: skip
