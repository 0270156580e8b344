"""`vneid-sync payload`: Build and validate QĐ 130/4750/3176 payloads."""

from __future__ import annotations

import typer

group = typer.Typer(help="Build and validate QĐ 130/4750/3176 payloads.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="payload")
