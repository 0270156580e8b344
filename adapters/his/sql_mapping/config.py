"""Options of the ``sql_mapping`` adapter (``[his.options]``); the queries themselves are in the mapping
file named by ``his.mapping_file``."""

from __future__ import annotations

import re

from pydantic import field_validator

from adapters.his.options import CommonOptions

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SqlMappingOptions(CommonOptions):
    """The encounters query must return the column the completion rule reads: ``NGAY_RA`` (discharge),
    ``NGAY_TTOAN`` (payment) or ``STATUS`` plus ``status_time_field`` (status)."""

    @field_validator("status_time_field")
    @classmethod
    def _plain_column_name(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a plain column alias (letters, digits, underscore)")
        return value.upper()
