"""The verdict of one health check (OK, WARN or FAIL with a short detail) and the exit code of a run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status.value:<4}  {self.name:<22} {self.detail}"


def exit_code(results: Iterable[CheckResult], *, strict: bool = False) -> int:
    """0 when everything is OK; 2 when anything FAILed; 1 for a WARN, but only when ``strict``."""
    statuses = {result.status for result in results}
    if Status.FAIL in statuses:
        return 2
    if strict and Status.WARN in statuses:
        return 1
    return 0
