"""Operations: `db`, `worker`, `beat`, `flower`, `discover`, `sweep`, `status`, `replay`, `quarantine`, `audit`,
`destinations`. Everything prints ids, states, codes and hashes — never personal data."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from adapters.signers.revocation.at_use import held_at_use
from schemas.ports import EncounterRef
from worker.bootstrap import build_pipeline, ledger_engine
from worker.cli.context import CliError, console, err_console, settings
from worker.ledger import audit, migrate, queries
from worker.ledger import repository as repo
from worker.ledger.audit import AuditEvent
from worker.ledger.states import State
from worker.monitoring.worker_metrics import enable_multiprocess
from worker.pipeline import delivery, discovery

db_group = typer.Typer(help="Ledger database schema (Alembic).", no_args_is_help=True)
quarantine_group = typer.Typer(
    help="Encounters that failed validation: list, show reasons, retry.", no_args_is_help=True
)
audit_group = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
destinations_group = typer.Typer(help="Gateway destinations: stopped/active, resume.", no_args_is_help=True)


def _ensure_ledger(ctx: typer.Context) -> Any:
    engine = ledger_engine(settings(ctx))
    if not migrate.is_up_to_date(engine):
        raise CliError("the ledger schema is not up to date: run `vneid-sync db upgrade`", exit_code=2)
    return engine


# ------------------------------------------------------------------------------------------------ db


@db_group.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = "head") -> None:
    """Create or upgrade the ledger schema."""
    engine = ledger_engine(settings(ctx))
    migrate.upgrade(engine, revision)
    console.print(f"ledger schema at {migrate.current_revision(engine)}")


@db_group.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the ledger's schema revision and whether it is the newest."""
    engine = ledger_engine(settings(ctx))
    current, head = migrate.current_revision(engine), migrate.head_revision()
    console.print(f"current {current or '(empty)'}; head {head}")
    if current != head:
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------- daemons


class QueueName(StrEnum):
    SUBMISSION = "submission"
    DISCOVERY = "discovery"
    BACKFILL = "backfill"


