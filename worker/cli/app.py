"""The ``vneid-sync`` command line: one root app, one module per command group."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from pydantic import ValidationError

from worker import __version__
from worker.cli import (
    adapters_cmd,
    cert_cmd,
    config_cmd,
    demo_cmd,
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

for module in (config_cmd, payload_cmd, sign_cmd, cert_cmd, adapters_cmd, demo_cmd, simulator_cmd, ops_cmd):
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
        result = command.main(args=args, prog_name="vneid-sync", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
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
    except (OSError, ValueError, RuntimeError) as exc:
        if debug:
            raise
        err_console.print(f"error: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
