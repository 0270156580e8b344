"""``compact_moment`` reads QĐ 130 times exactly as ``datetime.strptime`` does, valid or not."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.domain.values import compact_moment

LAYOUTS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}


def reference(text: str) -> datetime | str:
    try:
        return datetime.strptime(text, LAYOUTS[len(text)])
    except ValueError:
        return "error"


def ours(text: str) -> datetime | str:
    try:
        return compact_moment(text)
    except ValueError:
        return "error"


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31)),
    st.sampled_from([8, 12, 14]),
)
def test_same_as_strptime_on_real_times(moment: datetime, length: int) -> None:
    text = moment.strftime("%Y%m%d%H%M%S")[:length]
    assert ours(text) == reference(text)


@given(
    st.text(alphabet="0123456789", min_size=8, max_size=8)
    | st.text(alphabet="0123456789", min_size=12, max_size=12)
)
def test_same_as_strptime_on_any_digits(text: str) -> None:
    # Impossible dates (month 13, 31 February, hour 25) fail in both.
    assert ours(text) == reference(text)


@pytest.mark.parametrize(
    "text", ["", "2026030", "2026-03-04", "20260304 1200", "２０２６０３０４", "202603041200001"]
)
def test_other_shapes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="yyyyMMdd"):
        compact_moment(text)