def worker_command(
    ctx: typer.Context,
    queues: Annotated[
        list[QueueName] | None, typer.Option("--queue", "-Q", help="Queues to consume.")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Worker processes.")] = 2,
    pool: Annotated[str, typer.Option(help="prefork (default), threads or solo.")] = "prefork",
    hostname: Annotated[str | None, typer.Option(help="Worker node name (-n).")] = None,
) -> None:
    """Run a Celery worker (consumes the submission and discovery queues by default)."""
    cfg = settings(ctx)
    _ensure_ledger(ctx)
    node = hostname or "worker"
    if cfg.metrics.enabled and cfg.metrics.worker_port and pool == "prefork":
        # Before Celery forks its pool: children write their samples where the main process serves them.
        enable_multiprocess(cfg.data_dir / "prometheus" / node.replace("%h", "host").replace("@", "_"))
    from worker.celery_app import app  # noqa: PLC0415  # importing tasks wires Celery; only daemons need it
    from worker.tasks import serve_worker_metrics_on_start  # noqa: PLC0415  # see above

    serve_worker_metrics_on_start(pool)

    chosen = ",".join(
        q.value for q in (queues or [QueueName.SUBMISSION, QueueName.DISCOVERY, QueueName.BACKFILL])
    )
    argv = [
        "worker",
        "-Q",
        chosen,
        "-c",
        str(concurrency),
        "-P",
        pool,
        "--loglevel",
        cfg.logging.level,
        "--without-mingle",
        "--without-gossip",
    ]
    if hostname:
        argv += ["-n", hostname]
    app.worker_main(argv=argv)


def beat_command(ctx: typer.Context) -> None:
    """Run the scheduler (discovery, sweep, dispatch of due work). Only one may run: it takes a lock."""
    cfg = settings(ctx)
    engine = _ensure_ledger(ctx)
    from worker.celery_app import app  # noqa: PLC0415  # see worker_command
    from worker.single_instance import single_instance  # noqa: PLC0415  # only the beat needs the lock

    with single_instance(engine, "beat", cfg.data_dir):
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        app.start(["beat", "--loglevel", cfg.logging.level, "-s", str(cfg.data_dir / "celerybeat-schedule")])


def flower_command(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port (default flower.port).")] = None,
    address: Annotated[str | None, typer.Option(help="Bind address (default flower.address).")] = None,
) -> None:
    """Run Flower against the configured broker (basic auth from flower.basic_auth)."""
    cfg = settings(ctx)
    from worker.celery_app import app  # noqa: PLC0415  # see worker_command

    argv = ["flower", f"--port={port or cfg.flower.port}", f"--address={address or cfg.flower.address}"]
    if cfg.flower.basic_auth is not None:
        argv.append(f"--basic-auth={cfg.flower.basic_auth.get_secret_value()}")
    app.start(argv)


def discover_command(
    ctx: typer.Context,
    process: Annotated[
        bool, typer.Option("--process/--no-process", help="Also build, sign and submit here.")
    ] = False,
) -> None:
    """Run one discovery pass now (without a worker); optionally process what it found in this process."""
    pipeline = build_pipeline(settings(ctx))
    _ensure_ledger(ctx)

    def process_page(version_ids: list[int]) -> None:
        if not process:
            return  # registered only: the workers (or the dispatcher) take them
        for batch in discovery.chunked(version_ids, pipeline.settings.delivery.batch_size):
            result = delivery.process_versions(pipeline, batch, owner="cli")
            console.print({k: v for k, v in vars(result).items() if isinstance(v, int) and v})

    found = discovery.discover(pipeline, on_opened=process_page)
    console.print(f"seen {found.seen}, new {found.new}, changed {found.changed}, opened {found.opened}")
    pipeline.close()


def status_command(ctx: typer.Context, ma_lk: str) -> None:
    """The history of one encounter (MA_LK): versions, states, attempts, receipts. No personal data."""
    engine = _ensure_ledger(ctx)
    with engine.connect() as conn:
        found = queries.history(conn, ma_lk)
    if found.encounter is None:
        raise CliError(f"MA_LK {ma_lk} is not in the ledger", exit_code=1)
    enc = found.encounter
    console.print(
        f"[bold]{ma_lk}[/] state [bold]{enc['state']}[/] completed {enc['completed_at']} "
        f"visit type {enc['visit_type']} department {enc['department']}"
    )
    table = Table("version", "state", "attempts", "content hash", "error", "maGiaoDich", "received")
    for ver in found.versions:
        table.add_row(
            str(ver["id"]),
            ver["state"],
            str(ver["attempts"]),
            (ver["content_hash"] or "")[:16],
            ver["last_error_code"] or "",
            ver["ma_giao_dich"] or "",
            ver["thoi_gian_tiep_nhan"] or "",
        )
    console.print(table)
    events = Table("at", "event", "version", "destination", "maKetQua", "request hash")
    for row in found.audit:
        events.add_row(
            str(row["at"])[:19],
            row["event"],
            str(row["version_id"] or ""),
            row["destination"] or "",
            row["ma_ket_qua"] or "",
            (row["request_hash"] or "")[:16],
        )
    console.print(events)


class ReplayState(StrEnum):
    DEAD = "dead"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"


def replay_command(
    ctx: typer.Context,
    state: Annotated[ReplayState, typer.Option(help="Which versions to replay.")],
    since: Annotated[datetime | None, typer.Option(help="Visits completed from this date.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Visits completed before this date.")] = None,
    error_code: Annotated[str | None, typer.Option(help="Only this last error code.")] = None,
    execute: Annotated[bool, typer.Option("--execute", help="Do it (the default is a dry run).")] = False,
    rate: Annotated[
        float | None, typer.Option(help="Versions per second (default delivery.replay_rate_per_s).")
    ] = None,
) -> None:
    """Send again: dead versions with their stored bytes; rejected/quarantined ones re-read from the HIS."""
    cfg = settings(ctx)
    engine = _ensure_ledger(ctx)
    with engine.connect() as conn:
        rows = queries.versions_in_state(
            conn, State(state.value), since=_utc(since), until=_utc(until), error_code=error_code
        )
    console.print(f"{len(rows)} {state.value} version(s) match")
    if not execute or not rows:
        for row in rows[:20]:
            console.print(f"  {row['ma_lk']} v{row['id']} {row['last_error_code'] or ''}")
        if not execute:
            console.print("dry run: add --execute to replay")
        return
    pace = 1.0 / (rate or cfg.delivery.replay_rate_per_s)
    from worker.tasks import enqueue_batches  # noqa: PLC0415  # the CLI hands work to the workers

    pipeline = build_pipeline(cfg)
    for row in rows:
        with engine.begin() as conn:
            if state is ReplayState.DEAD:
                queries.requeue_dead(conn, [row["id"]])
                ids = [row["id"]]
            else:
                ref = EncounterRef(
                    his_key=row["his_key"], completed_at=row["completed_at"], changed_at=datetime.now(UTC)
                )
                ids = repo.register_refs(
                    conn, [ref], facility_code=cfg.payload.facility_code, reason="replayed"
                ).version_ids
            audit.append(conn, [AuditEvent("replay", ma_lk=row["ma_lk"], version_id=row["id"])])
        enqueue_batches(pipeline, ids)
        time.sleep(pace)
    console.print(f"replayed {len(rows)}")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# ------------------------------------------------------------------------------------------ quarantine


@quarantine_group.command("list")
def quarantine_list(ctx: typer.Context, limit: int = 100) -> None:
    """Quarantined encounters with the rules they broke."""
    engine = _ensure_ledger(ctx)
    with engine.connect() as conn:
        rows = queries.versions_in_state(conn, State.QUARANTINED, limit=limit)
    table = Table("MA_LK", "version", "completed", "rules")
    for row in rows:
        errors = (row["issues"] or {}).get("errors", [])
        table.add_row(
            row["ma_lk"],
            str(row["id"]),
            str(row["completed_at"])[:16],
            ", ".join(sorted({str(e.get("rule")) for e in errors})),
        )
    console.print(table)


@quarantine_group.command("show")
def quarantine_show(ctx: typer.Context, ma_lk: str) -> None:
    """Every field-level error of a quarantined encounter, with the fix hint."""
    engine = _ensure_ledger(ctx)
    with engine.connect() as conn:
        found = queries.history(conn, ma_lk)
    quarantined = [v for v in found.versions if v["state"] == State.QUARANTINED]
    if not quarantined:
        raise CliError(f"MA_LK {ma_lk} has no quarantined version", exit_code=1)
    table = Table("table", "row", "field", "rule", "severity", "message", "hint")
    for issue in (quarantined[-1]["issues"] or {}).get("errors", []):
        table.add_row(
            *(
                str(issue.get(key) or "")
                for key in ("table", "row", "field", "rule", "severity", "message_en", "hint")
            )
        )
    console.print(table)


@quarantine_group.command("retry")
def quarantine_retry(ctx: typer.Context, ma_lk: list[str]) -> None:
    """Re-read the encounters from the HIS (after the data was fixed) and send them if they now validate."""
    cfg = settings(ctx)
    engine = _ensure_ledger(ctx)
    ids: list[int] = []
    with engine.begin() as conn:
        for key in ma_lk:
            found = queries.history(conn, key)
            if found.encounter is None:
                raise CliError(f"MA_LK {key} is not in the ledger")
            ref = EncounterRef(
                his_key=found.encounter["his_key"],
                completed_at=found.encounter["completed_at"],
                changed_at=datetime.now(UTC),
            )
            ids += repo.register_refs(
                conn, [ref], facility_code=cfg.payload.facility_code, reason="retried"
            ).version_ids
    from worker.tasks import enqueue_batches  # noqa: PLC0415  # see replay_command

    enqueue_batches(build_pipeline(cfg), ids)
    console.print(f"re-opened {len(ids)} version(s)")


# ------------------------------------------------------------------------------------------------ audit


@audit_group.command("anchor")
def audit_anchor(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the line to this file (replaced).")
    ] = None,
    append: Annotated[
        Path | None, typer.Option("--append", help="Also add the line to this anchors file (JSON lines).")
    ] = None,
) -> None:
    """Print the chain's head as one JSON line (last event id, its row hash, events, UTC time, facility,
    software): keep it off this server, then `audit verify --anchors FILE` proves the chain still holds it."""
    if out is not None and append is not None:
        raise CliError("give --out or --append, not both", exit_code=2)
    cfg = settings(ctx)
    engine = _ensure_ledger(ctx)
    with engine.connect() as conn:
        anchor = audit.chain_head(
            conn, facility_code=cfg.payload.facility_code, software=audit.software(), at=datetime.now(UTC)
        )
    if anchor is None:
        raise CliError("the audit log is empty: nothing to anchor yet", exit_code=1)
    line = anchor.line()
    try:
        if out is not None:
            out.write_text(line + "\n", encoding="utf-8")
        if append is not None:
            _append_line(append, line)
    except OSError as exc:
        raise CliError(f"cannot write {out or append}: {exc.strerror}", exit_code=2) from None
    typer.echo(line)  # plain: rich would wrap or colour a line meant to be kept byte for byte


