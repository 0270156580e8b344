"""Check that a deployment file's command line is a real ``vneid-sync`` command, without running it.

Typer's Click parses the arguments exactly as the entry point would (subcommand names, option names, value
types and choices), but no command body runs: ``make_context`` stops after parsing. Typer ≥ 0.29 vendors its
own Click (``typer._click``), so groups and errors are recognised through Typer's public names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup

from tests.services import unavailable

#: Commands and options the deployment files use that other work is still adding to the CLI (the lead wires
#: them). Until they exist a check is skipped locally and FAILS in CI (CI=true), like a missing service.
AWAITED = {
    "metrics": "the Prometheus exporter command",
    "health": "the health-check command",
    "alerts": "the alert-check command group",
    "simulator serve": "the gateway simulator command",
    "flower --address": "Flower's listen address (the command binds 127.0.0.1, unreachable in a container)",
}


@dataclass(frozen=True, slots=True)
class Parsed:
    path: tuple[str, ...]  # resolved command names, e.g. ("db", "upgrade")
    params: dict[str, object]  # the leaf command's parsed parameters


class CommandLineError(Exception):
    def __init__(self, message: str, awaited: str | None) -> None:
        super().__init__(message)
        self.awaited = awaited


def _root() -> Any:
    from worker.cli.app import app

    return typer.main.get_command(app)


def _remaining(ctx: Any) -> list[str]:
    # Click keeps a group's unparsed arguments in ``protected_args`` (private from Click 8.2) + ``args``.
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
        protected = ctx.protected_args
    return [*protected, *ctx.args]


def parse(argv: Sequence[str]) -> Parsed:
    """Parse ``vneid-sync ARGV``; raise ``CommandLineError`` naming what does not exist."""
    root = _root()
    path: list[str] = []
    command = root
    try:
        ctx = root.make_context("vneid-sync", list(argv))
        while isinstance(command, TyperGroup):
            rest = _remaining(ctx)
            if not rest:
                if getattr(command, "invoke_without_command", False):
                    break
                raise CommandLineError(f"`vneid-sync {' '.join(path)}` needs a subcommand", None)
            name = rest[0]
            sub = command.get_command(ctx, name)
            if sub is None:
                wanted = " ".join([*path, name])
                raise CommandLineError(
                    f"`vneid-sync {wanted}` is not a command", wanted if wanted in AWAITED else None
                )
            path.append(name)
            ctx = sub.make_context(name, rest[1:], parent=ctx)
            command = sub
    except typer.Exit:  # an eager option answered and stopped (--version, --help): a valid command line
        return Parsed(tuple(path), {})
    except typer.TyperException as exc:  # Click's usage errors, whichever Click Typer uses
        option = getattr(exc, "option_name", None)
        if option:
            wanted = " ".join([*path, option])
            message = f"`vneid-sync {' '.join(path)}` has no option {option}"
            raise CommandLineError(message, wanted if wanted in AWAITED else None) from exc
        raise CommandLineError(f"`vneid-sync {' '.join(argv)}`: {exc}", None) from exc
    return Parsed(tuple(path), dict(ctx.params))


def check(argv: Sequence[str], where: str) -> Parsed:
    """``parse`` for a test: an awaited command skips locally (fails in CI); anything else fails."""
    try:
        return parse(argv)
    except CommandLineError as exc:
        if exc.awaited is not None:
            unavailable(f"{where}: vneid-sync {exc.awaited}", f"{AWAITED[exc.awaited]} is not in the CLI yet")
        raise AssertionError(f"{where}: {exc}") from exc
