"""`vneid-sync demo run`: the whole job end to end on embedded defaults (what `make run` calls)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from worker.cli import demo_cmd
from worker.cli.context import CliError, console
from worker.reporting import render


def run(
    encounters: Annotated[int, typer.Option(min=10, help="Encounters to seed in the demo HIS.")] = 300,
    bad_share: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Share of deliberately bad records.")
    ] = 0.04,
    workers: Annotated[int, typer.Option(min=1, max=8, help="Celery worker processes.")] = 2,
    directory: Annotated[Path, typer.Option(help="Where the demo keeps its files (wiped first).")] = Path(
        "var/demo"
    ),
    no_faults: Annotated[
        bool, typer.Option("--no-faults", help="Simulator without fault injection.")
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Leave everything running until Ctrl-C.")] = False,
) -> None:
    """Seed a demo HIS, start the simulator, signer and real workers, deliver everything, prove coverage."""
    from worker.demo import DemoPlan, run_demo  # noqa: PLC0415  # keeps `--help` fast

    plan = DemoPlan(
        encounters=encounters, bad_share=bad_share, workers=workers, keep=keep, directory=directory
    )
    if no_faults:
        plan.faults = {}
    outcome = run_demo(plan, progress=lambda message: console.print(f"[dim]•[/] {message}"))
    render.print_table(outcome.coverage, console)
    stats = outcome.simulator_stats
    console.print(
        f"ledger: {', '.join(f'{state} {count}' for state, count in sorted(outcome.states.items()))}\n"
        f"simulator: {stats.get('accepted')} accepted, {stats.get('duplicates', 0)} duplicate sends answered "
        f"'already received', faults injected {stats.get('faults', {})}\n"
        f"audit chain: {'intact' if outcome.audit_ok else 'BROKEN'} ({outcome.audit_rows} rows) · "
        f"{outcome.elapsed_s:.0f} s"
    )
    if not outcome.ok:
        raise CliError("demo did not end with every valid encounter accepted exactly once", exit_code=1)
    console.print(
        "[bold green]demo ok[/]: every valid encounter accepted exactly once; the bad ones quarantined with reasons"
    )


def register(_app: typer.Typer) -> None:
    demo_cmd.group.command("run")(run)
