"""Token cache: tolerant expires_in, refresh a few minutes early, one refresh at a time, careful invalidation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from adapters.gateway.bhxh.token_cache import Grant, TokenCache, parse_expires_in

NOW = datetime(2026, 3, 4, 3, 0, 0, tzinfo=UTC)
KEY = ("bhxh", "79999_BV")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-04T04:00:00Z", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),
        ("2026-03-04T04:00:00", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),  # no zone: UTC
        ("2026-03-04 04:00:00", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),
        ("2026-03-04T11:00:00+07:00", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),
        ("2026-03-04T04:00:00.1234567Z", datetime(2026, 3, 4, 4, 0, 0, 123456, tzinfo=UTC)),
        ("20260304040000", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),
        ("04/03/2026 04:00:00", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),  # dd/MM/yyyy
        ("3/4/2026 4:00:00 AM", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),  # .NET en-US
        ("3/4/2026 4:00:00 PM", datetime(2026, 3, 4, 16, 0, tzinfo=UTC)),
        ("/Date(1772596800000)/", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),
        (1772596800, datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),  # Unix seconds
        ("1772596800000", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),  # Unix milliseconds
        (3600, NOW + timedelta(hours=1)),  # OAuth-style lifetime
        ("3600", NOW + timedelta(hours=1)),
        ("  2026-03-04T04:00:00Z ", datetime(2026, 3, 4, 4, 0, tzinfo=UTC)),
    ],
)
def test_expires_in_formats(value: object, expected: datetime) -> None:
    assert parse_expires_in(value, now=NOW) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "31/31/2026 00:00:00", True, {"a": 1}, -5])
def test_unreadable_expires_in_is_none(value: object) -> None:
    assert parse_expires_in(value, now=NOW) is None


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class CountingFetch:
    def __init__(self, lifetime: timedelta | None = timedelta(hours=1), clock: Clock | None = None) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.clock = clock or Clock()

    def __call__(self) -> Grant:
        self.calls += 1
        expires = self.clock() + self.lifetime if self.lifetime is not None else None
        return Grant(access_token=f"token-{self.calls}", id_token=f"id-{self.calls}", expires_at=expires)


def test_token_is_reused_until_a_few_minutes_before_expiry() -> None:
    clock = Clock()
    cache = TokenCache(refresh_margin=timedelta(minutes=3), clock=clock)
    fetch = CountingFetch(clock=clock)
    first = cache.get(KEY, fetch)
    assert first.refresh_at == NOW + timedelta(minutes=57)
    clock.now = NOW + timedelta(minutes=56, seconds=59)
    assert cache.get(KEY, fetch) is first
    clock.now = NOW + timedelta(minutes=57)
    second = cache.get(KEY, fetch)
    assert second.access_token == "token-2"
    assert fetch.calls == 2


def test_keys_are_separate_per_destination_and_account() -> None:
    cache = TokenCache(clock=Clock())
    fetch = CountingFetch()
    cache.get(("bhxh", "a"), fetch)
    cache.get(("bhxh", "b"), fetch)
    cache.get(("hub", "a"), fetch)
    cache.get(("bhxh", "a"), fetch)
    assert fetch.calls == 3


def test_short_lifetime_refreshes_at_three_quarters_and_past_expiry_is_used_briefly() -> None:
    clock = Clock()
    cache = TokenCache(minimum_lifetime=timedelta(seconds=30), clock=clock)
    short = cache.get(KEY, CountingFetch(lifetime=timedelta(minutes=4), clock=clock))
    assert short.refresh_at == NOW + timedelta(minutes=3)
    cache.clear()
    skewed = cache.get(KEY, CountingFetch(lifetime=timedelta(minutes=-10), clock=clock))
    assert skewed.refresh_at == NOW + timedelta(seconds=30)


def test_missing_expiry_uses_the_fallback_lifetime() -> None:
    clock = Clock()
    cache = TokenCache(fallback_lifetime=timedelta(minutes=10), clock=clock)
    token = cache.get(KEY, CountingFetch(lifetime=None, clock=clock))
    assert token.refresh_at == NOW + timedelta(minutes=10)


def test_concurrent_callers_log_in_once() -> None:
    cache = TokenCache(clock=Clock())
    entered = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def slow_fetch() -> Grant:
        calls.append(1)
        entered.set()
        release.wait(10)
        return Grant("shared", "id", NOW + timedelta(hours=1))

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(KEY, slow_fetch).access_token))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    assert entered.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == ["shared"] * 8
    assert len(calls) == 1


def test_invalidate_only_drops_the_token_that_was_rejected() -> None:
    cache = TokenCache(clock=Clock())
    fetch = CountingFetch()
    stale = cache.get(KEY, fetch)
    cache.invalidate(KEY, stale)
    fresh = cache.get(KEY, fetch)
    cache.invalidate(KEY, stale)  # a late thread still holding the old one
    assert cache.peek(KEY) is fresh


def test_failed_fetch_caches_nothing() -> None:
    cache = TokenCache(clock=Clock())

    def failing() -> Grant:
        raise RuntimeError("token call failed")

    with pytest.raises(RuntimeError):
        cache.get(KEY, failing)
    assert cache.peek(KEY) is None
