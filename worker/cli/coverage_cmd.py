"""`vneid-sync backfill`, `vneid-sync coverage` (+ `coverage report --half`): prove and close the gaps."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from schemas.domain.values import VIETNAM_TZ
from worker.bootstrap import build_pipeline
from worker.cli.context import CliError, console, settings
from worker.ledger import migrate
from worker.pipeline import backfill as backfill_service
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
    request = backfill_service.BackfillRequest(
        since=since.date() if since else cfg.deadlines.legal_start,
        until=(until.date() if until else _today()) + timedelta(days=1),
        dry_run=dry_run,
        process_here=process_here,
        wait_s=wait,
    )
    pipeline = build_pipeline(cfg)
    handover = None
    if not process_here and not dry_run:
        # Only a real backfill talks to the broker: Celery is not imported for the other commands.
        from worker.celery_app import BACKFILL_QUEUE  # noqa: PLC0415  # see above
        from worker.tasks import enqueue_batches  # noqa: PLC0415  # see above

        pace = 1.0 / rate if rate > 0 else 0.0
        handover = functools.partial(enqueue_batches, pipeline, queue=BACKFILL_QUEUE, pace_s=pace)
    # Versions already waiting in the broker are the workers' business; --process-here takes any unleased one.
    in_broker = None if process_here else timedelta(seconds=cfg.delivery.stuck_after_s)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[stats]}"), console=console, disable=quiet, transient=False) as bar:  # fmt: skip
        task = bar.add_task("backfill", total=None, stats="")

        def start(first: date, days: int) -> None:
            bar.update(task, description=f"backfill from {first}", total=days)

        def show(_done: backfill_service.DayDone, totals: backfill_service.BackfillTotals) -> None:
            bar.update(task, advance=1, stats=f"seen {totals.seen} · queued {totals.opened + totals.pending}")

        try:
            totals = backfill_service.run_backfill(
                pipeline, request, handover=handover, waiting_in_broker=in_broker, on_start=start, on_day=show
            )
        except backfill_service.LedgerNotMigratedError as exc:
            raise CliError(f"{exc}: run `vneid-sync db upgrade`", exit_code=2) from exc
    if not quiet:
        verb = "would register" if dry_run else "registered"
        console.print(f"backfill {verb}: {totals.days} day(s), {totals.seen} completed encounter(s), "
                      f"{totals.opened} version(s) opened, {totals.pending} earlier version(s) handed over, "
                      f"{totals.hidden} hidden")  # fmt: skip
    if totals.left:
        console.print(f"{totals.left} version(s) still active after waiting {wait:.0f} s: run the workers, or "
                      "run the backfill again")  # fmt: skip
        raise typer.Exit(EXIT_INCOMPLETE)


def register(app: typer.Typer) -> None:
    app.add_typer(coverage_group, name="coverage")
    app.command("backfill")(backfill_command)
