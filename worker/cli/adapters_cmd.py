"""`vneid-sync adapters`: HIS adapters: list them, check a configuration against a live database."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from adapters.his.checks import Checkable, CheckReport, Level
from adapters.his.errors import AdapterError
from adapters.his.registry import BUILT_IN, adapter_class, create_source, known_adapters
from worker.cli.context import CliError, console, settings, state

group = typer.Typer(
    help="HIS adapters: list them, check a configuration against a live database.", no_args_is_help=True
)

_LEVEL_STYLE = {Level.ERROR: "bold red", Level.WARNING: "yellow", Level.INFO: "dim"}


@group.command("list")
def list_adapters(ctx: typer.Context) -> None:
    """List the HIS adapters that can be named in `his.adapter` (the configured one is marked *)."""
    configured = settings(ctx).his.adapter
    for name in known_adapters():
        try:
            doc = inspect.getdoc(adapter_class(name)) or ""
        except AdapterError as exc:
            doc = f"(cannot be loaded: {exc})"
        summary = doc.splitlines()[0] if doc else ""
        origin = "built-in" if name in BUILT_IN else "plug-in"
        marker = "*" if name == configured else " "
        console.print(f"{marker} {name:<14} {origin:<9} {summary}", markup=False, highlight=False)


def _print_report(report: CheckReport) -> None:
    for finding in report.findings:
        style = _LEVEL_STYLE[finding.level]
        console.print(f"[{style}]{finding.level.value:<7}[/] {finding.where}: ", end="", highlight=False)
        console.print(finding.message, markup=False, highlight=False)
    errors = sum(1 for finding in report.findings if finding.level is Level.ERROR)
    verdict = "[bold green]ok[/]" if report.ok else f"[bold red]{errors} error(s)[/]"
    console.print(
        f"{report.adapter}: {verdict} — {report.sampled} encounter(s) sampled, {report.loaded} loaded",
        highlight=False,
    )


@group.command("check")
def check(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML configuration file (same as the global --config)."),
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", min=1, max=1000, help="Encounters to load as a sample.")
    ] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Run the configured adapter's queries against the live HIS (read-only, on a sample) and report bad SQL,
    missing tables or columns, unmapped codes and unreadable values. Exit 1 when anything is wrong."""
    if config is not None:
        state(ctx).config_file = config
    current = settings(ctx)
    try:
        source = create_source(current.his, facility_code=current.payload.facility_code, url=current.his_url)
    except AdapterError as exc:
        raise CliError(str(exc), exit_code=1) from None
    try:
        if not isinstance(source, Checkable):
            raise CliError(f"adapter {current.his.adapter!r} has no check", exit_code=1)
        report = source.check(sample=sample)
    finally:
        source.close()
    if as_json:
        payload = {
            "adapter": report.adapter,
            "ok": report.ok,
            "sampled": report.sampled,
            "loaded": report.loaded,
            "findings": [
                {"level": finding.level.value, "where": finding.where, "message": finding.message}
                for finding in report.findings
            ],
        }
        console.print_json(json.dumps(payload, ensure_ascii=False))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="adapters")
