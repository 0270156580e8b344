"""What ``vneid-sync adapters check`` reports: findings about an adapter's configuration against a live HIS.

A finding names where the problem is (a table, a section, a column) and what it is. It may list the local
codes a value map does not know (with counts, never with the encounter they came from); it never shows the
content of a patient's record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

import sqlalchemy.exc as sa_exc


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    where: str
    message: str


@dataclass
class CheckReport:
    adapter: str
    findings: list[Finding] = field(default_factory=list)
    sampled: int = 0
    loaded: int = 0

    @property
    def ok(self) -> bool:
        return not any(finding.level is Level.ERROR for finding in self.findings)

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding(Level.ERROR, where, message))

    def warning(self, where: str, message: str) -> None:
        self.findings.append(Finding(Level.WARNING, where, message))

    def info(self, where: str, message: str) -> None:
        self.findings.append(Finding(Level.INFO, where, message))

    def unmapped(self, where: str, map_name: str, codes: Counter[str]) -> None:
        shown = ", ".join(f"{code!r} ×{count}" for code, count in codes.most_common(10))
        more = f" and {len(codes) - 10} more" if len(codes) > 10 else ""
        self.error(where, f"value map {map_name!r} has no entry for {shown}{more}")


@runtime_checkable
class Checkable(Protocol):
    """An adapter that can check its configuration against the live database."""

    def check(self, sample: int = 20) -> CheckReport: ...


def database_message(exc: BaseException) -> str:
    """The database's own first line of error text, for the operator running ``adapters check``.

    Used only by the interactive check (errors about SQL text, tables, columns); never logged.
    """
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    cause = exc.__cause__
    if orig is exc and cause is not None:
        orig = cause.orig if isinstance(cause, sa_exc.DBAPIError) and cause.orig is not None else cause
    lines = str(orig).strip().splitlines()
    text = lines[0] if lines else type(orig).__name__
    return text[:300]


def describe_failure(exc: BaseException) -> str:
    """An adapter error for the check report, with the database's own words when a query failed."""
    cause = exc.__cause__
    if isinstance(cause, sa_exc.SQLAlchemyError):
        return f"{exc}: {database_message(cause)}"
    return str(exc)
