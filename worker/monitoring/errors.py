"""Describing a failure in one line safe to print or log: connection-level messages in full (credentials in
URLs masked), anything else by exception type only, since a query error may quote a value read from a database.
Shared by the health checks, the certificate watch and the alert conditions."""

from __future__ import annotations

import re

import httpx
import kombu.exceptions
import redis.exceptions
import sqlalchemy as sa

from adapters.his.errors import AdapterError
from adapters.signers.errors import SignerError

_URL_CREDENTIALS = re.compile(r"(://[^:/@\s]+):[^@\s]+@")


#: Errors whose messages describe a connection or a configuration, never data read from a database (adapter
#: and signer messages carry ids only).
_CONNECTION_LEVEL_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    sa.exc.TimeoutError,
    sa.exc.ArgumentError,
    OSError,
    httpx.TransportError,
    httpx.InvalidURL,
    kombu.exceptions.KombuError,
    redis.exceptions.ConnectionError,
    AdapterError,
    SignerError,
)


def describe_error(exc: BaseException) -> str:
    """A one-line description safe to print: connection-level messages in full (credentials in URLs masked),
    anything else by exception type only, since a query error may quote a value read from the database."""
    name = type(exc).__name__
    if not isinstance(exc, _CONNECTION_LEVEL_ERRORS):
        return name
    # A DBAPIError's own text echoes the statement; the driver's message (``orig``) does not.
    text = str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else str(exc)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = _URL_CREDENTIALS.sub(r"\1:***@", first)[:240]
    return f"{name}: {first}" if first else name
