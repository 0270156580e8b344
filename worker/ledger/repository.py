"""Ledger operations, each inside the caller's transaction. Plain SQLAlchemy Core, batched per call.

Every state change appends its audit events in the same transaction, so the ledger and the audit log can
never disagree. Callers (the pipeline services) hold no state of their own: they read what they need here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa

from schemas.domain import derive_ma_lk
from schemas.ports import Cursor, EncounterRef
from worker.ledger import audit, evidence_store, revocation_answers
from worker.ledger.audit import AuditEvent
from worker.ledger.db import as_utc, utcnow
from worker.ledger.evidence_crypto import EvidenceKeys
from worker.ledger.revocation_answers import RevocationAnswer
from worker.ledger.schema import checkpoints, destination_status, encounters, evidence, versions
from worker.ledger.states import ACTIVE, State

T = TypeVar("T")
K = TypeVar("K")
_CHUNK = 500  # keeps IN (...) lists and executemany batches at a size every dialect handles well


def _chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ------------------------------------------------------------------------------------------ discovery


@dataclass(frozen=True, slots=True)
class Registration:
    new_encounters: int
    changed_encounters: int
    version_ids: list[int]


def register_refs(
    conn: sa.Connection, refs: Sequence[EncounterRef], *, facility_code: str, reason: str = "discovered"
) -> Registration:
    """Record completed encounters the HIS showed; open a ``discovered`` version for each new or changed one."""
    now = utcnow()
    by_ma_lk = {derive_ma_lk(facility_code, ref.his_key): ref for ref in refs}
    known: dict[str, sa.Row[tuple[str, datetime | None, str]]] = {}
    for chunk in _chunks(list(by_ma_lk)):
        rows = conn.execute(
            sa.select(encounters.c.ma_lk, encounters.c.his_changed_at, encounters.c.state).where(
                encounters.c.ma_lk.in_(chunk)
            )
        )
        known.update({row.ma_lk: row for row in rows})
    inserts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    opened: list[str] = []
    for ma_lk, ref in by_ma_lk.items():
        row = known.get(ma_lk)
        values = {
            "his_key": ref.his_key,
            "completed_at": as_utc(ref.completed_at),
            "his_changed_at": as_utc(ref.changed_at),
            "visit_type": ref.visit_type,
            "department": ref.department,
            "insured": ref.insured,
        }
        if row is None:
            inserts.append({"ma_lk": ma_lk, **values, "state": State.DISCOVERED, "first_seen_at": now})
            opened.append(ma_lk)
        elif row.state == State.HIDDEN or (as_utc(row.his_changed_at) or now) < (
            as_utc(ref.changed_at) or now
        ):
            updates.append({"b_ma_lk": ma_lk, **values})
            opened.append(ma_lk)
    if inserts:
        conn.execute(sa.insert(encounters), inserts)
    if updates:
        conn.execute(
            sa.update(encounters)
            .where(encounters.c.ma_lk == sa.bindparam("b_ma_lk"))
            .values(
                his_key=sa.bindparam("his_key"),
                completed_at=sa.bindparam("completed_at"),
                his_changed_at=sa.bindparam("his_changed_at"),
                visit_type=sa.bindparam("visit_type"),
                department=sa.bindparam("department"),
                insured=sa.bindparam("insured"),
                hidden_at=None,
            ),
            updates,
        )
    version_ids = _open_versions(conn, opened, by_ma_lk, now) if opened else []
    audit.append(
        conn,
        [
            AuditEvent(reason, ma_lk=ma_lk, version_id=vid)
            for ma_lk, vid in zip(opened, version_ids, strict=True)
        ],
    )
    return Registration(len(inserts), len(updates), version_ids)


def _open_versions(
    conn: sa.Connection, ma_lks: list[str], refs: dict[str, EncounterRef], now: datetime
) -> list[int]:
    ids: list[int] = []
    for chunk in _chunks(ma_lks):
        rows = [
            {
                "ma_lk": ma_lk,
                "state": State.DISCOVERED,
                "attempts": 0,
                "his_changed_at": as_utc(refs[ma_lk].changed_at),
                "created_at": now,
                "updated_at": now,
            }
            for ma_lk in chunk
        ]
        result = conn.execute(sa.insert(versions).returning(versions.c.id, versions.c.ma_lk), rows)
        by_ma_lk = {row.ma_lk: row.id for row in result}
        ids.extend(by_ma_lk[ma_lk] for ma_lk in chunk)
    # An encounter with no accepted version yet shows the state of its newest version.
    conn.execute(
        sa.update(encounters)
        .where(encounters.c.ma_lk.in_(ma_lks), encounters.c.state != State.ACCEPTED)
        .values(state=State.DISCOVERED)
    )
    return ids


def mark_hidden(conn: sa.Connection, ma_lks: Sequence[str]) -> int:
    """Encounters the HIS no longer lists as completed: reported by coverage, never silently dropped."""
    if not ma_lks:
        return 0
    now = utcnow()
    count = 0
    for chunk in _chunks(list(ma_lks)):
        result = conn.execute(
            sa.update(encounters)
            .where(encounters.c.ma_lk.in_(chunk), encounters.c.hidden_at.is_(None))
            .values(hidden_at=now, state=State.HIDDEN)
        )
        count += result.rowcount
    audit.append(conn, [AuditEvent("hidden", ma_lk=ma_lk) for ma_lk in ma_lks])
    return count


def known_ma_lks(conn: sa.Connection, start: datetime, end: datetime) -> set[str]:
    rows = conn.execute(
        sa.select(encounters.c.ma_lk).where(
            encounters.c.completed_at >= as_utc(start), encounters.c.completed_at < as_utc(end)
        )
    )
    return {row.ma_lk for row in rows}


# --------------------------------------------------------------------------------------- work queue


@dataclass(frozen=True, slots=True)
class WorkItem:
    version_id: int
    ma_lk: str
    his_key: str
    state: State
    attempts: int
    content_hash: str | None


def claim(conn: sa.Connection, version_ids: Sequence[int], *, owner: str, lease: timedelta) -> list[WorkItem]:
    """Lease the active, unleased versions among ``version_ids``; already-done or leased ones are skipped."""
    now = utcnow()
    claimed: list[int] = []
    for chunk in _chunks(list(version_ids)):
        result = conn.execute(
            sa.update(versions)
            .where(
                versions.c.id.in_(chunk),
                versions.c.state.in_([s.value for s in ACTIVE]),
                sa.or_(versions.c.lease_until.is_(None), versions.c.lease_until < now),
            )
            .values(lease_until=now + lease, lease_owner=owner[:100], updated_at=now)
            .returning(versions.c.id)
        )
        claimed.extend(row.id for row in result)
    return read_items(conn, claimed) if claimed else []


def read_items(conn: sa.Connection, version_ids: Sequence[int]) -> list[WorkItem]:
    """Re-read versions (e.g. after the build step) without touching their leases."""
    items: list[WorkItem] = []
    for chunk in _chunks(list(version_ids)):
        rows = conn.execute(
            sa.select(
                versions.c.id,
                versions.c.ma_lk,
                encounters.c.his_key,
                versions.c.state,
                versions.c.attempts,
                versions.c.content_hash,
            )
            .join(encounters, encounters.c.ma_lk == versions.c.ma_lk)
            .where(versions.c.id.in_(chunk))
            .order_by(versions.c.id)
        )
        items.extend(
            WorkItem(r.id, r.ma_lk, r.his_key, State(r.state), r.attempts, r.content_hash) for r in rows
        )
    return items


def due_version_ids(
    conn: sa.Connection, *, limit: int, lost_after: timedelta, broker_capacity: int | None = None
) -> list[int]:
    """The recovery outbox: active versions that are due, unleased, and not enqueued recently (or whose
    message must have been lost: enqueued more than ``lost_after`` ago without being processed).

    ``broker_capacity`` is how many versions the messages waiting in the broker can hold (queued messages ×
    batch size), ``None`` when unknown. A long backlog makes messages wait longer than ``lost_after`` without
    being lost: overdue versions are counted as lost only when there are more of them than the broker could
    be holding (a flushed or restarted broker). A partial loss inside a long backlog is found as it drains."""
    now = utcnow()
    due = sa.and_(
        versions.c.state.in_([s.value for s in ACTIVE]),
        sa.or_(versions.c.next_attempt_at.is_(None), versions.c.next_attempt_at <= now),
        sa.or_(versions.c.lease_until.is_(None), versions.c.lease_until < now),
    )
    overdue = versions.c.enqueued_at < now - lost_after
    waiting: sa.ColumnElement[bool] = versions.c.enqueued_at.is_(None)
    if broker_capacity is None:
        waiting = sa.or_(waiting, overdue)
    else:
        overdue_count = conn.execute(sa.select(sa.func.count()).where(due, overdue)).scalar_one()
        if overdue_count > broker_capacity:
            waiting = sa.or_(waiting, overdue)
    rows = conn.execute(sa.select(versions.c.id).where(due, waiting).order_by(versions.c.id).limit(limit))
    return [row.id for row in rows]


def mark_enqueued(conn: sa.Connection, version_ids: Sequence[int], *, at: datetime | None = None) -> None:
    """Note when a message for these versions is expected to run (now, or a retry's ETA)."""
    when = as_utc(at) or utcnow()
    for chunk in _chunks(list(version_ids)):
        conn.execute(sa.update(versions).where(versions.c.id.in_(chunk)).values(enqueued_at=when))


def release(conn: sa.Connection, version_ids: Sequence[int]) -> None:
    for chunk in _chunks(list(version_ids)):
        conn.execute(
            sa.update(versions).where(versions.c.id.in_(chunk)).values(lease_until=None, lease_owner=None)
        )


# ------------------------------------------------------------------------------------ state changes
#
# Each ``record_*_many`` handles a whole batch with a fixed number of statements (executemany for per-row
# values) and one audit append, whatever the batch size: per-row UPDATEs and one chain-head read per event were
# half of the worker's CPU per encounter. The singular forms are the same code with a batch of one.


def _rounds(entries: Sequence[T], key: Callable[[T], K]) -> Iterator[list[T]]:
    """Split ``entries`` into consecutive rounds in which every key occurs once, keeping their order.

    Two versions of one encounter in the same batch must be recorded one after the other (the later one
    supersedes the earlier), exactly as if the batch were processed row by row."""
    pending = list(entries)
    while pending:
        seen: set[K] = set()
        this_round: list[T] = []
        later: list[T] = []
        for entry in pending:
            (later if key(entry) in seen else this_round).append(entry)
            seen.add(key(entry))
        yield this_round
        pending = later


def _update_by_key(
    conn: sa.Connection,
    table: sa.Table,
    key_column: str,
    rows: Sequence[dict[str, object]],
    *,
    also: dict[str, sa.ColumnElement[Any]] | None = None,
) -> None:
    """``UPDATE table SET <row's other keys>, <also> WHERE key_column = row[key_column]`` for every row, as
    one executemany per distinct set of columns (rows of a batch rarely differ in shape)."""
    by_shape: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in rows:
        shape = tuple(sorted(name for name in row if name != key_column))
        by_shape.setdefault(shape, []).append({f"b_{name}": value for name, value in row.items()})
    for shape, params in by_shape.items():
        statement = (
            sa.update(table)
            .where(table.c[key_column] == sa.bindparam(f"b_{key_column}"))
            .values({name: sa.bindparam(f"b_{name}") for name in shape})
            .values(also or {})
        )
        for chunk in _chunks(params):
            conn.execute(statement, list(chunk))


def _encounter_state(ma_lk: str, version_id: int, state: State, now: datetime) -> dict[str, object]:
    """The encounter shows its newest version's state (and when it was accepted)."""
    row: dict[str, object] = {"ma_lk": ma_lk, "current_version_id": version_id, "state": state.value}
    if state is State.ACCEPTED:
        row["accepted_at"] = now
    return row


@dataclass(frozen=True, slots=True)
class _Twin:
    """Another version of the same encounter with the same content (unique per MA_LK + content hash)."""

    id: int
    state: State
    signed: bool


def _twins(conn: sa.Connection, wanted: Sequence[tuple[WorkItem, str]]) -> dict[int, _Twin]:
    """For each (item, content hash): another version of the same encounter with that hash, by item id."""
    found: dict[int, _Twin] = {}
    for chunk in _chunks(wanted):
        by_pair = {(item.ma_lk, digest): item.version_id for item, digest in chunk}
        rows = conn.execute(
            sa.select(versions.c.id, versions.c.ma_lk, versions.c.content_hash, versions.c.state,
                      versions.c.signed_sha256)
            .where(versions.c.ma_lk.in_({ma_lk for ma_lk, _ in by_pair}),
                   versions.c.content_hash.in_({digest for _, digest in by_pair}))
        )  # fmt: skip
        for row in rows:
            own = by_pair.get((row.ma_lk, row.content_hash))
            if own is not None and own != row.id:
                found[own] = _Twin(row.id, State(row.state), row.signed_sha256 is not None)
    return found


@dataclass(frozen=True, slots=True)
class Built:
    """A payload that passed validation, ready to be signed."""

    item: WorkItem
    content_hash: str
    tables: Sequence[str] = ()
    warnings: Sequence[str] = ()


def record_built_many(conn: sa.Connection, built: Sequence[Built]) -> dict[int, State]:
    """Built payloads: each becomes a ``built`` version (superseding the encounter's older open ones), or
    ``unchanged`` when another version of the encounter has the same content. Returns version id → state."""
    states: dict[int, State] = {}
    for this_round in _rounds(built, lambda entry: entry.item.ma_lk):
        states.update(_record_built_round(conn, this_round))
    return states


def _record_built_round(conn: sa.Connection, built: Sequence[Built]) -> dict[int, State]:
    now = utcnow()
    twins = _twins(conn, [(entry.item, entry.content_hash) for entry in built])
    states: dict[int, State] = {}
    version_rows: list[dict[str, object]] = []
    encounter_rows: list[dict[str, object]] = []
    events: list[AuditEvent] = []
    fresh = [entry for entry in built if entry.item.version_id not in twins]
    for entry in built:
        item = entry.item
        twin = twins.get(item.version_id)
        if twin is None:
            continue
        version_rows.append({"id": item.version_id, "state": State.UNCHANGED.value, "updated_at": now,
                             "lease_until": None})  # fmt: skip
        twin_state = twin.state
        if twin_state is State.SUPERSEDED:
            # The content went back to an earlier version that was never accepted: send those signed bytes
            # again, or build it afresh if it was superseded before it was ever signed.
            twin_state = State.SIGNED if twin.signed else State.DISCOVERED
            version_rows.append({"id": twin.id, "state": twin_state.value, "next_attempt_at": None,
                                 "updated_at": now})  # fmt: skip
        encounter_rows.append(_encounter_state(item.ma_lk, twin.id, twin_state, now))
        events.append(
            AuditEvent("unchanged", ma_lk=item.ma_lk, version_id=item.version_id, detail={"same_as": twin.id})
        )
        states[item.version_id] = State.UNCHANGED
    for entry in fresh:
        item = entry.item
        version_rows.append({
            "id": item.version_id, "state": State.BUILT.value, "content_hash": entry.content_hash,
            "tables": ",".join(entry.tables), "updated_at": now,
            "issues": {"warnings": list(entry.warnings)} if entry.warnings else None,
        })  # fmt: skip
        encounter_rows.append(_encounter_state(item.ma_lk, item.version_id, State.BUILT, now))
        events.append(
            AuditEvent("built", ma_lk=item.ma_lk, version_id=item.version_id, request_hash=entry.content_hash,
                       detail={"tables": list(entry.tables)})
        )  # fmt: skip
        states[item.version_id] = State.BUILT
    superseded: list[tuple[int, str]] = []
    closable = [s.value for s in ACTIVE | {State.REJECTED, State.QUARANTINED, State.DEAD}]
    for chunk in _chunks(fresh):
        superseded += [(row.id, row.ma_lk) for row in conn.execute(
            sa.update(versions)
            .where(versions.c.ma_lk.in_([entry.item.ma_lk for entry in chunk]),
                   versions.c.id.not_in([entry.item.version_id for entry in chunk]),
                   versions.c.state.in_(closable))
            .values(state=State.SUPERSEDED, updated_at=now, lease_until=None)
            .returning(versions.c.id, versions.c.ma_lk)
        )]  # fmt: skip
    _update_by_key(conn, versions, "id", version_rows)
    _update_by_key(conn, encounters, "ma_lk", encounter_rows)
    events += [AuditEvent("superseded", ma_lk=ma_lk, version_id=vid) for vid, ma_lk in superseded]
    audit.append(conn, events)
    return states


def record_built(
    conn: sa.Connection, item: WorkItem, *, content_hash: str, tables: Sequence[str], warnings: Sequence[str]
) -> State:
    return record_built_many(conn, [Built(item, content_hash, tables, warnings)])[item.version_id]


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An encounter that cannot be sent as it is: its issues name table/field/rule/hint, never a value."""

    item: WorkItem
    source_hash: str
    issues: list[dict[str, object]]


def record_quarantined_many(conn: sa.Connection, quarantined: Sequence[Quarantined]) -> None:
    """Failed validation or unreadable in the HIS: kept with every error, the rest of the batch goes on. The
    same bad content seen again (same source hash) is ``unchanged`` rather than a second quarantine."""
    for this_round in _rounds(quarantined, lambda entry: entry.item.ma_lk):
        now = utcnow()
        twins = _twins(conn, [(entry.item, entry.source_hash) for entry in this_round])
        version_rows: list[dict[str, object]] = []
        encounter_rows: list[dict[str, object]] = []
        for entry in this_round:
            item, is_twin = entry.item, entry.item.version_id in twins
            version_rows.append({
                "id": item.version_id, "state": (State.UNCHANGED if is_twin else State.QUARANTINED).value,
                "content_hash": None if is_twin else entry.source_hash, "issues": {"errors": entry.issues},
                "last_error_code": str(entry.issues[0].get("rule")) if entry.issues else "validation",
                "updated_at": now, "lease_until": None,
            })  # fmt: skip
            if not is_twin:
                encounter_rows.append(_encounter_state(item.ma_lk, item.version_id, State.QUARANTINED, now))
        _update_by_key(conn, versions, "id", version_rows)
        _update_by_key(conn, encounters, "ma_lk", encounter_rows)
        audit.append(conn, [
            AuditEvent("quarantined", ma_lk=entry.item.ma_lk, version_id=entry.item.version_id,
                       detail={"rules": sorted({str(issue.get("rule")) for issue in entry.issues})})
            for entry in this_round
        ])  # fmt: skip


def record_quarantined(
    conn: sa.Connection, item: WorkItem, *, source_hash: str, issues: list[dict[str, object]]
) -> None:
    record_quarantined_many(conn, [Quarantined(item, source_hash, issues)])


def record_missing_in_his(conn: sa.Connection, items: Sequence[WorkItem]) -> None:
    """``load()`` found nothing: the HIS hid these encounters between discovery and build."""
    if not items:
        return
    now = utcnow()
    for chunk in _chunks(items):
        conn.execute(
            sa.update(versions)
            .where(versions.c.id.in_([item.version_id for item in chunk]))
            .values(state=State.SUPERSEDED, last_error_code="his:not-found", updated_at=now, lease_until=None)
        )
        conn.execute(
            sa.update(encounters)
            .where(encounters.c.ma_lk.in_([item.ma_lk for item in chunk]))
            .values(state=State.HIDDEN, hidden_at=now)
        )
    audit.append(conn, [AuditEvent("hidden", ma_lk=item.ma_lk, version_id=item.version_id) for item in items])


@dataclass(frozen=True, slots=True)
class Signed:
    """The exact signed bytes of a version: kept before any attempt, sent unchanged on every attempt."""

    item: WorkItem
    document: bytes
    sha256: str
    #: The certificate's revocation status the signature was allowed on, kept in the ``signed`` audit event.
    revocation: dict[str, object] | None = None
    #: The CA's signed answer that status was derived from: kept once in ``revocation_answers``, named in the
    #: audit event by its SHA-256 (``revocation.answer_sha256``).
    revocation_answer: RevocationAnswer | None = None


def record_signed_many(
    conn: sa.Connection, signed: Sequence[Signed], *, cert_serial: str, keys: EvidenceKeys
) -> None:
    """Keep the exact signed bytes, sealed, before any attempt: resubmissions send these bytes, never a rebuild."""
    if not signed:
        return
    now = utcnow()
    for chunk in _chunks(signed):
        conn.execute(sa.insert(evidence), [
            {"version_id": entry.item.version_id, "signed_sha256": entry.sha256, "stored_at": now,
             **evidence_store.document_columns(keys, entry.item.version_id, entry.document)}
            for entry in chunk
        ])  # fmt: skip
    _update_by_key(conn, versions, "id", [
        {"id": entry.item.version_id, "state": State.SIGNED.value, "signed_sha256": entry.sha256,
         "cert_serial": cert_serial, "updated_at": now}
        for entry in signed
    ])  # fmt: skip
    _update_by_key(conn, encounters, "ma_lk", [
        _encounter_state(entry.item.ma_lk, entry.item.version_id, State.SIGNED, now) for entry in signed
    ])  # fmt: skip
    # The answers first, in this transaction: an event never names an answer the ledger does not hold.
    revocation_answers.keep(
        conn, [entry.revocation_answer for entry in signed if entry.revocation_answer is not None], now=now
    )
    audit.append(conn, [
        AuditEvent("signed", ma_lk=entry.item.ma_lk, version_id=entry.item.version_id, request_hash=entry.sha256,
                   detail={"cert_serial": cert_serial, **_revocation_detail(entry)})
        for entry in signed
    ])  # fmt: skip


def _revocation_detail(entry: Signed) -> dict[str, object]:
    """The ``revocation`` part of a ``signed`` event: the status, and the SHA-256 of the kept answer."""
    if entry.revocation is None:
        return {}
    if entry.revocation_answer is None:
        return {"revocation": entry.revocation}
    return {"revocation": {**entry.revocation, "answer_sha256": entry.revocation_answer.sha256}}


def record_signed(
    conn: sa.Connection,
    item: WorkItem,
    *,
    signed: bytes,
    signed_sha256: str,
    cert_serial: str,
    keys: EvidenceKeys,
) -> None:
    record_signed_many(conn, [Signed(item, signed, signed_sha256)], cert_serial=cert_serial, keys=keys)


def signed_documents(conn: sa.Connection, version_ids: Sequence[int], keys: EvidenceKeys) -> dict[int, bytes]:
    """The exact signed bytes of these versions (those that have any kept; a purged one has none)."""
    found: dict[int, bytes] = {}
    for chunk in _chunks(list(version_ids)):
        rows = conn.execute(
            sa.select(*evidence_store.DOCUMENT_COLUMNS).where(
                evidence.c.version_id.in_(chunk), evidence.c.signed_document.is_not(None)
            )
        )
        for row in rows:
            found[row.version_id] = evidence_store.open_document(keys, row)
    return found


def signed_document(conn: sa.Connection, version_id: int, keys: EvidenceKeys) -> bytes | None:
    return signed_documents(conn, [version_id], keys).get(version_id)


def receipts(
    conn: sa.Connection, version_ids: Sequence[int], keys: EvidenceKeys
) -> dict[int, dict[str, object]]:
    """The gateway's final receipt of these versions (those that have one)."""
    found: dict[int, dict[str, object]] = {}
    for chunk in _chunks(list(version_ids)):
        rows = conn.execute(
            sa.select(*evidence_store.RECEIPT_COLUMNS).where(evidence.c.version_id.in_(chunk))
        )
        for row in rows:
            receipt = evidence_store.open_receipt(keys, row)
            if receipt is not None:
                found[row.version_id] = receipt
    return found


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one gateway attempt means for a version (decided by the delivery policy)."""

    state: State
    error_code: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One gateway attempt for a version: the policy's decision and the gateway's receipt fields."""

    item: WorkItem
    result: AttemptResult
    http_status: int | None
    ma_ket_qua: str | None
    ma_giao_dich: str | None
    thoi_gian_tiep_nhan: str | None
    request_hash: str
    receipt: dict[str, object]
    duplicate: bool


def record_attempts(
    conn: sa.Connection, attempts: Sequence[Attempt], *, destination: str, keys: EvidenceKeys
) -> None:
    """Every attempt lands in the audit log with the gateway's answer; final answers keep the receipt."""
    for this_round in _rounds(attempts, lambda attempt: attempt.item.version_id):
        now = utcnow()
        version_rows: list[dict[str, object]] = []
        sealed_receipts: list[dict[str, object]] = []
        for attempt in this_round:
            state = attempt.result.state
            row: dict[str, object] = {
                "id": attempt.item.version_id, "state": state.value,
                "next_attempt_at": attempt.result.next_attempt_at, "last_error_code": attempt.result.error_code,
                "lease_until": None, "lease_owner": None, "updated_at": now,
            }  # fmt: skip
            if state in (State.ACCEPTED, State.REJECTED):
                row.update(ma_ket_qua=attempt.ma_ket_qua, ma_giao_dich=attempt.ma_giao_dich,
                           thoi_gian_tiep_nhan=attempt.thoi_gian_tiep_nhan)  # fmt: skip
                # The receipt (thongDiep may echo personal data) lives sealed with the evidence, never in logs
                # or audit; the plain fields queries need are the version's columns above.
                sealed = evidence_store.receipt_columns(keys, attempt.item.version_id, attempt.receipt)
                sealed_receipts.append({"version_id": attempt.item.version_id, **sealed})
            if state is State.ACCEPTED:
                row["accepted_at"] = now
            version_rows.append(row)
        _update_by_key(conn, versions, "id", version_rows, also={"attempts": versions.c.attempts + 1})
        _update_by_key(conn, evidence, "version_id", sealed_receipts, also={"receipt": sa.null()})
        _update_by_key(conn, encounters, "ma_lk", [
            _encounter_state(attempt.item.ma_lk, attempt.item.version_id, attempt.result.state, now)
            for attempt in this_round
        ])  # fmt: skip
        audit.append(conn, [
            AuditEvent("attempt", ma_lk=attempt.item.ma_lk, version_id=attempt.item.version_id,
                       destination=destination, request_hash=attempt.request_hash,
                       http_status=attempt.http_status, ma_ket_qua=attempt.ma_ket_qua,
                       ma_giao_dich=attempt.ma_giao_dich, thoi_gian_tiep_nhan=attempt.thoi_gian_tiep_nhan,
                       detail={"result": attempt.result.state.value, "error": attempt.result.error_code,
                               "duplicate": attempt.duplicate})
            for attempt in this_round
        ])  # fmt: skip


def record_attempt(
    conn: sa.Connection,
    item: WorkItem,
    *,
    destination: str,
    result: AttemptResult,
    http_status: int | None,
    ma_ket_qua: str | None,
    ma_giao_dich: str | None,
    thoi_gian_tiep_nhan: str | None,
    request_hash: str,
    receipt: dict[str, object],
    duplicate: bool,
    keys: EvidenceKeys,
) -> None:
    attempt = Attempt(item, result, http_status, ma_ket_qua, ma_giao_dich, thoi_gian_tiep_nhan, request_hash,
                      receipt, duplicate)  # fmt: skip
    record_attempts(conn, [attempt], destination=destination, keys=keys)


def defer(conn: sa.Connection, items: Sequence[WorkItem], *, reason: str, until: datetime | None) -> None:
    """Leave versions as they are (e.g. the destination is stopped) and release them."""
    for chunk in _chunks(items):
        conn.execute(
            sa.update(versions)
            .where(versions.c.id.in_([item.version_id for item in chunk]))
            .values(lease_until=None, lease_owner=None, next_attempt_at=until, last_error_code=reason)
        )


# ----------------------------------------------------------------------------- checkpoints & status


def read_checkpoint(conn: sa.Connection, name: str) -> tuple[Cursor | None, dict[str, object] | None]:
    row = conn.execute(sa.select(checkpoints).where(checkpoints.c.name == name)).first()
    if row is None:
        return None, None
    cursor = Cursor(as_utc(row.changed_at), row.his_key) if row.changed_at is not None else None  # type: ignore[arg-type]  # not None when set
    return cursor, row.payload


def write_checkpoint(
    conn: sa.Connection, name: str, cursor: Cursor | None, payload: dict[str, object] | None = None
) -> None:
    values = {
        "changed_at": as_utc(cursor.changed_at) if cursor else None,
        "his_key": cursor.his_key if cursor else None,
        "payload": payload,
        "updated_at": utcnow(),
    }
    updated = conn.execute(sa.update(checkpoints).where(checkpoints.c.name == name).values(**values)).rowcount
    if not updated:
        conn.execute(sa.insert(checkpoints).values(name=name, **values))


def stopped_destinations(conn: sa.Connection) -> dict[str, str]:
    rows = conn.execute(
        sa.select(destination_status.c.destination, destination_status.c.reason).where(
            destination_status.c.stopped
        )
    )
    return {row.destination: row.reason or "" for row in rows}


def stop_destination(conn: sa.Connection, destination: str, reason: str) -> None:
    now = utcnow()
    updated = conn.execute(
        sa.update(destination_status)
        .where(destination_status.c.destination == destination)
        .values(stopped=True, reason=reason, since=now)
    ).rowcount
    if not updated:
        conn.execute(
            sa.insert(destination_status).values(
                destination=destination, stopped=True, reason=reason, since=now
            )
        )
    audit.append(
        conn, [AuditEvent("destination_stopped", destination=destination, detail={"reason": reason})]
    )


def record_auth_failure(conn: sa.Connection, destination: str, *, stop_after: int) -> bool:
    """Count a 401 that survived a fresh login; stop the destination when they persist. Returns stopped."""
    now = utcnow()
    updated = conn.execute(
        sa.update(destination_status)
        .where(destination_status.c.destination == destination)
        .values(auth_failures=destination_status.c.auth_failures + 1)
    ).rowcount
    if not updated:
        conn.execute(
            sa.insert(destination_status).values(
                destination=destination, stopped=False, auth_failures=1, since=now
            )
        )
    failures = conn.execute(
        sa.select(destination_status.c.auth_failures).where(destination_status.c.destination == destination)
    ).scalar_one()
    audit.append(
        conn, [AuditEvent("auth_failure", destination=destination, detail={"consecutive": failures})]
    )
    if failures >= stop_after:
        stop_destination(conn, destination, f"auth:401 x{failures}")
        return True
    return False


def clear_auth_failures(conn: sa.Connection, destination: str) -> None:
    conn.execute(
        sa.update(destination_status)
        .where(destination_status.c.destination == destination, destination_status.c.auth_failures > 0)
        .values(auth_failures=0)
    )


def resume_destination(conn: sa.Connection, destination: str) -> bool:
    updated = conn.execute(
        sa.update(destination_status)
        .where(destination_status.c.destination == destination, destination_status.c.stopped)
        .values(stopped=False, auth_failures=0, since=utcnow())
    ).rowcount
    if updated:
        audit.append(conn, [AuditEvent("destination_resumed", destination=destination)])
    return bool(updated)


def issues_json(issues: Iterable[object]) -> list[dict[str, object]]:
    """Issues as plain JSON-able dicts (dataclasses or mappings)."""
    result = []
    for issue in issues:
        if hasattr(issue, "__dataclass_fields__"):
            result.append({k: (v.value if hasattr(v, "value") else v) for k, v in asdict(issue).items()})  # type: ignore[call-overload]  # dataclass instance
        else:
            result.append(dict(issue))  # type: ignore[call-overload]  # a mapping
    return json.loads(json.dumps(result, default=str))  # type: ignore[no-any-return]  # plain JSON types
