"""The ``vneid-sync`` command line: one root app, one module per command group."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from worker import __version__
from worker.cli import (
    adapters_cmd,
    cert_cmd,
    config_cmd,
    coverage_cmd,
    demo_cmd,
    demo_run_cmd,
    evidence_cmd,
    monitor_cmd,
    ops_cmd,
    payload_cmd,
    sign_cmd,
    simulator_cmd,
)
from worker.cli.context import CliError, CliState, err_console

app = typer.Typer(
    name="vneid-sync",
    help="Send every completed visit, signed, to the BHXH gateway (Sổ sức khỏe điện tử on VNeID).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (
    config_cmd,
    payload_cmd,
    sign_cmd,
    cert_cmd,
    adapters_cmd,
    demo_cmd,
    demo_run_cmd,
    simulator_cmd,
    ops_cmd,
    coverage_cmd,
    evidence_cmd,
    monitor_cmd,
):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vneid-sync {__version__}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", envvar="VNEID_CONFIG", help="TOML configuration file.")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = CliState(config_file=config, debug=debug)


def _describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        message = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{location}: {message}")
    return "invalid configuration: " + "; ".join(problems)


def main(argv: list[str] | None = None) -> int:
    """Entry point: expected errors print one line and exit non-zero; ``--debug`` shows the traceback."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        # Standalone mode lets typer report usage errors itself (one line + usage, exit 2).
        command.main(args=args, prog_name="vneid-sync", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ValidationError as exc:
        if debug:
            raise
        err_console.print(f"error: {_describe_validation_error(exc)}", markup=False, highlight=False)
        return 2
    except CliError as exc:
        if debug:
            raise
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        return exc.exit_code
    except SQLAlchemyError as exc:
        if debug:
            raise
        # Never print the statement or its parameters: they can carry personal data.
        origin = getattr(exc, "orig", None) or exc
        first_line = str(origin).splitlines()[0] if str(origin) else type(origin).__name__
        err_console.print(
            f"error: database: {type(origin).__name__}: {first_line}", markup=False, highlight=False
        )
        return 1
    except (OSError, ValueError, RuntimeError) as exc:
        if debug:
            raise
        err_console.print(f"error: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
