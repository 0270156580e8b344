"""Ledger operations, each inside the caller's transaction. Plain SQLAlchemy Core, batched per call.

Every state change appends its audit events in the same transaction, so the ledger and the audit log can
never disagree. Callers (the pipeline services) hold no state of their own: they read what they need here.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa

from worker.domain import derive_ma_lk
from worker.ledger import audit
from worker.ledger.audit import AuditEvent
from worker.ledger.db import as_utc, utcnow
from worker.ledger.schema import checkpoints, destination_status, encounters, evidence, versions
from worker.ledger.states import ACTIVE, State
from worker.ports import Cursor, EncounterRef

T = TypeVar("T")
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


def due_version_ids(conn: sa.Connection, *, limit: int, lost_after: timedelta) -> list[int]:
    """The recovery outbox: active versions that are due, unleased, and not enqueued recently (or whose
    message must have been lost: enqueued more than ``lost_after`` ago without being processed)."""
    now = utcnow()
    rows = conn.execute(
        sa.select(versions.c.id)
        .where(
            versions.c.state.in_([s.value for s in ACTIVE]),
            sa.or_(versions.c.next_attempt_at.is_(None), versions.c.next_attempt_at <= now),
            sa.or_(versions.c.lease_until.is_(None), versions.c.lease_until < now),
            sa.or_(versions.c.enqueued_at.is_(None), versions.c.enqueued_at < now - lost_after),
        )
        .order_by(versions.c.id)
        .limit(limit)
    )
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


def _set_encounter_state(conn: sa.Connection, ma_lk: str, version_id: int, state: State) -> None:
    values: dict[str, object] = {"current_version_id": version_id, "state": state}
    if state is State.ACCEPTED:
        values["accepted_at"] = utcnow()
    conn.execute(sa.update(encounters).where(encounters.c.ma_lk == ma_lk).values(**values))


def record_built(
    conn: sa.Connection, item: WorkItem, *, content_hash: str, tables: Sequence[str], warnings: Sequence[str]
) -> State:
    """A built payload: a new version, or ``unchanged`` when the same content already has a version."""
    now = utcnow()
    twin = conn.execute(
        sa.select(versions.c.id, versions.c.state).where(
            versions.c.ma_lk == item.ma_lk,
            versions.c.content_hash == content_hash,
            versions.c.id != item.version_id,
        )
    ).first()
    if twin is not None:
        conn.execute(
            sa.update(versions)
            .where(versions.c.id == item.version_id)
            .values(state=State.UNCHANGED, updated_at=now, lease_until=None)
        )
        twin_state = State(twin.state)
        if twin_state is State.SUPERSEDED:
            # The content went back to an earlier version that was never accepted: send that one again.
            conn.execute(
                sa.update(versions)
                .where(versions.c.id == twin.id)
                .values(state=State.SIGNED, next_attempt_at=None, updated_at=now)
            )
            twin_state = State.SIGNED
        _set_encounter_state(conn, item.ma_lk, twin.id, twin_state)
        audit.append(
            conn,
            [
                AuditEvent(
                    "unchanged", ma_lk=item.ma_lk, version_id=item.version_id, detail={"same_as": twin.id}
                )
            ],
        )
        return State.UNCHANGED
    conn.execute(
        sa.update(versions)
        .where(versions.c.id == item.version_id)
        .values(
            state=State.BUILT,
            content_hash=content_hash,
            tables=",".join(tables),
            updated_at=now,
            issues={"warnings": list(warnings)} if warnings else None,
        )
    )
    superseded = conn.execute(
        sa.update(versions)
        .where(
            versions.c.ma_lk == item.ma_lk,
            versions.c.id != item.version_id,
            versions.c.state.in_([s.value for s in ACTIVE | {State.REJECTED, State.QUARANTINED, State.DEAD}]),
        )
        .values(state=State.SUPERSEDED, updated_at=now, lease_until=None)
        .returning(versions.c.id)
    ).all()
    _set_encounter_state(conn, item.ma_lk, item.version_id, State.BUILT)
    events = [
        AuditEvent(
            "built",
            ma_lk=item.ma_lk,
            version_id=item.version_id,
            request_hash=content_hash,
            detail={"tables": list(tables)},
        )
    ]
    events += [AuditEvent("superseded", ma_lk=item.ma_lk, version_id=row.id) for row in superseded]
    audit.append(conn, events)
    return State.BUILT


def record_quarantined(
    conn: sa.Connection, item: WorkItem, *, source_hash: str, issues: list[dict[str, object]]
) -> None:
    """Failed validation: kept with table/field/rule/hint of every error (never the value itself)."""
    now = utcnow()
    twin = conn.execute(
        sa.select(versions.c.id).where(
            versions.c.ma_lk == item.ma_lk,
            versions.c.content_hash == source_hash,
            versions.c.id != item.version_id,
        )
    ).first()
    conn.execute(
        sa.update(versions)
        .where(versions.c.id == item.version_id)
        .values(
            state=State.UNCHANGED if twin else State.QUARANTINED,
            content_hash=None if twin else source_hash,
            issues={"errors": issues},
            last_error_code=str(issues[0].get("rule")) if issues else "validation",
            updated_at=now,
            lease_until=None,
        )
    )
    if twin is None:
        _set_encounter_state(conn, item.ma_lk, item.version_id, State.QUARANTINED)
    audit.append(
        conn,
        [
            AuditEvent(
                "quarantined",
                ma_lk=item.ma_lk,
                version_id=item.version_id,
                detail={"rules": sorted({str(i.get("rule")) for i in issues})},
            )
        ],
    )


def record_missing_in_his(conn: sa.Connection, item: WorkItem) -> None:
    """``load()`` found nothing: the HIS hid the encounter between discovery and build."""
    now = utcnow()
    conn.execute(
        sa.update(versions)
        .where(versions.c.id == item.version_id)
        .values(state=State.SUPERSEDED, last_error_code="his:not-found", updated_at=now, lease_until=None)
    )
    conn.execute(
        sa.update(encounters)
        .where(encounters.c.ma_lk == item.ma_lk)
        .values(state=State.HIDDEN, hidden_at=now)
    )
    audit.append(conn, [AuditEvent("hidden", ma_lk=item.ma_lk, version_id=item.version_id)])


def record_signed(
    conn: sa.Connection, item: WorkItem, *, signed: bytes, signed_sha256: str, cert_serial: str
) -> None:
    """Keep the exact signed bytes before any attempt: resubmissions send these bytes, never a rebuild."""
    now = utcnow()
    conn.execute(
        sa.insert(evidence).values(
            version_id=item.version_id,
            signed_sha256=signed_sha256,
            signed_document=zlib.compress(signed, 6),
            compression="zlib",
            stored_at=now,
        )
    )
    conn.execute(
        sa.update(versions)
        .where(versions.c.id == item.version_id)
        .values(state=State.SIGNED, signed_sha256=signed_sha256, cert_serial=cert_serial, updated_at=now)
    )
    _set_encounter_state(conn, item.ma_lk, item.version_id, State.SIGNED)
    audit.append(
        conn,
        [
            AuditEvent(
                "signed",
                ma_lk=item.ma_lk,
                version_id=item.version_id,
                request_hash=signed_sha256,
                detail={"cert_serial": cert_serial},
            )
        ],
    )


def signed_document(conn: sa.Connection, version_id: int) -> bytes | None:
    row = conn.execute(
        sa.select(evidence.c.signed_document, evidence.c.compression).where(
            evidence.c.version_id == version_id
        )
    ).first()
    if row is None:
        return None
    return zlib.decompress(row.signed_document) if row.compression == "zlib" else bytes(row.signed_document)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one gateway attempt means for a version (decided by the delivery policy)."""

    state: State
    error_code: str | None = None
    next_attempt_at: datetime | None = None


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
) -> None:
    now = utcnow()
    values: dict[str, object] = {
        "state": result.state,
        "attempts": versions.c.attempts + 1,
        "next_attempt_at": result.next_attempt_at,
        "last_error_code": result.error_code,
        "lease_until": None,
        "lease_owner": None,
        "updated_at": now,
    }
    if result.state in (State.ACCEPTED, State.REJECTED):
        values.update(
            ma_ket_qua=ma_ket_qua, ma_giao_dich=ma_giao_dich, thoi_gian_tiep_nhan=thoi_gian_tiep_nhan
        )
    if result.state is State.ACCEPTED:
        values["accepted_at"] = now
    conn.execute(sa.update(versions).where(versions.c.id == item.version_id).values(**values))
    if result.state in (State.ACCEPTED, State.REJECTED):
        # The receipt (thongDiep may echo personal data) lives with the evidence, not in logs or audit rows.
        conn.execute(
            sa.update(evidence).where(evidence.c.version_id == item.version_id).values(receipt=receipt)
        )
    _set_encounter_state(conn, item.ma_lk, item.version_id, result.state)
    audit.append(
        conn,
        [
            AuditEvent(
                "attempt",
                ma_lk=item.ma_lk,
                version_id=item.version_id,
                destination=destination,
                request_hash=request_hash,
                http_status=http_status,
                ma_ket_qua=ma_ket_qua,
                ma_giao_dich=ma_giao_dich,
                thoi_gian_tiep_nhan=thoi_gian_tiep_nhan,
                detail={"result": result.state.value, "error": result.error_code, "duplicate": duplicate},
            )
        ],
    )


def defer(conn: sa.Connection, items: Sequence[WorkItem], *, reason: str, until: datetime | None) -> None:
    """Leave versions as they are (e.g. the destination is stopped) and release them."""
    for item in items:
        conn.execute(
            sa.update(versions)
            .where(versions.c.id == item.version_id)
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
