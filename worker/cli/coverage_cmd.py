"""`vneid-sync backfill`, `vneid-sync coverage` (+ `coverage report --half`): prove and close the gaps."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from schemas.domain.values import VIETNAM_TZ, local_midnight
from worker.bootstrap import build_pipeline
from worker.cli.context import CliError, console, settings
from worker.ledger import migrate
from worker.ledger import repository as repo
from worker.pipeline import backfill as backfill_service
from worker.pipeline import delivery
from worker.pipeline.discovery import chunked
from worker.reporting import render
from worker.reporting.coverage import GroupBy, compute
from worker.reporting.deadlines import DeadlineCalendar

#: Exit codes for cron and monitoring.
EXIT_OK = 0
EXIT_DEADLINE_BREACH = 3
EXIT_INCOMPLETE = 4

coverage_group = typer.Typer(
    help="Prove that every completed encounter was accepted; list what is missing and why.",
    invoke_without_command=True,
)


def _today() -> date:
    return datetime.now(VIETNAM_TZ).date()


@coverage_group.callback()
def coverage(
    ctx: typer.Context,
    since: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day (default: legal start).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last day, inclusive (default: today).")
    ] = None,
    by: Annotated[GroupBy, typer.Option("--by", help="Bucket rows by.")] = GroupBy.DAY,
    output: Annotated[str, typer.Option("--format", help="table, csv, json or html.")] = "table",
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Compare the HIS's completed encounters with the ledger. Exit 3 when a gap is past its deadline."""
    if ctx.invoked_subcommand is not None:
        return
    if output not in ("table", "csv", "json", "html"):
        raise CliError(f"unknown format {output!r}: table, csv, json or html")
    cfg = settings(ctx)
    pipeline = build_pipeline(cfg)
    if not migrate.is_up_to_date(pipeline.engine):
        raise CliError("the ledger schema is not up to date: run `vneid-sync db upgrade`", exit_code=2)
    start = since.date() if since else cfg.deadlines.legal_start
    end = (until.date() if until else _today()) + timedelta(days=1)
    report = compute(pipeline.source(), pipeline.engine, facility_code=cfg.payload.facility_code, start=start,
                     end=end, group_by=by, calendar=DeadlineCalendar(cfg.deadlines), now=datetime.now(UTC))  # fmt: skip
    pipeline.close()
    if output == "table":
        render.print_table(report, console)
    else:
        text = {"csv": render.to_csv, "json": render.to_json}.get(output)
        rendered = text(report) if text else render.to_html(report, facility=cfg.payload.facility_code)
        if out:
            out.write_text(rendered, encoding="utf-8")
            console.print(f"wrote {out}")
        else:
            typer.echo(rendered)
    if report.claim_breaches:
        raise typer.Exit(EXIT_DEADLINE_BREACH)


