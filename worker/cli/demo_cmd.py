"""`vneid-sync demo`: The reference HIS and the end-to-end demo."""

from __future__ import annotations

import typer

group = typer.Typer(help="The reference HIS and the end-to-end demo.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="demo")
