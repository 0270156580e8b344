"""Access tokens of the gateway, cached per (destination, account) until shortly before they expire.

The token call answers ``expires_in`` as a UTC date-time, not a number of seconds (DOMAIN.md §9.2, §9.6), and
its exact format is not published, so it is parsed tolerantly. A token is used until a few minutes before
that time; refreshes of one key are serialised, so a burst of sends after expiry logs in once.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from structlog import get_logger

log = get_logger(__name__)

Clock = Callable[[], datetime]
TokenKey = tuple[str, str]  # (destination, account)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Grant:
    """What one successful token call returned."""

    access_token: str
    id_token: str
    expires_at: datetime | None  # None: missing or unreadable expires_in


@dataclass(frozen=True, slots=True)
class AccessToken:
    access_token: str
    id_token: str
    issued_at: datetime
    expires_at: datetime | None
    refresh_at: datetime  # when the cache stops handing it out


_DOTNET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_DIGITS = re.compile(r"^\d+(?:\.\d+)?$")
_FORMATS_WITH_AM_PM = ("%m/%d/%Y %I:%M:%S %p", "%d/%m/%Y %I:%M:%S %p", "%Y-%m-%d %I:%M:%S %p")
_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%d-%m-%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%Y%m%d%H%M%S",
)
_EPOCH_SECONDS_FROM = 1_000_000_000  # numbers this large are Unix times, smaller ones lifetimes in seconds
_EPOCH_MILLIS_FROM = 100_000_000_000


def parse_expires_in(value: object, *, now: datetime) -> datetime | None:
    """Read the gateway's ``expires_in`` as an aware UTC datetime; ``None`` when it cannot be read.

    Accepted: ISO 8601 (with or without zone, ``Z``, fractions of any length), ``yyyyMMddHHmmss``,
    ``dd/MM/yyyy HH:mm:ss`` and the US ``M/d/yyyy h:mm:ss AM`` form of .NET, ``/Date(ms)/``, Unix seconds or
    milliseconds, and — in case a gateway follows OAuth after all — a small number of seconds from ``now``.
    A date-time without a zone is UTC, as the guide says.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _from_number(float(value), now)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{14}", text):
        return _as_utc(datetime.strptime(text, "%Y%m%d%H%M%S"))
    if _DIGITS.match(text):
        return _from_number(float(text), now)
    dotnet = _DOTNET_DATE.match(text)
    if dotnet:
        return datetime.fromtimestamp(int(dotnet.group(1)) / 1000, UTC)
    try:
        return _as_utc(datetime.fromisoformat(text))
    except ValueError:
        pass
    formats = _FORMATS_WITH_AM_PM if re.search(r"[AaPp][Mm]$", text) else _FORMATS
    for fmt in formats:
        try:
            return _as_utc(datetime.strptime(text, fmt))
        except ValueError:
            continue
    return None


def _from_number(number: float, now: datetime) -> datetime | None:
    if number < 0:
        return None
    if number >= _EPOCH_MILLIS_FROM:
        return datetime.fromtimestamp(number / 1000, UTC)
    if number >= _EPOCH_SECONDS_FROM:
        return datetime.fromtimestamp(number, UTC)
    return now + timedelta(seconds=number)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class TokenCache:
    """Thread-safe cache of access tokens; one lock per key serialises its refreshes."""

    def __init__(
        self,
        *,
        refresh_margin: timedelta = timedelta(minutes=3),
        fallback_lifetime: timedelta = timedelta(minutes=10),
        minimum_lifetime: timedelta = timedelta(seconds=30),
        clock: Clock = utc_now,
    ) -> None:
        self._refresh_margin = refresh_margin
        self._fallback_lifetime = fallback_lifetime
        self._minimum_lifetime = minimum_lifetime
        self._clock = clock
        self._tokens: dict[TokenKey, AccessToken] = {}
        self._key_locks: dict[TokenKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: TokenKey, fetch: Callable[[], Grant]) -> AccessToken:
        """The cached token for ``key``, or a new one from ``fetch`` (called by one thread at a time per key).

        Exceptions of ``fetch`` propagate and nothing is cached.
        """
        token = self._fresh(key)
        if token is not None:
            return token
        with self._lock_for(key):
            token = self._fresh(key)  # another thread may have refreshed while we waited
            if token is not None:
                return token
            token = self._issue(fetch())
            with self._lock:
                self._tokens[key] = token
            log.info(
                "gateway.token.issued",
                destination=key[0],
                expires_at=token.expires_at.isoformat() if token.expires_at else None,
                refresh_at=token.refresh_at.isoformat(),
            )
            return token

    def invalidate(self, key: TokenKey, token: AccessToken | None = None) -> None:
        """Drop the cached token of ``key`` — only if it is still ``token``, when given, so a thread holding a
        rejected token does not throw away the fresh one another thread just fetched."""
        with self._lock:
            current = self._tokens.get(key)
            if current is not None and (token is None or current is token):
                del self._tokens[key]

    def peek(self, key: TokenKey) -> AccessToken | None:
        with self._lock:
            return self._tokens.get(key)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _fresh(self, key: TokenKey) -> AccessToken | None:
        with self._lock:
            token = self._tokens.get(key)
        if token is not None and self._clock() < token.refresh_at:
            return token
        return None

    def _lock_for(self, key: TokenKey) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _issue(self, grant: Grant) -> AccessToken:
        now = self._clock()
        if grant.expires_at is None:
            refresh_at = now + self._fallback_lifetime
        else:
            lifetime = grant.expires_at - now
            # A few minutes early, but never more than a quarter of a short lifetime; and a token whose
            # expiry already looks past (clock skew) is still used briefly — a 401 makes us log in again.
            margin = min(self._refresh_margin, lifetime / 4) if lifetime > timedelta(0) else timedelta(0)
            refresh_at = max(grant.expires_at - margin, now + self._minimum_lifetime)
        return AccessToken(
            access_token=grant.access_token,
            id_token=grant.id_token,
            issued_at=now,
            expires_at=grant.expires_at,
            refresh_at=refresh_at,
        )


_shared_cache = TokenCache()


def shared_token_cache() -> TokenCache:
    """The process-wide cache: gateways created per task still share one login per (destination, account)."""
    return _shared_cache