def _append_line(path: Path, line: str) -> None:
    """Add one line to an anchors file, on a line of its own even if the last write was cut short, and to the
    disk before the command says it is done."""
    with path.open("a+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(line.encode("utf-8") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


@audit_group.command("verify")
def audit_verify(
    ctx: typer.Context,
    anchors: Annotated[
        Path | None,
        typer.Option(
            "--anchors",
            help="Anchors file (JSON lines from `audit anchor` or the anchor messages): each must still be on "
            "the chain.",
        ),
    ] = None,
) -> None:
    """Check the hash chain, and the CA revocation answers its signed events name: exit 1 naming the first bad
    row, and each answer missing from the ledger or altered with the events and versions that name it. Each
    intact answer is also judged at the time it was used, not today: the times of the signed events relying on
    it must lie between its thisUpdate and nextUpdate (read from the CA's bytes), and it must be about their
    certificate and not list it as revoked by then; one that was stale at use is named with the first and
    last events relying on it (exit 1). With --anchors, also each anchor kept off the server: an event gone or
    with another row hash means the chain was rewritten or cut short since (exit 1, each such anchor named)."""
    anchored = _read_anchors(anchors) if anchors is not None else None
    engine = _ensure_ledger(ctx)
    with engine.connect() as conn:
        report = audit.verify_chain(conn, judge=held_at_use)
        anchor_faults = audit.check_anchors(conn, anchored) if anchored is not None else ()
    answers = report.answers
    for fault in answers.faults:
        err_console.print(_answer_fault_line(fault), markup=False, highlight=False)
    for use_fault in answers.use_faults:
        err_console.print(_use_fault_line(use_fault), markup=False, highlight=False, soft_wrap=True)
    for anchor_fault in anchor_faults:
        err_console.print(_anchor_fault_line(anchor_fault), markup=False, highlight=False)
    problems = []
    if answers.faults:
        problems.append(
            f"{len(answers.faults)} of {answers.named} revocation answers named by signed events "
            "are missing or altered"
        )
    if answers.use_faults:
        problems.append(
            f"{len(answers.use_faults)} of {answers.judged} revocation answers did not hold when signed events "
            "relied on them"
        )
    if anchor_faults:
        problems.append(
            f"{len(anchor_faults)} of {len(anchored or ())} anchors are not on the chain, "
            "which was rewritten or cut short since"
        )
    if not report.chain_intact:
        raise CliError(
            f"audit chain broken at row {report.bad_row_id}: {report.reason} "
            f"({report.rows_checked} rows verified before it)" + "".join(f"; {p}" for p in problems),
            exit_code=1,
        )
    if problems:
        raise CliError(f"{'; '.join(problems)} (audit chain intact: {report.rows_checked} rows)", exit_code=1)
    console.print(f"audit chain intact: {report.rows_checked} rows")
    console.print(
        f"revocation answers intact: {answers.named} kept, named by {_signed_events(answers.events)}"
        if answers.named
        else "revocation answers: no signed event names one (signed before revision 0004, or no CA answer to keep)"
    )
    if answers.judged:
        console.print(
            f"revocation answers valid at their time of use: {_judged(answers.judged)}, judged at the times of "
            "the signed events that relied on them, not today",
            soft_wrap=True,
        )
    if anchored is not None:
        newest = max((anchor for _, anchor in anchored), key=lambda a: a.event_id, default=None)
        console.print(
            f"anchors on the chain: {len(anchored)} of {len(anchored)}"
            + (f" (newest: event {newest.event_id}, {newest.as_dict()['at']})" if newest else "")
        )


def _read_anchors(path: Path) -> list[tuple[int, audit.Anchor]]:
    """(line number, anchor) for each non-blank line; a line that is not an anchor stops the command (exit 2),
    named by its number only."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the anchors file {path}: {exc}", exit_code=2) from None
    anchors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            anchors.append((number, audit.parse_anchor(line)))
        except audit.AnchorFormatError as exc:
            raise CliError(f"{path} line {number} is not an anchor: {exc}", exit_code=2) from None
    return anchors


def _anchor_fault_line(fault: audit.AnchorFault) -> str:
    anchor = fault.anchor
    where = f"anchor line {fault.line} (event {anchor.event_id} of {anchor.events}, {anchor.as_dict()['at']})"
    if fault.problem == "missing":
        return f"{where}: MISSING: the ledger has no event {anchor.event_id} (the chain was cut short or renumbered)"
    return (
        f"{where}: MISMATCH: the ledger's row hash is {fault.found_hash}, the anchor's {anchor.row_hash} "
        "(the chain was rewritten up to this event)"
    )


def _answer_fault_line(fault: audit.AnswerFault) -> str:
    """One line per missing or altered answer: its hash, why, and the first events and versions naming it."""
    what = "MISSING from the ledger" if fault.problem == "missing" else f"ALTERED ({fault.reason})"
    shown = [f"event {event_id} (version {version_id})" for event_id, version_id in fault.named_by]
    if fault.events > len(shown):
        shown.append(f"{fault.events - len(shown)} more")
    return f"revocation answer {fault.sha256} {what}: named by {_signed_events(fault.events)}: {', '.join(shown)}"


def _use_fault_line(fault: audit.UseFault) -> str:
    """One line per answer and certificate: why the answer did not hold, and the span of the events using it."""
    use = fault.use
    certificate = (
        f"certificate {use.cert_serial}" if use.cert_serial else "a certificate the events do not name"
    )
    (first_at, first_event, first_version), (last_at, last_event, last_version) = use.first, use.last
    span = f"event {first_event} (version {first_version}) on {first_at.isoformat(timespec='seconds')}"
    if use.events > 1:
        span += f" to event {last_event} (version {last_version}) on {last_at.isoformat(timespec='seconds')}"
    return (
        f"revocation answer {fault.sha256} {fault.reason}; relied on for {certificate} by "
        f"{_signed_events(use.events)}: {span}"
    )


def _judged(count: int) -> str:
    return f"{count} answer{'' if count == 1 else 's'} and certificate{'' if count == 1 else 's'}"


def _signed_events(count: int) -> str:
    return f"{count} signed event{'' if count == 1 else 's'}"


# ------------------------------------------------------------------------------------------ destinations


@destinations_group.command("list")
def destinations_list(ctx: typer.Context) -> None:
    """Configured destinations and whether sending to them is stopped."""
    cfg = settings(ctx)
    engine = _ensure_ledger(ctx)
    with engine.connect() as conn:
        stopped = repo.stopped_destinations(conn)
    table = Table("destination", "url", "variant", "enabled", "primary", "status")
    for name, dest in cfg.destinations.items():
        status = f"STOPPED ({stopped[name]})" if name in stopped else "active"
        table.add_row(name, dest.base_url, dest.variant, str(dest.enabled), str(dest.primary), status)
    console.print(table)


@destinations_group.command("resume")
def destinations_resume(ctx: typer.Context, name: str) -> None:
    """Resume sending to a destination stopped by a configuration/authentication error (after fixing it)."""
    engine = _ensure_ledger(ctx)
    with engine.begin() as conn:
        if not repo.resume_destination(conn, name):
            raise CliError(f"destination {name} is not stopped")
    console.print(f"{name} resumed")


def register(app: typer.Typer) -> None:
    app.add_typer(db_group, name="db")
    app.add_typer(quarantine_group, name="quarantine")
    app.add_typer(audit_group, name="audit")
    app.add_typer(destinations_group, name="destinations")
    app.command("worker")(worker_command)
    app.command("beat")(beat_command)
    app.command("flower")(flower_command)
    app.command("discover")(discover_command)
    app.command("status")(status_command)
    app.command("replay")(replay_command)
