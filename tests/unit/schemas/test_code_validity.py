"""``codes_valid_on`` answers from precomputed validity periods: it must equal a scan of the list, any day."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.spec import code_list, codes_valid_on, known_code_lists

LISTS = sorted(known_code_lists())
DATED = [name for name in LISTS if any(c.valid_from or c.valid_to for c in code_list(name))]


def scanned(name: str, day: date) -> frozenset[str]:
    return frozenset(code.code for code in code_list(name) if code.valid_on(day))


def test_some_lists_have_dated_codes_so_the_periods_are_exercised() -> None:
    assert DATED, "no code list has a valid_from/valid_to: the property below would prove little"


@settings(max_examples=300)
@given(name=st.sampled_from(LISTS), day=st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31)))
def test_same_codes_as_a_scan_of_the_list(name: str, day: date) -> None:
    assert codes_valid_on(name, day) == scanned(name, day)


def test_every_boundary_day_and_its_neighbours() -> None:
    for name in DATED:
        for code in code_list(name):
            for edge in (code.valid_from, code.valid_to):
                if edge is None:
                    continue
                for day in (edge - timedelta(days=1), edge, edge + timedelta(days=1)):
                    assert codes_valid_on(name, day) == scanned(name, day), (name, code.code, day)
