"""What the simulator's behaviour and its HTTP layer exchange: a parsed request, a reply, the gateway's JSON
answer shape (DOMAIN.md §9, field names from ``bhxh.protocol``) and the form decoding both sides use."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from adapters.gateway.bhxh import protocol

Clock = Callable[[], datetime]
JSON_TYPE = "application/json; charset=utf-8"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SimRequest:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)
    drop_connection: bool = False  # "received but the response is lost"


NOT_FOUND = Reply(status=404, body=b"Not Found", content_type="text/plain")


@dataclass(frozen=True, slots=True)
class FileRoute:
    """What a check-in or send path receives: which variant, which ``loaiHoSo``, which endpoint."""

    variant: str
    loai_ho_so: str
    endpoint: str  # "checkin" / "send"


def json_reply(data: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(data, ensure_ascii=False).encode("utf-8"))


def result_reply(code: str, message: str, **extra: Any) -> Reply:
    """The gateway's answer to a file call: result code, transaction id, receipt time, message."""
    return json_reply(
        {
            protocol.KEY_MA_KET_QUA: code,
            protocol.KEY_MA_GIAO_DICH: extra.pop("ma_giao_dich", None),
            protocol.KEY_THOI_GIAN_TIEP_NHAN: extra.pop("thoi_gian_tiep_nhan", None),
            protocol.KEY_THONG_DIEP: message,
            **extra,
        }
    )


def first_value(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def parse_form(body: bytes) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body (first value of each field); None when not ASCII."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    parsed = parse_qs(text, keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}
