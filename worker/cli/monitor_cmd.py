"""Monitoring: `metrics` (the ledger exporter), `health` (one line per dependency), `alerts check`.

The monitoring modules are imported inside the commands, for start-up time: they bring kombu, redis, alembic
and the signer adapters (about half a second), which every other command and ``--help`` would pay too.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from worker.cli.context import CliError, console, settings
from worker.config import Settings

alerts_group = typer.Typer(
    help="Alert conditions: notified once when they start and once when they clear.", no_args_is_help=True
)


def _migrated_ledger(cfg: Settings) -> Any:
    from worker.bootstrap import ledger_engine  # noqa: PLC0415  # see the module docstring
    from worker.ledger import migrate  # noqa: PLC0415  # idem

    engine = ledger_engine(cfg)
    if not migrate.is_up_to_date(engine):
        raise CliError("the ledger schema is not up to date: run `vneid-sync db upgrade`", exit_code=2)
    return engine


def metrics_command(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default metrics.port).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default metrics.host).")] = None,
) -> None:
    """Serve ledger metrics (backlog, coverage, stopped destinations, certificate, attempts) for Prometheus.
    Runs until stopped (SIGTERM/Ctrl-C)."""
    from worker.monitoring.ledger_metrics import serve_ledger_metrics  # noqa: PLC0415  # see the module docstring

    cfg = settings(ctx)
    engine = _migrated_ledger(cfg)
    server = serve_ledger_metrics(engine, cfg, host=host, port=port)
    console.print(f"serving ledger metrics on {server.url}")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
        engine.dispose()


def health_command(
    ctx: typer.Context,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 on a WARN (default: only FAIL fails).")
    ] = False,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip", help="Skip a check: his, ledger, broker, gateway, certificate, evidence (repeatable)."
        ),
    ] = None,
    max_skew_s: Annotated[
        float, typer.Option("--max-skew", min=1, help="Clock difference to the gateway that warns (seconds).")
    ] = 60.0,
) -> None:
    """Check the HIS, ledger, broker, gateway token, certificate, evidence key and clock: one line each.
    Exit 0 all OK, 2 any FAIL, 1 a WARN with --strict."""
    from worker.monitoring import health  # noqa: PLC0415  # see the module docstring
    from worker.monitoring.check_result import Status, exit_code  # noqa: PLC0415  # idem

    cfg = settings(ctx)
    try:
        results = health.run_checks(cfg, skip=skip or (), max_skew=timedelta(seconds=max_skew_s))
    except ValueError as exc:
        raise CliError(str(exc), exit_code=2) from None
    styles = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}
    for result in results:
        console.print(
            f"[{styles[result.status]}]{result.status.value:<4}[/]  {result.name:<22} {result.detail}",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )
    code = exit_code(results, strict=strict)
    if code:
        raise typer.Exit(code)


@alerts_group.command("check")
def alerts_check(
    ctx: typer.Context,
    his: Annotated[
        bool, typer.Option("--his/--no-his", help="Also compare with the HIS (coverage condition).")
    ] = True,
) -> None:
    """Evaluate every alert condition once and notify what started or cleared. Exit 1 while any is firing."""
    from worker.monitoring import health  # noqa: PLC0415  # see the module docstring
    from worker.monitoring.alert_machine import evaluate_and_notify, firing_conditions  # noqa: PLC0415  # idem
    from worker.monitoring.errors import describe_error  # noqa: PLC0415  # idem
    from worker.monitoring.notification import notifiers_from_settings  # noqa: PLC0415  # idem

    cfg = settings(ctx)
    engine = _migrated_ledger(cfg)
    source = None
    if his:
        try:
            source = health.create_his_source(cfg)
        except Exception as exc:  # the other conditions are still worth checking
            console.print(f"coverage not checked: HIS unavailable ({describe_error(exc)})", highlight=False)
    try:
        transitions = evaluate_and_notify(
            engine, cfg, notifiers_from_settings(cfg), datetime.now(UTC), source=source
        )
        firing = firing_conditions(engine)
    finally:
        if source is not None:
            source.close()
        engine.dispose()
    for transition in transitions:
        note = "" if transition.delivered else " (not delivered: no notifier took it)"
        console.print(
            f"{transition.status.upper():<8} {transition.condition}: {transition.summary}{note}",
            highlight=False,
            markup=False,
        )
    if not firing:
        console.print("no alert condition is firing")
        return
    for item in firing:
        console.print(
            f"FIRING   {item.condition} since {item.since.isoformat(timespec='seconds')}: {item.summary}",
            highlight=False,
            markup=False,
        )
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics_command)
    app.command("health")(health_command)
    app.add_typer(alerts_group, name="alerts")
