"""Options of the ``qd130_tables`` adapter (``[his.options]``).

Example::

    [his]
    adapter = "qd130_tables"
    url = "postgresql+psycopg://vneid_ro@his-db/his"
    [his.options]
    db_schema = "bhyt"
    tables = { XML1 = "V_XML1_TONGHOP", XML0 = "" }      # "" = the HIS has no such table
    columns = { XML1 = { NGAY_TTOAN = "NGAY_THANH_TOAN" } }  # standard name = HIS column
    changed_at_column = "NGAY_CAP_NHAT"
    completion = "payment"
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from adapters.his.assemble import sections
from adapters.his.options import CommonOptions
from schemas.spec import base_fields

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#]*$")


def table_ids() -> tuple[str, ...]:
    """The QĐ 130 tables that feed a section of the encounter, in spec order (XML0, XML1, … XML15)."""
    found = {spec.table for spec in sections().values()}
    return tuple(sorted(found, key=lambda name: int(name[3:])))


def standard_columns(table_id: str) -> tuple[str, ...]:
    return tuple(spec.name for spec in base_fields(table_id))


class Qd130TablesOptions(CommonOptions):
    db_schema: str | None = Field(
        None, description="Database schema holding the tables (default: the URL's)."
    )
    tables: dict[str, str] = Field(
        default_factory=dict,
        description='Table id → table or view name, e.g. { XML1 = "V_XML1" }; "" when the HIS has none.',
    )
    columns: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Table id → { standard column = HIS column } for renamed columns."
    )
    changed_at_column: str | None = Field(
        None,
        description="XML1 column holding the last change time; default: the completion time column "
        "(then corrections are found only by the periodic sweep).",
    )
    status_column: str = Field("TRANG_THAI", description="XML1 column read when completion = status.")
    time_format: Literal["native", "yyyyMMddHHmm"] = Field(
        "native",
        description="How the completion/change columns are stored: native timestamps or yyyyMMddHHmm text.",
    )
    ma_lk: Literal["as_is", "derive"] = Field(
        "as_is", description="MA_LK: the HIS's own value (as_is) or derived from facility code + HIS key."
    )
    hiv_flag_column: str | None = Field(
        None, description="Column of XML2/XML3/XML4 that marks HIV-restricted lines (non-zero = restricted)."
    )

    @field_validator("status_time_field")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _known_names(self) -> Self:
        known = table_ids()
        for table_id in (*self.tables, *self.columns):
            if table_id.upper() not in known:
                raise ValueError(f"unknown table id {table_id!r}; known: {', '.join(known)}")
        for table_id, renames in self.columns.items():
            standard = set(standard_columns(table_id.upper()))
            for name in renames:
                if name.upper() not in standard:
                    raise ValueError(
                        f"columns.{table_id}: {name!r} is not a standard column of {table_id.upper()}"
                    )
        for identifier in (self.db_schema, self.changed_at_column, self.status_column, self.hiv_flag_column):
            if identifier is not None and not _IDENTIFIER.match(identifier):
                raise ValueError(f"{identifier!r} is not a plain table/column identifier")
        for table_name in self.tables.values():
            if table_name and not _IDENTIFIER.match(table_name):
                raise ValueError(f"{table_name!r} is not a plain table name")
        if self.status_time_field not in standard_columns("XML1"):
            raise ValueError("status_time_field must be a standard XML1 column (NGAY_RA, NGAY_TTOAN …)")
        return self

    def table_name(self, table_id: str) -> str | None:
        """The configured name of a table (the id itself by default); ``None`` when disabled."""
        for key, value in self.tables.items():
            if key.upper() == table_id:
                return value or None
        return table_id

    def renames(self, table_id: str) -> dict[str, str]:
        for key, value in self.columns.items():
            if key.upper() == table_id:
                return {standard.upper(): column for standard, column in value.items()}
        return {}
