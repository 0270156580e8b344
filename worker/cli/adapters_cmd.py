"""`vneid-sync adapters`: HIS adapters: list them, check a configuration against a live database."""

from __future__ import annotations

import typer

group = typer.Typer(
    help="HIS adapters: list them, check a configuration against a live database.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="adapters")
