"""The CA's signed revocation answers that signatures relied on, kept once each (DOMAIN.md §10.5).

NĐ 23/2025 Đ15–Đ17 asks signing software to check the certificate's status before signing and to store the
results. The ``signed`` audit event of each version records the status and names the answer it was derived
from by the SHA-256 of its DER (``revocation.answer_sha256``); the answer itself (an OCSP response, or the
CRL that was used) sits in ``revocation_answers`` under that hash, written in the same transaction as the
events that name it. A row is written once, however many versions and processes rely on it: a CRL can be
megabytes and serves every signature until the CA publishes the next one.

Nothing here is personal data (certificate serials and dates), so the rows are compressed, not sealed with
the evidence key: an inspector can export an answer without the key (``vneid-sync evidence
revocation-answer``) and check it with ``openssl ocsp -respin`` / ``openssl crl -inform DER``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from worker.ledger.db import as_utc
from worker.ledger.schema import revocation_answers

KINDS = ("ocsp", "crl")
COMPRESSION = "zlib"
#: Between speed and size: a CRL is compressed once per distinct CRL, on the signing path of one batch.
_ZLIB_LEVEL = 6


@dataclass(frozen=True, slots=True, repr=False)
class RevocationAnswer:
    """The CA's signed answer a signature's revocation status was derived from, as the ledger keeps it."""

    sha256: str  # of ``der``: the answer's identity, named by the signed audit events
    kind: str  # "ocsp" or "crl"
    der: bytes = field(compare=False)  # the DER OCSP response or CRL, exactly as the CA signed it
    url: str = field(compare=False)  # where it came from (a file path for signer.crl_file)
    this_update: datetime = field(compare=False)
    next_update: datetime | None = field(compare=False)

    def __repr__(self) -> str:
        return f"RevocationAnswer({self.kind} {self.url} sha256 {self.sha256[:12]}…, {len(self.der)} bytes)"


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A kept answer as read back: what it is, and (``read``) its DER."""

    sha256: str
    kind: str
    url: str
    this_update: datetime
    next_update: datetime | None
    size: int
    first_used_at: datetime
    der: bytes | None = field(default=None, repr=False)


class RevocationAnswerCorruptError(Exception):
    """A stored answer whose bytes no longer hash to the SHA-256 that names it (edited or damaged)."""


def keep(conn: sa.Connection, answers: Iterable[RevocationAnswer], *, now: datetime) -> int:
    """Insert the answers the ledger does not hold yet; returns how many rows this call wrote.

    Called once per batch of signed versions with the distinct answers they relied on (usually one). The
    answers already kept are found by primary key first, so a kept CRL is neither compressed nor sent to the
    server again; two processes racing on a new answer both insert and the second does nothing (ON CONFLICT
    DO NOTHING on PostgreSQL; SQLite takes the write lock at BEGIN, so it never races, and uses the same
    clause). Not INSERT OR IGNORE: that would also hide a NOT NULL or CHECK failure, which is a bug."""
    distinct = {answer.sha256: answer for answer in answers}
    if not distinct:
        return 0
    present = set(
        conn.execute(
            sa.select(revocation_answers.c.sha256).where(revocation_answers.c.sha256.in_(list(distinct)))
        ).scalars()
    )
    rows = [_row(answer, now) for sha256, answer in sorted(distinct.items()) if sha256 not in present]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # preserve_rowcount: SQLAlchemy reads the count of an INSERT only when asked (else -1 on psycopg).
    statement = (
        dialect.insert(revocation_answers)
        .on_conflict_do_nothing(index_elements=["sha256"])
        .execution_options(preserve_rowcount=True)
    )
    written = 0
    for row in rows:  # one at a time: a CRL row is megabytes, no need to build one statement of several
        written += conn.execute(statement, row).rowcount
    return written


def _row(answer: RevocationAnswer, now: datetime) -> dict[str, object]:
    if answer.kind not in KINDS:
        raise ValueError(f"revocation answer kind {answer.kind!r} is not one of {KINDS}")
    if hashlib.sha256(answer.der).hexdigest() != answer.sha256:
        # The audit events name the answer by this hash: a row that does not match it would prove nothing.
        raise ValueError(f"revocation answer {answer.sha256}: the DER does not hash to its SHA-256")
    return {
        "sha256": answer.sha256,
        "kind": answer.kind,
        "url": answer.url,
        "this_update": answer.this_update,
        "next_update": answer.next_update,
        "der": zlib.compress(answer.der, _ZLIB_LEVEL),
        "compression": COMPRESSION,
        "size": len(answer.der),
        "first_used_at": now,
    }


_DESCRIPTION = (
    revocation_answers.c.sha256,
    revocation_answers.c.kind,
    revocation_answers.c.url,
    revocation_answers.c.this_update,
    revocation_answers.c.next_update,
    revocation_answers.c.size,
    revocation_answers.c.first_used_at,
)


def describe(conn: sa.Connection, sha256: str) -> StoredAnswer | None:
    """What the kept answer ``sha256`` is, without reading its bytes; ``None`` when the ledger has none."""
    row = conn.execute(sa.select(*_DESCRIPTION).where(revocation_answers.c.sha256 == sha256.lower())).first()
    return None if row is None else _stored(row)


def read(conn: sa.Connection, sha256: str) -> StoredAnswer | None:
    """The kept answer ``sha256`` with its DER, checked against its hash (``RevocationAnswerCorruptError``)."""
    row = conn.execute(
        sa.select(*_DESCRIPTION, revocation_answers.c.der, revocation_answers.c.compression).where(
            revocation_answers.c.sha256 == sha256.lower()
        )
    ).first()
    if row is None:
        return None
    return _stored(row, checked_der(row.sha256, row.der, row.compression))


def checked_der(sha256: str, stored: bytes, compression: str) -> bytes:
    """The DER of a kept row (its ``der`` and ``compression`` columns), or ``RevocationAnswerCorruptError``
    when it does not decompress or hash to ``sha256``. Also used by ``audit verify``, which reads the rows the
    signed events name in one query."""
    if compression != COMPRESSION:
        raise RevocationAnswerCorruptError(f"revocation answer {sha256}: unknown compression {compression!r}")
    try:
        der = zlib.decompress(stored)
    except zlib.error:
        raise RevocationAnswerCorruptError(
            f"revocation answer {sha256}: the stored bytes do not decompress"
        ) from None
    if hashlib.sha256(der).hexdigest() != sha256:
        raise RevocationAnswerCorruptError(
            f"revocation answer {sha256}: the stored bytes do not hash to their SHA-256 (edited or damaged)"
        )
    return der


def _stored(row: sa.Row[*tuple[Any, ...]], der: bytes | None = None) -> StoredAnswer:
    return StoredAnswer(
        sha256=row.sha256,
        kind=row.kind,
        url=row.url,
        this_update=_aware(row.this_update),
        next_update=as_utc(row.next_update),
        size=row.size,
        first_used_at=_aware(row.first_used_at),
        der=der,
    )


def _aware(value: datetime) -> datetime:
    """A NOT NULL timestamp as aware UTC (SQLite returns it naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
