"""§12.1 as a table: every kind of answer or failure and the Outcome it must produce."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from urllib3 import exceptions as http_errors

from adapters.gateway.bhxh.classify import (
    classify_send_response,
    classify_token_response,
    classify_transport_error,
)
from schemas.ports import Outcome

NOW = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)


def _json(**data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, _json(maKetQua="200", maGiaoDich="GD1", thoiGianTiepNhan="20260304100000"), Outcome.ACCEPTED),
        (200, _json(maKetQua=200), Outcome.ACCEPTED),  # a number, not a string
        (200, _json(MaKetQua="200"), Outcome.ACCEPTED),  # key case
        (200, _json(maKetQua="401"), Outcome.AUTH),
        (200, _json(maKetQua="402"), Outcome.CONFIG),
        (200, _json(maKetQua="403"), Outcome.CONFIG),
        (200, _json(maKetQua="500"), Outcome.TRANSIENT),
        (200, _json(maKetQua="999", thongDiep="Sai cấu trúc"), Outcome.DATA_ERROR),
        (200, _json(maKetQua="413"), Outcome.DATA_ERROR),
        (200, b"<html>Bad Gateway</html>", Outcome.TRANSIENT),  # non-JSON
        (200, b'{"maKetQua":"20', Outcome.TRANSIENT),  # truncated JSON
        (200, b"[]", Outcome.TRANSIENT),  # JSON, not an object
        (200, _json(thongDiep="no code"), Outcome.TRANSIENT),
        (500, b"", Outcome.TRANSIENT),
        (502, b"<html/>", Outcome.TRANSIENT),
        (503, _json(maKetQua="200"), Outcome.TRANSIENT),  # 5xx wins over the body
        (504, b"", Outcome.TRANSIENT),
        (429, b"Too Many Requests", Outcome.TRANSIENT),
        (400, b"Bad Request", Outcome.DATA_ERROR),
        (404, b"Not Found", Outcome.DATA_ERROR),
        (413, b"", Outcome.DATA_ERROR),
        (400, _json(maKetQua="200"), Outcome.DATA_ERROR),  # a 4xx is never an acceptance
        (400, _json(maKetQua="401"), Outcome.AUTH),
        (401, b"", Outcome.AUTH),
        (403, b"", Outcome.CONFIG),
        (302, b"", Outcome.CONFIG),
    ],
)
def test_send_answers(status: int, body: bytes, outcome: Outcome) -> None:
    assert classify_send_response(status, body).outcome is outcome


def test_accepted_answer_keeps_the_receipt_fields() -> None:
    result = classify_send_response(
        200, _json(maKetQua="200", maGiaoDich="GD1", thoiGianTiepNhan="20260304100000", thongDiep="OK")
    )
    assert (result.ma_ket_qua, result.ma_giao_dich, result.thoi_gian_tiep_nhan) == (
        "200",
        "GD1",
        "20260304100000",
    )
    assert result.thong_diep == "OK"
    assert result.duplicate is False


@pytest.mark.parametrize("flag", [True, "true", "1", 1])
def test_already_received_answer_is_an_accepted_duplicate(flag: object) -> None:
    result = classify_send_response(200, _json(maKetQua="200", maGiaoDich="GD1", daTiepNhan=flag))
    assert result.outcome is Outcome.ACCEPTED
    assert result.duplicate is True


def test_duplicate_flag_on_a_rejection_is_not_a_duplicate() -> None:
    result = classify_send_response(200, _json(maKetQua="999", daTiepNhan=True))
    assert (result.outcome, result.duplicate) == (Outcome.DATA_ERROR, False)


def test_data_error_keeps_thong_diep() -> None:
    result = classify_send_response(200, _json(maKetQua="422", thongDiep="Thiếu NGAY_VAO"))
    assert result.thong_diep == "Thiếu NGAY_VAO"


def _token_body(key: str = "APIKey", **api_key: object) -> bytes:
    fields = {"access_token": "A", "id_token": "I", "expires_in": "2026-03-04T04:00:00Z"} | api_key
    return _json(maKetQua="200", **{key: fields})


@pytest.mark.parametrize("key", ["APIKey", "apiKey", "ApiKey"])
def test_token_grant_accepts_either_key_case(key: str) -> None:
    answer = classify_token_response(200, _token_body(key), now=NOW)
    assert answer.failure is None
    assert answer.grant is not None
    assert (answer.grant.access_token, answer.grant.id_token) == ("A", "I")
    assert answer.grant.expires_at == datetime(2026, 3, 4, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, _json(maKetQua="401"), Outcome.CONFIG),  # account does not exist
        (200, _json(maKetQua="402"), Outcome.CONFIG),  # wrong facility
        (200, _json(maKetQua="403"), Outcome.CONFIG),  # locked
        (200, _json(maKetQua="777"), Outcome.CONFIG),
        (200, _json(maKetQua="500"), Outcome.TRANSIENT),
        (200, _json(maKetQua="200"), Outcome.TRANSIENT),  # no APIKey
        (200, b"<html/>", Outcome.TRANSIENT),
        (503, b"", Outcome.TRANSIENT),
        (429, b"", Outcome.TRANSIENT),
        (401, b"", Outcome.CONFIG),
        (404, b"", Outcome.CONFIG),
    ],
)
def test_token_failures(status: int, body: bytes, outcome: Outcome) -> None:
    answer = classify_token_response(status, body, now=NOW)
    assert answer.grant is None
    assert answer.failure is not None
    assert answer.failure.outcome is outcome


@pytest.mark.parametrize(
    ("exc", "body_sent", "outcome"),
    [
        (http_errors.NewConnectionError(None, "refused"), False, Outcome.TRANSIENT),
        (http_errors.ConnectTimeoutError("slow"), False, Outcome.TRANSIENT),
        (http_errors.EmptyPoolError(None, "busy"), False, Outcome.TRANSIENT),
        (http_errors.ProtocolError("write failed", BrokenPipeError()), False, Outcome.TRANSIENT),
        (http_errors.ReadTimeoutError(None, "/api", "late"), False, Outcome.TRANSIENT),
        (http_errors.ReadTimeoutError(None, "/api", "late"), True, Outcome.UNKNOWN),
        (http_errors.ProtocolError("dropped", ConnectionResetError()), True, Outcome.UNKNOWN),
        (ConnectionResetError("reset"), True, Outcome.UNKNOWN),
        (http_errors.ProtocolError("dropped", ConnectionResetError()), False, Outcome.TRANSIENT),
        (http_errors.URLSchemeUnknown("ftp"), False, Outcome.CONFIG),
        (http_errors.LocationParseError("http://[::1"), False, Outcome.CONFIG),
        (http_errors.ProxySchemeUnknown("socks9"), False, Outcome.CONFIG),
    ],
)
def test_transport_failures(exc: Exception, body_sent: bool, outcome: Outcome) -> None:
    assert classify_transport_error(exc, body_sent=body_sent) is outcome
