"""`vneid-sync demo`: The reference HIS and the end-to-end demo."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from worker.cli.context import CliError, console, settings

group = typer.Typer(help="The reference HIS and the end-to-end demo.", no_args_is_help=True)


@group.command("seed")
def seed(
    ctx: typer.Context,
    encounters: Annotated[int, typer.Option("--encounters", "-n", min=1, help="Encounters to add.")] = 300,
    url: Annotated[
        str | None,
        typer.Option("--url", help="SQLAlchemy URL of the demo HIS; default: the settings' his URL."),
    ] = None,
    bad_share: Annotated[
        float,
        typer.Option("--bad-share", min=0.0, max=1.0, help="Share of encounters with a deliberate defect."),
    ] = 0.05,
    since: Annotated[
        datetime, typer.Option("--since", formats=["%Y-%m-%d"], help="First visit day.")
    ] = datetime(2026, 1, 1),
    until: Annotated[
        datetime | None, typer.Option("--until", formats=["%Y-%m-%d"], help="Last visit day; default today.")
    ] = None,
    random_seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed, for a repeatable HIS.")
    ] = None,
) -> None:
    """Create the reference HIS schema if needed and add synthetic encounters (SQLite, PostgreSQL, MariaDB)."""
    from adapters.his.demo.seed import seed_demo_his  # noqa: PLC0415  # keeps `--help` fast

    current = settings(ctx)
    target = url or current.his_url
    last: date | None = until.date() if until is not None else None
    if last is not None and last < since.date():
        raise CliError("--until is before --since", exit_code=2)
    report = seed_demo_his(
        target,
        encounters=encounters,
        bad_share=bad_share,
        since=since.date(),
        until=last,
        random_seed=random_seed,
        facility_code=current.payload.facility_code,
    )
    console.print(
        f"seeded {report.total} encounters ({report.bad} with a deliberate defect), keys {report.first_key}…"
        f"{report.last_key}, into {make_url(target).render_as_string(hide_password=True)} in {report.seconds:.1f} s",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="demo")
