"""Errors raised by HIS adapters. Messages carry ids, names of sections/columns and error codes only:
never a value read from the HIS (it may be personal data)."""

from __future__ import annotations

from pathlib import Path

from schemas.ports import SourceDataError, SourceUnavailableError


class AdapterError(Exception):
    """Base class of every error an HIS adapter raises on purpose."""


class AdapterConfigError(AdapterError):
    """The adapter cannot run with this configuration (unknown adapter, bad option, missing file …)."""


class MappingError(AdapterConfigError):
    """A mapping file (sql_mapping) is invalid; names the file, the section and the column when known."""

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        section: str | None = None,
        column: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.section = section
        self.column = column
        where = ", ".join(
            part
            for part in (
                f"file {self.file}" if self.file else "",
                f"section {section}" if section else "",
                f"column {column}" if column else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class EncounterDataError(AdapterError, SourceDataError):
    """One encounter's rows cannot be read into the canonical model (report it; other encounters go on)."""

    def __init__(
        self, his_key: str, message: str, *, section: str | None = None, column: str | None = None
    ) -> None:
        where = ".".join(part for part in (section, column) if part)
        SourceDataError.__init__(
            self,
            his_key,
            f"encounter {his_key}: {where + ': ' if where else ''}{message}",
            section=section,
            column=column,
        )


class HisQueryError(AdapterError):
    """A query failed for a reason retrying will not fix (bad SQL, missing column, permission, timeout)."""


class HisUnavailableError(AdapterError, SourceUnavailableError):
    """The HIS database stayed unreachable (or kept failing transiently) after every retry."""
