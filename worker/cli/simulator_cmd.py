"""`vneid-sync simulator`: Gateway simulator and reference remote signer (for tests, demos and staging)."""

from __future__ import annotations

import typer

group = typer.Typer(
    help="Gateway simulator and reference remote signer (for tests, demos and staging).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="simulator")
