"""Adapter options: validated at start-up, errors name the option."""

from __future__ import annotations

import pytest

from adapters.his.errors import AdapterConfigError
from adapters.his.options import CommonOptions, Completion, parse_options
from adapters.his.qd130_tables.config import Qd130TablesOptions, table_ids
from adapters.his.sql_mapping.config import SqlMappingOptions


def test_completion_rules_pick_their_time_column() -> None:
    assert CommonOptions().completion_time_field == "NGAY_RA"
    assert CommonOptions(completion=Completion.PAYMENT).completion_time_field == "NGAY_TTOAN"
    status = SqlMappingOptions(
        completion=Completion.STATUS, status_values=("DONE",), status_time_field="closed_at"
    )
    assert status.completion_time_field == "CLOSED_AT"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"completion": "status"}, "needs status_values"),
        ({"completoin": "payment"}, "completoin: unknown option"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"retry_attempts": 0}, "retry_attempts"),
    ],
)
def test_bad_options_are_rejected_by_name(raw: dict[str, object], message: str) -> None:
    with pytest.raises(AdapterConfigError, match=r"his\.options for adapter 'sql_mapping'") as failed:
        parse_options(SqlMappingOptions, raw, "sql_mapping")
    assert message in str(failed.value)


def test_qd130_options_know_the_tables_and_their_columns() -> None:
    assert table_ids()[:3] == ("XML0", "XML1", "XML2")
    assert "XML12" not in table_ids()
    options = Qd130TablesOptions(
        tables={"xml1": "V_XML1", "XML0": ""}, columns={"XML1": {"ngay_ttoan": "NGAY_TT"}}
    )
    assert options.table_name("XML1") == "V_XML1"
    assert options.table_name("XML0") is None
    assert options.table_name("XML2") == "XML2"
    assert options.renames("XML1") == {"NGAY_TTOAN": "NGAY_TT"}
    for raw, message in [
        ({"tables": {"XML12": "x"}}, "unknown table id"),
        ({"columns": {"XML2": {"NGAY_RA": "x"}}}, "not a standard column of XML2"),
        ({"changed_at_column": "a; DROP TABLE x"}, "not a plain"),
        ({"completion": "status", "status_values": ["X"], "status_time_field": "NOPE"}, "status_time_field"),
    ]:
        with pytest.raises(AdapterConfigError, match=message):
            parse_options(Qd130TablesOptions, raw, "qd130_tables")
