"""`vneid-sync config`: show the effective configuration (secrets masked)."""

from __future__ import annotations

import json
import tomllib
from typing import Annotated, Any

import typer

from worker.cli.context import console, settings
from worker.config import masked_dump

group = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


def _to_toml(data: dict[str, Any], prefix: str = "") -> list[str]:
    scalars = [(key, value) for key, value in data.items() if not isinstance(value, dict)]
    tables = [(key, value) for key, value in data.items() if isinstance(value, dict)]
    lines: list[str] = []
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    for key, value in scalars:
        if value is None:
            lines.append(f"# {key} = (not set)")
        else:
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    if scalars:
        lines.append("")
    for key, value in tables:
        lines.extend(_to_toml(value, f"{prefix}.{key}" if prefix else key))
    return lines


@group.command("show")
def show(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--format", help="toml or json")] = "toml",
) -> None:
    """Print the effective configuration; secrets are shown as asterisks."""
    data = masked_dump(settings(ctx))
    if output == "json":
        console.print_json(json.dumps(data, ensure_ascii=False))
        return
    text = "\n".join(_to_toml(data))
    tomllib.loads(text)  # what we print must itself be a valid config file shape
    console.print(text, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="config")
