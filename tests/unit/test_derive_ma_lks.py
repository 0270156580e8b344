"""``derive_ma_lks`` (coverage's bulk MA_LKs) must give exactly what ``derive_ma_lk`` gives key by key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.domain import derive_ma_lk, derive_ma_lks

PLAIN = st.text(alphabet="abcXYZ0189-_", max_size=12)
ANY_KEY = st.one_of(PLAIN, st.text(max_size=12), st.text(alphabet="V0123456789", min_size=90, max_size=100))
FACILITY = st.sampled_from(["79999", "01001", "A-1", "", "bệnh_viện"])


@given(FACILITY, st.lists(PLAIN, max_size=30, unique=True))
def test_plain_keys_get_the_readable_ma_lk(facility: str, keys: list[str]) -> None:
    assert derive_ma_lks(facility, keys) == {derive_ma_lk(facility, key): key for key in keys}


@given(FACILITY, st.lists(ANY_KEY, max_size=30, unique=True))
def test_any_mix_of_keys_gets_what_derive_ma_lk_gives(facility: str, keys: list[str]) -> None:
    assert derive_ma_lks(facility, keys) == {derive_ma_lk(facility, key): key for key in keys}


def test_one_long_or_unusual_key_sends_the_whole_batch_key_by_key() -> None:
    long_key = "V" * 95
    mapped = derive_ma_lks("79999", ["V1", long_key, "khám lại"])
    assert mapped["79999-V1"] == "V1"
    assert set(mapped.values()) == {"V1", long_key, "khám lại"}
    assert sum(ma_lk.startswith("79999-h") for ma_lk in mapped) == 2  # hashed, as derive_ma_lk does
