"""`vneid-sync cert`: Signing certificate health."""

from __future__ import annotations

import typer

group = typer.Typer(help="Signing certificate health.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="cert")
