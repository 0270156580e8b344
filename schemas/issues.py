"""Validation findings of the payload layer.

An :class:`Issue` names *where* (table, row, field) and *which rule* (a stable id such as
``XML1.SO_CCCD.format``) and says what to fix, in Vietnamese and English. It never carries the offending
value: issues end up in the ledger, in logs and on operators' screens, and health data must not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # the payload must not be sent
    WARNING = "warning"  # sent, but someone should look at it


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding. ``row`` is 1-based within a list table (XML2 line 3 → 3) and ``None`` for single-record
    tables; ``field`` is the element name, or ``None`` for a table- or envelope-level finding."""

    table: str
    row: int | None
    field: str | None
    rule: str
    severity: Severity
    message_vi: str
    message_en: str
    hint: str

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def location(self) -> str:
        row = f"[{self.row}]" if self.row is not None else ""
        return f"{self.table}{row}.{self.field}" if self.field else f"{self.table}{row}"


class PayloadValidationError(Exception):
    """The encounter cannot be sent as it is. ``issues`` lists every error (and the warnings seen with them)."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(sorted_issues(issues))
        rules = sorted({issue.rule for issue in self.errors})
        shown = ", ".join(rules[:8]) + (f" (+{len(rules) - 8} more)" if len(rules) > 8 else "")
        super().__init__(f"{len(self.errors)} validation error(s): {shown}")

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(issue for issue in self.issues if issue.is_error)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(issue for issue in self.issues if not issue.is_error)

    @property
    def rules(self) -> frozenset[str]:
        return frozenset(issue.rule for issue in self.errors)


def _table_number(table: str) -> int:
    digits = table[3:] if table.startswith("XML") else ""
    return int(digits) if digits.isdigit() else -1


def sorted_issues(issues: Iterable[Issue]) -> list[Issue]:
    """Errors first, then by table number, row and rule: a stable order for screens and tests."""
    return sorted(
        issues,
        key=lambda issue: (
            not issue.is_error,
            _table_number(issue.table),
            issue.table,
            issue.row or 0,
            issue.rule,
        ),
    )


def first_per_location(issues: Iterable[Issue]) -> list[Issue]:
    """Keep one error per (table, row, field): the most specific check runs first and wins, so an XSD
    message does not repeat what a business rule already said about the same element. Warnings and
    table-level findings are all kept."""
    seen: set[tuple[str, int | None, str]] = set()
    kept: list[Issue] = []
    for issue in issues:
        if issue.is_error and issue.field is not None:
            key = (issue.table, issue.row, issue.field)
            if key in seen:
                continue
            seen.add(key)
        kept.append(issue)
    return kept
