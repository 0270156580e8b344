"""What every CLI command shares: the loaded settings, output consoles and the error convention."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from worker.config import Settings, load_settings
from worker.logging import configure_logging

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class CliError(Exception):
    """An expected failure: printed as one line, exit code ``exit_code``, no traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class CliState:
    config_file: Path | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            level = "DEBUG" if self.debug else self._settings.logging.level
            configure_logging(level, self._settings.logging.format)
        return self._settings


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def settings(ctx: typer.Context) -> Settings:
    return state(ctx).settings
