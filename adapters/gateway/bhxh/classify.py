"""Classification of gateway answers and transport failures into :class:`schemas.ports.Outcome` (DOMAIN.md §12.1).

Pure functions of what came back (status, body bytes, exception type, whether the body had been sent), so
the rules can be read and tested in one place. Decisions where §12.1 is silent, marked [I]:

- When the JSON body carries ``maKetQua`` it decides; otherwise the HTTP status does. HTTP 5xx and 429
  are transient whatever the body says.
- HTTP 401 without a ``maKetQua`` is treated like ``maKetQua`` 401 (log in again), HTTP 402/403 like
  ``maKetQua`` 402/403 (configuration); a redirect (3xx) is configuration too: the URL is wrong.
- A connection dropped after the whole body was sent (no answer) is UNKNOWN, like a read timeout: the
  gateway may have stored the file, so the identical bytes are resent and the duplicate answer settles it.
- A token call that fails with anything but a transient error stops the destination (CONFIG): no number of
  retries fixes an unknown, wrong-facility or locked account.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from urllib3 import exceptions as http_errors

from adapters.gateway.bhxh import protocol
from adapters.gateway.bhxh.token_cache import Grant, parse_expires_in
from schemas.ports import Outcome

_BY_RESULT_CODE: Mapping[str, Outcome] = {
    protocol.RESULT_OK: Outcome.ACCEPTED,
    protocol.RESULT_UNAUTHENTICATED: Outcome.AUTH,
    protocol.RESULT_WRONG_FACILITY: Outcome.CONFIG,
    protocol.RESULT_FORBIDDEN: Outcome.CONFIG,
    protocol.RESULT_SYSTEM_ERROR: Outcome.TRANSIENT,
}


@dataclass(frozen=True, slots=True)
class Classified:
    """One answer (or failure) of one HTTP call, classified; the client turns it into a GatewayReceipt."""

    outcome: Outcome
    http_status: int | None = None
    ma_ket_qua: str | None = None
    ma_giao_dich: str | None = None
    thoi_gian_tiep_nhan: str | None = None
    thong_diep: str | None = None  # may echo personal data: receipt only, never logged
    duplicate: bool = False
    error: str | None = None  # exception type name of a transport failure (safe to log)


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` (not JSON, not an object, not UTF-8)."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def field(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]`` matched case-insensitively (``maKetQua``/``MaKetQua``, ``APIKey``/``apiKey``)."""
    if name in data:
        return data[name]
    lowered = name.lower()
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _code(data: Mapping[str, Any] | None) -> str | None:
    if data is None:
        return None
    code = _text(field(data, protocol.KEY_MA_KET_QUA))
    if code is not None and code.endswith(".0") and code[:-2].isdigit():
        code = code[:-2]  # 200.0 from a JSON number written as a float
    return code


def _by_http_status(status: int) -> Outcome:
    if status >= 500 or status == 429:
        return Outcome.TRANSIENT
    if status == 401:
        return Outcome.AUTH
    if status in (402, 403) or 300 <= status < 400:
        return Outcome.CONFIG
    if 400 <= status < 500:
        return Outcome.DATA_ERROR
    return Outcome.TRANSIENT  # 2xx without a readable body, 1xx


def classify_send_response(status: int, body: bytes) -> Classified:
    """A check-in or send answer. ``AUTH`` here means "401": the client logs in once and retries before it
    reports ``AUTH``."""
    data = parse_json_object(body)
    code = _code(data)
    details: dict[str, Any] = {"http_status": status, "ma_ket_qua": code}
    if data is not None:
        details |= {
            "ma_giao_dich": _text(field(data, protocol.KEY_MA_GIAO_DICH)),
            "thoi_gian_tiep_nhan": _text(field(data, protocol.KEY_THOI_GIAN_TIEP_NHAN)),
            "thong_diep": _text(field(data, protocol.KEY_THONG_DIEP)),
        }
    if status >= 500 or status == 429 or code is None:
        return Classified(outcome=_by_http_status(status), **details)
    if 200 <= status < 300:
        outcome = _BY_RESULT_CODE.get(code, Outcome.DATA_ERROR)
    elif code != protocol.RESULT_OK and code in _BY_RESULT_CODE:
        outcome = _BY_RESULT_CODE[code]  # an error status whose body names a known code: the code decides
    else:
        outcome = _by_http_status(status)
    duplicate = (
        outcome is Outcome.ACCEPTED and data is not None and _is_true(field(data, protocol.DUPLICATE_FLAG))
    )
    return Classified(outcome=outcome, duplicate=duplicate, **details)


def _is_true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or value == 1


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    grant: Grant | None  # set when the call succeeded
    failure: Classified | None  # set otherwise


def classify_token_response(status: int, body: bytes, *, now: datetime) -> TokenAnswer:
    """The answer of ``/api/token/take``: a :class:`Grant`, or a failure classified TRANSIENT or CONFIG."""
    data = parse_json_object(body)
    code = _code(data)
    thong_diep = _text(field(data, protocol.KEY_THONG_DIEP)) if data is not None else None

    def failed(outcome: Outcome) -> TokenAnswer:
        return TokenAnswer(
            grant=None,
            failure=Classified(outcome=outcome, http_status=status, ma_ket_qua=code, thong_diep=thong_diep),
        )

    if status >= 500 or status == 429:
        return failed(Outcome.TRANSIENT)
    if not 200 <= status < 300:
        return failed(Outcome.CONFIG)
    if data is None:
        return failed(Outcome.TRANSIENT)
    api_key = field(data, protocol.KEY_API_KEY)
    access_token = _text(field(api_key, "access_token")) if isinstance(api_key, dict) else None
    if code in (None, protocol.RESULT_OK) and access_token is not None:
        assert isinstance(api_key, dict)
        grant = Grant(
            access_token=access_token,
            id_token=_text(field(api_key, "id_token")) or "",
            expires_at=parse_expires_in(field(api_key, "expires_in"), now=now),
        )
        return TokenAnswer(grant=grant, failure=None)
    if code in (None, protocol.RESULT_OK, protocol.RESULT_SYSTEM_ERROR):
        return failed(Outcome.TRANSIENT)  # 200 without a usable token is a malformed answer
    return failed(Outcome.CONFIG)


def classify_transport_error(exc: Exception, *, body_sent: bool) -> Outcome:
    """A call that got no HTTP answer. ``body_sent``: the whole request had been written to the socket."""
    if isinstance(exc, http_errors.LocationValueError | http_errors.ProxySchemeUnknown):
        return Outcome.CONFIG  # base_url (or the proxy's) is wrong; retrying cannot help
    if body_sent and isinstance(exc, http_errors.ReadTimeoutError | http_errors.ProtocolError | OSError):
        return Outcome.UNKNOWN  # the whole request was written: the gateway may have it
    return Outcome.TRANSIENT