@coverage_group.command("report")
def half_year_report(
    ctx: typer.Context,
    half: Annotated[str, typer.Option(help="Half-year, e.g. 2026H1.")],
    output: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """The six-monthly counts for cdc.kcb.vn (QĐ 2733): visits and linked visits by visit type × BHYT."""
    if output not in ("table", "csv", "json"):
        raise CliError(f"unknown format {output!r}: table, csv or json")
    try:
        year, part = int(half[:4]), half[4:].upper()
        if part not in ("H1", "H2"):
            raise ValueError(part)
    except ValueError as exc:
        raise CliError(f"--half must look like 2026H1 or 2026H2, not {half!r}") from exc
    start = date(year, 1, 1) if part == "H1" else date(year, 7, 1)
    end = date(year, 7, 1) if part == "H1" else date(year + 1, 1, 1)
    cfg = settings(ctx)
    pipeline = build_pipeline(cfg)
    report = compute(pipeline.source(), pipeline.engine, facility_code=cfg.payload.facility_code, start=start,
                     end=min(end, _today() + timedelta(days=1)), group_by=GroupBy.VISIT_TYPE_INSURANCE,
                     calendar=DeadlineCalendar(cfg.deadlines), now=datetime.now(UTC))  # fmt: skip
    pipeline.close()
    if output == "table":
        render.print_half_year(report, console)
    else:
        typer.echo(render.half_year_csv(report) if output == "csv" else render.half_year_json(report))


def backfill_command(
    ctx: typer.Context,
    since: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day to walk (default: legal start).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last day, inclusive (default today).")
    ] = None,
    rate: Annotated[float, typer.Option(help="Versions per second handed to the workers.")] = 50.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; register nothing.")] = False,
    process_here: Annotated[
        bool, typer.Option("--process-here", help="Build/sign/send in this process (no worker needed).")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(help="--process-here: seconds to wait for retries and for leases of a stopped run."),
    ] = 900.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar (cron).")] = False,
) -> None:
    """Register every completed encounter since a date and hand over what is not accepted. Resumable.

    Exit 4 when --process-here gives up with versions still active (retries or leases outlast --wait)."""
    cfg = settings(ctx)
    pipeline = build_pipeline(cfg)
    if not migrate.is_up_to_date(pipeline.engine):
        raise CliError("the ledger schema is not up to date: run `vneid-sync db upgrade`", exit_code=2)
    start = since.date() if since else cfg.deadlines.legal_start
    end = (until.date() if until else _today()) + timedelta(days=1)
    first = backfill_service.resume_day(pipeline, start) if not dry_run else start
    total_days = max((end - first).days, 0)
    totals = {"days": 0, "seen": 0, "opened": 0, "pending": 0, "hidden": 0}
    pace = 1.0 / rate if rate > 0 else 0.0
    enqueue = None
    if not process_here and not dry_run:
        from worker.tasks import process_batch  # noqa: PLC0415  # only a real backfill talks to the broker

        enqueue = process_batch
    # Versions already waiting in the broker are the workers' business; --process-here takes any unleased one.
    in_broker = None if process_here else timedelta(seconds=cfg.delivery.stuck_after_s)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[stats]}"), console=console, disable=quiet, transient=False) as bar:  # fmt: skip
        task = bar.add_task(f"backfill from {first}", total=total_days, stats="")
        for done in backfill_service.backfill_days(pipeline, since=start, until=end, dry_run=dry_run,
                                                   waiting_in_broker=in_broker):  # fmt: skip
            totals["days"] += 1
            totals["seen"] += done.seen
            totals["opened"] += len(done.opened)
            totals["pending"] += len(done.pending)
            totals["hidden"] += done.hidden
            for batch in chunked([*done.opened, *done.pending], cfg.delivery.batch_size):
                if process_here:
                    delivery.process_versions(pipeline, batch, owner="backfill")
                elif enqueue is not None:
                    with pipeline.engine.begin() as conn:
                        repo.mark_enqueued(conn, batch)
                    enqueue.apply_async((batch,), queue="backfill")
                    time.sleep(pace * len(batch))
            bar.update(
                task,
                advance=1,
                stats=f"seen {totals['seen']} · queued {totals['opened'] + totals['pending']}",
            )
    left = 0
    if process_here and not dry_run:
        left = backfill_service.finish_here(
            pipeline, local_midnight(start), local_midnight(end), owner="backfill", wait_s=wait
        )
    pipeline.close()
    if not quiet:
        verb = "would register" if dry_run else "registered"
        console.print(f"backfill {verb}: {totals['days']} day(s), {totals['seen']} completed encounter(s), "
                      f"{totals['opened']} version(s) opened, {totals['pending']} earlier version(s) handed over, "
                      f"{totals['hidden']} hidden")  # fmt: skip
    if left:
        console.print(f"{left} version(s) still active after waiting {wait:.0f} s: run the workers, or run the "
                      "backfill again")  # fmt: skip
        raise typer.Exit(EXIT_INCOMPLETE)


def register(app: typer.Typer) -> None:
    app.add_typer(coverage_group, name="coverage")
    app.command("backfill")(backfill_command)
