"""Append-only, hash-chained audit log: one row per attempt and state change.

Each row carries the hash of the previous row and its own hash over its content, so editing or deleting a
row breaks the chain at that point; ``verify_chain`` names the first row that does not fit, then checks that
the CA revocation answers the verified ``signed`` events name are kept and unaltered. Appends are serialised
(a PostgreSQL advisory lock; SQLite's write lock) so concurrent workers keep one chain.
Rows hold ids, hashes and result codes only — never personal data or the gateway's free-text message.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from worker import __version__
from worker.ledger.db import as_utc, is_postgresql, utcnow
from worker.ledger.revocation_answers import RevocationAnswerCorruptError, checked_der
from worker.ledger.schema import audit_log, revocation_answers

GENESIS = "0" * 64
_ADVISORY_LOCK_KEY = 0x766E6964  # "vnid": one chain per ledger database
_HASHED_FIELDS = (
    "at",
    "actor",
    "event",
    "ma_lk",
    "version_id",
    "destination",
    "request_hash",
    "http_status",
    "ma_ket_qua",
    "ma_giao_dich",
    "thoi_gian_tiep_nhan",
    "detail",
)


def default_actor() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event: str
    ma_lk: str | None = None
    version_id: int | None = None
    destination: str | None = None
    request_hash: str | None = None
    http_status: int | None = None
    ma_ket_qua: str | None = None
    ma_giao_dich: str | None = None
    thoi_gian_tiep_nhan: str | None = None
    detail: dict[str, object] = field(default_factory=dict)


def _canonical(row: dict[str, object]) -> bytes:
    values = {}
    for name in _HASHED_FIELDS:
        value = row.get(name)
        if isinstance(value, datetime):
            value = as_utc(value).isoformat(timespec="microseconds")  # type: ignore[union-attr]  # not None here
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def row_hash(prev_hash: str, row: dict[str, object]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + _canonical(row)).hexdigest()


def _lock_chain(conn: sa.Connection) -> None:
    if is_postgresql(conn):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    # SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE).


def append(conn: sa.Connection, events: Sequence[AuditEvent], *, actor: str | None = None) -> None:
    """Append events in order, inside the caller's transaction (the lock is held until it commits)."""
    if not events:
        return
    _lock_chain(conn)
    prev = conn.execute(sa.select(audit_log.c.row_hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
    prev = prev or GENESIS
    now = utcnow()
    who = actor or default_actor()
    rows = []
    for event in events:
        row: dict[str, object] = {
            "at": now,
            "actor": who,
            "event": event.event,
            "ma_lk": event.ma_lk,
            "version_id": event.version_id,
            "destination": event.destination,
            "request_hash": event.request_hash,
            "http_status": event.http_status,
            "ma_ket_qua": event.ma_ket_qua,
            "ma_giao_dich": event.ma_giao_dich,
            "thoi_gian_tiep_nhan": event.thoi_gian_tiep_nhan,
            "detail": json.dumps(event.detail, sort_keys=True, ensure_ascii=False) if event.detail else None,
        }
        row["prev_hash"] = prev
        row["row_hash"] = prev = row_hash(prev, row)
        rows.append(row)
    conn.execute(sa.insert(audit_log), rows)


@dataclass(frozen=True, slots=True)
class AnswerFault:
    """A revocation answer that signed events name but the ledger no longer holds as named."""

    sha256: str  # as the signed events name it (``revocation.answer_sha256``)
    problem: Literal["missing", "altered"]  # no row; or the row's bytes do not decompress or hash to it
    reason: str  # one line: why it counts as altered; empty when missing
    events: int  # how many verified signed events name it
    #: The first of them, in chain order: (audit event id, version id). The rest: ``events`` says how many.
    named_by: tuple[tuple[int, int | None], ...]


#: A signed event's use of an answer: (the event's time, its audit event id, its version id).
Use = tuple[datetime, int, int | None]


@dataclass(frozen=True, slots=True)
class AnswerUse:
    """When the verified ``signed`` events of one certificate relied on one kept answer."""

    cert_serial: str | None  # hex, as the events record it (``cert_serial``)
    events: int
    first: Use  # the earliest event (by time)
    last: Use  # the latest


class UseJudge(Protocol):
    """Whether a kept answer held at the time signed events relied on it, from its own bytes: ``None`` when it
    did, otherwise one line saying why not. Today's date plays no part: an answer speaks for a few days, and
    is judged years later. The ledger does not read OCSP or CRL; ``audit verify`` passes the revocation
    adapter's (``adapters.signers.revocation.at_use.held_at_use``)."""

    def __call__(
        self, kind: str, der: bytes, *, cert_serial: str | None, first_use: datetime, last_use: datetime
    ) -> str | None: ...


@dataclass(frozen=True, slots=True)
class UseFault:
    """A kept, intact answer that did not hold when signed events relied on it (used after its nextUpdate,
    before its thisUpdate, after the revocation it lists, or not about their certificate)."""

    sha256: str
    use: AnswerUse
    reason: str  # the judge's line


@dataclass(frozen=True, slots=True)
class AnswerCheck:
    """The revocation answers the verified ``signed`` events name (``revocation.answer_sha256``), checked."""

    named: int = 0  # distinct answers named
    events: int = 0  # signed events that name one
    faults: tuple[AnswerFault, ...] = ()
    #: With a judge: (answer, certificate) pairs judged at their time of use, and those that did not hold.
    judged: int = 0
    use_faults: tuple[UseFault, ...] = ()


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows_checked: int  # rows verified (before the first bad row when the chain is broken)
    bad_row_id: int | None = None
    reason: str | None = None
    answers: AnswerCheck = AnswerCheck()  # over the verified rows only: a row after a break proves nothing

    @property
    def chain_intact(self) -> bool:
        return self.bad_row_id is None

    @property
    def ok(self) -> bool:
        return self.chain_intact and not self.answers.faults and not self.answers.use_faults


#: How many (event id, version id) a fault names. Enough to start from; the count says how many there are,
#: and keeping them all would hold millions of ids in memory on a ledger whose only CRL went missing.
NAMED_BY_SHOWN = 5
#: Kept answers read at a time while checking them: a CRL can be megabytes.
_ANSWERS_PER_FETCH = 8


@dataclass(slots=True)
class _Uses:
    """The signed events of one certificate that relied on one answer: how many, the earliest and the latest."""

    events: int
    first: Use
    last: Use

    def add(self, use: Use) -> None:
        self.events += 1
        if use[0] < self.first[0]:
            self.first = use
        if use[0] >= self.last[0]:
            self.last = use


@dataclass(slots=True)
class _Naming:
    events: int = 0
    named_by: list[tuple[int, int | None]] = field(default_factory=list)
    #: By certificate serial: one per answer (an OCSP response), or a few (certificates rotated under one
    #: CRL), however many events rely on it.
    uses: dict[str | None, _Uses] = field(default_factory=dict)


def verify_chain(conn: sa.Connection, *, batch: int = 5000, judge: UseJudge | None = None) -> ChainReport:
    """Walk the chain in id order; report the first row whose content or link does not match. The revocation
    answers that the signed events of the verified rows name are then checked in one query
    (``_check_answers``): each must be kept, and its stored bytes must still hash to the name; with ``judge``,
    each intact one must also have held at the time of the events that relied on it (``UseJudge``)."""
    prev = GENESIS
    checked = 0
    last_id = 0
    names: dict[str, _Naming] = {}
    columns = [audit_log.c.id, audit_log.c.prev_hash, audit_log.c.row_hash] + [
        audit_log.c[name] for name in _HASHED_FIELDS
    ]
    while True:
        chunk = conn.execute(
            sa.select(*columns).where(audit_log.c.id > last_id).order_by(audit_log.c.id).limit(batch)
        ).mappings()
        rows: Iterable[sa.RowMapping] = list(chunk)
        if not rows:
            return ChainReport(checked, answers=_check_answers(conn, names, judge))
        for row in rows:
            if row["prev_hash"] != prev:
                reason = "link broken: a row before it was deleted or altered"
                return ChainReport(checked, row["id"], reason, _check_answers(conn, names, judge))
            expected = row_hash(prev, dict(row))
            if row["row_hash"] != expected:
                reason = "content altered: the row hash does not match"
                return ChainReport(checked, row["id"], reason, _check_answers(conn, names, judge))
            _note_answer(names, row)
            prev = row["row_hash"]
            last_id = row["id"]
            checked += 1


def _note_answer(names: dict[str, _Naming], row: sa.RowMapping) -> None:
    """Remember the answer a verified ``signed`` event names (by ``revocation.answer_sha256``), if any, and
    when that event's certificate relied on it (the event's time)."""
    detail = row["detail"]
    # A substring test before json.loads: most rows are not signed events that name an answer.
    if row["event"] != "signed" or not detail or '"answer_sha256"' not in detail:
        return
    signing = json.loads(detail)
    revocation = signing.get("revocation")
    sha256 = revocation.get("answer_sha256") if isinstance(revocation, dict) else None
    if sha256 is None:
        return
    naming = names.setdefault(str(sha256), _Naming())
    naming.events += 1
    if len(naming.named_by) < NAMED_BY_SHOWN:
        naming.named_by.append((row["id"], row["version_id"]))
    serial = signing.get("cert_serial")
    certificate = None if serial is None else str(serial)
    use: Use = (_aware(row["at"]), row["id"], row["version_id"])
    uses = naming.uses.get(certificate)
    if uses is None:
        naming.uses[certificate] = _Uses(1, use, use)
    else:
        uses.add(use)


def _aware(moment: datetime) -> datetime:
    """``at`` (NOT NULL) as aware UTC: SQLite returns it naive."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_answers(conn: sa.Connection, names: dict[str, _Naming], judge: UseJudge | None) -> AnswerCheck:
    """One query for every distinct answer named, streamed (a CRL can be megabytes): a name without a row is
    ``missing``; a row whose bytes do not decompress or hash to its name is ``altered``. With ``judge``, an
    intact answer is judged once per certificate at the earliest and latest of the events relying on it:
    an answer's period is one interval, so every use between them held when those two did."""
    if not names:
        return AnswerCheck()
    kept = (
        sa.select(
            revocation_answers.c.sha256,
            revocation_answers.c.kind,
            revocation_answers.c.der,
            revocation_answers.c.compression,
        )
        .where(_among(conn, revocation_answers.c.sha256, sorted(names)))
        .execution_options(yield_per=_ANSWERS_PER_FETCH)
    )
    faults: list[AnswerFault] = []
    use_faults: list[UseFault] = []
    judged = 0
    found: set[str] = set()
    for row in conn.execute(kept):
        found.add(row.sha256)
        try:
            der = checked_der(row.sha256, row.der, row.compression)
        except RevocationAnswerCorruptError as exc:
            reason = str(exc).removeprefix(f"revocation answer {row.sha256}: ")
            faults.append(_fault(row.sha256, "altered", reason, names[row.sha256]))
            continue
        if judge is None:
            continue
        for serial, uses in names[row.sha256].uses.items():
            judged += 1
            said = judge(row.kind, der, cert_serial=serial, first_use=uses.first[0], last_use=uses.last[0])
            if said is not None:
                use = AnswerUse(serial, uses.events, uses.first, uses.last)
                use_faults.append(UseFault(row.sha256, use, said))
    faults += [_fault(sha256, "missing", "", names[sha256]) for sha256 in names.keys() - found]
    faults.sort(key=lambda fault: fault.named_by[0][0])  # chain order of the first event naming each
    use_faults.sort(key=lambda fault: fault.use.first[1])
    return AnswerCheck(
        named=len(names),
        events=sum(naming.events for naming in names.values()),
        faults=tuple(faults),
        judged=judged,
        use_faults=tuple(use_faults),
    )


def _fault(sha256: str, problem: Literal["missing", "altered"], reason: str, naming: _Naming) -> AnswerFault:
    return AnswerFault(sha256, problem, reason, naming.events, tuple(naming.named_by))


def _among(conn: sa.Connection, column: sa.ColumnElement[str], values: list[str]) -> sa.ColumnElement[bool]:
    """``column`` is one of ``values``, bound as one parameter however many there are. An IN list binds one
    parameter per value, and the named answers grow by one or more per worker process and day (each fetches its
    own OCSP answer), thousands a year, towards the limits (PostgreSQL 65535 parameters, SQLite 32766)."""
    if is_postgresql(conn):
        return column == sa.any_(sa.bindparam("values", values, type_=postgresql.ARRAY(sa.String)))
    listed = sa.func.json_each(sa.bindparam("values", json.dumps(values))).table_valued("value")
    return column.in_(sa.select(listed.c.value))


# ------------------------------------------------------------------------------------------------ anchors
#
# The chain proves that no row was edited or deleted in place, but not that the whole chain was not rewritten:
# someone with the database owner's rights can lift the triggers and recompute every hash from the first row
# altered onwards. An anchor is the chain's head written down somewhere that owner does not control (an
# e-mail to the director, another system's webhook, an inspector's copy); a rewrite up to an anchored event
# changes that event's row hash, which ``check_anchors`` then finds.

#: The keys of an anchor, as ``Anchor.as_dict`` writes them (sorted in the JSON line).
ANCHOR_KEYS = ("at", "event_id", "events", "facility_code", "row_hash", "software")


def software() -> str:
    """``vneid-sync 0.1.0``: the release that wrote an anchor, without a local build suffix (``+g…``)."""
    return f"vneid-sync {__version__.split('+', 1)[0]}"


@dataclass(frozen=True, slots=True)
class Anchor:
    """The chain's head at ``at``: its last event, that event's row hash and how many events it held."""

    event_id: int
    row_hash: str
    events: int
    at: datetime
    facility_code: str
    software: str

    def as_dict(self) -> dict[str, object]:
        return {
            "at": _in_utc(self.at).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "event_id": self.event_id,
            "events": self.events,
            "facility_code": self.facility_code,
            "row_hash": self.row_hash,
            "software": self.software,
        }

    def line(self) -> str:
        """One JSON line, keys sorted, no spaces: what ``audit anchor`` prints and ``--append`` keeps."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))


def chain_head(conn: sa.Connection, *, facility_code: str, software: str, at: datetime) -> Anchor | None:
    """The anchor of the chain as committed now, or ``None`` for an empty chain. Appends are serialised and
    commit in id order (``append``), so the rows up to the last id are the whole chain it heads."""
    head = conn.execute(
        sa.select(audit_log.c.id, audit_log.c.row_hash).order_by(audit_log.c.id.desc()).limit(1)
    ).first()
    if head is None:
        return None
    # Bounded by the head's id: a row committed between the two statements is not counted.
    events = conn.execute(sa.select(sa.func.count()).where(audit_log.c.id <= head.id)).scalar_one()
    return Anchor(head.id, head.row_hash, int(events), at, facility_code, software)


class AnchorFormatError(ValueError):
    """A line of an anchors file is not an anchor (the message says why; never the line itself)."""


def parse_anchor(text: str) -> Anchor:
    """One anchor line back into an ``Anchor``. Any JSON object with the keys is accepted (a receiver may have
    stored the webhook's ``detail`` re-serialised): only ``event_id`` and ``row_hash`` are checked later."""
    try:
        data = json.loads(text)
    except ValueError:
        raise AnchorFormatError("not JSON") from None
    if not isinstance(data, dict):
        raise AnchorFormatError("not a JSON object")
    missing = [key for key in ANCHOR_KEYS if key not in data]
    if missing:
        raise AnchorFormatError(f"missing {', '.join(missing)}")
    event_id, events, digest = data["event_id"], data["events"], data["row_hash"]
    if type(event_id) is not int or event_id < 1 or type(events) is not int or events < 1:
        raise AnchorFormatError("event_id and events must be positive integers")
    if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise AnchorFormatError("row_hash must be 64 lower-case hex digits")
    try:
        at = datetime.fromisoformat(str(data["at"]))
    except ValueError:
        raise AnchorFormatError("at is not an ISO 8601 time") from None
    return Anchor(event_id, digest, events, _in_utc(at), str(data["facility_code"]), str(data["software"]))


def _in_utc(moment: datetime) -> datetime:
    """An aware UTC time; a naive one is taken as UTC already (as the ledger stores times)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class AnchorFault:
    """An anchor the ledger no longer matches: the chain was rewritten up to it, or cut short before it."""

    line: int  # 1-based line of the anchors file
    anchor: Anchor
    problem: Literal["missing", "mismatch"]  # no event with that id; or its row hash differs
    found_hash: str | None = None  # the ledger's row hash of that event (``mismatch``)


def check_anchors(conn: sa.Connection, anchors: Sequence[tuple[int, Anchor]]) -> tuple[AnchorFault, ...]:
    """Each (line, anchor) against the event with the anchor's id, in one query for every id: a missing event
    or a different row hash is a fault. ``verify_chain`` proves the chain links up to its head; this proves
    the chain is still the one that was anchored (a consistent rewrite passes the first, not this)."""
    ids = sorted({anchor.event_id for _, anchor in anchors})
    if not ids:
        return ()
    found = {
        row.id: row.row_hash
        for row in conn.execute(
            sa.select(audit_log.c.id, audit_log.c.row_hash).where(_among_ids(conn, audit_log.c.id, ids))
        )
    }
    faults: list[AnchorFault] = []
    for line, anchor in anchors:
        stored = found.get(anchor.event_id)
        if stored is None:
            faults.append(AnchorFault(line, anchor, "missing"))
        elif stored != anchor.row_hash:
            faults.append(AnchorFault(line, anchor, "mismatch", stored))
    return tuple(faults)


def _among_ids(conn: sa.Connection, column: sa.ColumnElement[int], ids: list[int]) -> sa.ColumnElement[bool]:
    """``_among`` for integer ids: one bound parameter however many anchors a file holds (hourly anchors
    over years would pass the parameter limits of an IN list)."""
    if is_postgresql(conn):
        return column == sa.any_(sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.BigInteger)))
    listed = sa.func.json_each(sa.bindparam("ids", json.dumps(ids))).table_valued("value")
    return column.in_(sa.select(listed.c.value))
