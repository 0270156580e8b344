"""Which database errors are worth retrying, and the retry loop around HIS queries.

Only transient failures are retried: the connection dropped or could not be opened, the server is restarting,
a deadlock or serialisation failure, a lock wait timed out, SQLite is busy. Everything else (bad SQL, missing
column, permission, statement timeout, read-only violation) fails at once: repeating it cannot help and would
only hide a configuration error. The classification reads the driver's own error codes (PostgreSQL SQLSTATE,
MySQL/MariaDB error numbers, SQLite result codes), not message texts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import psycopg
import pymysql
import sqlalchemy.exc as sa_exc
from structlog import get_logger
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential, wait_random

from adapters.his.errors import HisQueryError, HisUnavailableError

log = get_logger(__name__)
T = TypeVar("T")

#: PostgreSQL SQLSTATEs that a retry can fix: serialization_failure, deadlock_detected, lock_not_available,
#: admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections (class 08 is added below).
_PG_TRANSIENT = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})
#: MySQL/MariaDB error numbers a retry can fix: too many connections (1040), server shutdown (1053),
#: network errors (1158-1161), lock wait timeout (1205), deadlock (1213), connection killed (1927, MariaDB),
#: client disconnected for inactivity (4031, MySQL 8), can't connect (2003), gone away (2006), lost (2013).
_MYSQL_TRANSIENT = frozenset({1040, 1053, 1158, 1159, 1160, 1161, 1205, 1213, 1927, 4031, 2003, 2006, 2013})
#: SQLite primary result codes: SQLITE_BUSY, SQLITE_LOCKED.
_SQLITE_TRANSIENT = frozenset({5, 6})


def is_transient(exc: BaseException) -> bool:
    """True when repeating the same read later may succeed."""
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # pool checkout timed out / connection found dead: a fresh checkout may work
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True  # SQLAlchemy recognised a disconnect; the pool reconnects on the next checkout
        return exc.orig is not None and is_transient_driver_error(exc.orig)
    return is_transient_driver_error(exc)


def is_transient_driver_error(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:
            # No SQLSTATE: the failure happened in the connection itself (closed socket, server gone).
            return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return state in _PG_TRANSIENT or state.startswith("08")
    if isinstance(exc, pymysql.err.Error):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code in _MYSQL_TRANSIENT
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and (code & 0xFF) in _SQLITE_TRANSIENT
    return False


def error_code(exc: BaseException) -> str:
    """A short, value-free description of a database error: class name and driver code."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    code: object = None
    if isinstance(orig, psycopg.Error):
        code = orig.sqlstate
    elif isinstance(orig, pymysql.err.Error) and orig.args:
        code = orig.args[0]
    elif isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorname", None)
    name = type(orig).__name__
    return f"{name} ({code})" if code is not None else name


def run_with_retry(
    operation: str, attempt: Callable[[], T], *, attempts: int, initial_wait_s: float = 0.5
) -> T:
    """Run ``attempt`` (which opens its own connection), retrying transient failures with jittered
    exponential back-off. Raises ``HisUnavailableError`` when retries run out and ``HisQueryError`` for a
    failure that is not transient; both chain the driver error."""

    def _before_sleep(state: object) -> None:
        outcome = getattr(state, "outcome", None)
        exc = outcome.exception() if outcome is not None else None
        log.warning(
            "his.retry",
            operation=operation,
            attempt=getattr(state, "attempt_number", None),
            error=error_code(exc) if exc is not None else None,
        )

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=initial_wait_s, max=8.0) + wait_random(0, initial_wait_s),
        before_sleep=_before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except (sa_exc.SQLAlchemyError, psycopg.Error, pymysql.err.Error, sqlite3.Error) as exc:
        if is_transient(exc):
            raise HisUnavailableError(
                f"{operation}: HIS database unavailable after {attempts} attempts: {error_code(exc)}"
            ) from exc
        raise HisQueryError(f"{operation}: query failed: {error_code(exc)}") from exc
