"""structlog setup: JSON in production, console on a TTY, and a redaction processor for personal data.

Luật 91/2025 makes health data sensitive: log lines carry ids and hashes only. The redaction processor is
the last line of defence — code should not log personal data in the first place — and it is deliberately
aggressive: keys that name personal data are dropped, and values that look like CCCD, BHYT card or phone
numbers are masked wherever they appear.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"

#: Keys whose values are personal data or raw payloads, by their standard or common names (lower case).
SENSITIVE_KEYS = frozenset(
    {
        "ho_ten",
        "name",
        "full_name",
        "patient_name",
        "ten_benh_nhan",
        "ho_ten_cha",
        "ho_ten_me",
        "ho_ten_nnd",
        "ho_ten_con",
        "nguoi_giam_ho",
        "so_cccd",
        "cccd",
        "cmnd",
        "passport",
        "so_cccd_nnd",
        "ma_the_bhyt",
        "bhyt",
        "card",
        "card_number",
        "ma_the_tam",
        "ma_the_nnd",
        "dien_thoai",
        "phone",
        "telephone",
        "ngay_sinh",
        "dob",
        "birth_date",
        "date_of_birth",
        "dia_chi",
        "address",
        "noi_cu_tru_nnd",
        "chan_doan_vao",
        "chan_doan_rv",
        "diagnosis",
        "ma_benh_chinh",
        "ma_benh_kt",
        "ma_benh_yhct",
        "icd",
        "qt_benhly",
        "tomtat_kq",
        "dien_bien_ls",
        "ket_luan",
        "gia_tri",
        "payload",
        "body",
        "xml",
        "content",
        "file_hs_base64",
        "filehsbase64",
        "noidungfile",
        "thongdiep",
        "password",
        "passphrase",
        "pin",
        "secret",
        "token",
        "access_token",
        "id_token",
        "authorization",
        "private_key",
        "ma_bhxh",
    }
)

#: Keys that carry our own identifiers or hashes: their values are kept as they are.
SAFE_KEYS = frozenset(
    {
        "ma_lk",
        "ledger_id",
        "version_id",
        "task_id",
        "his_key",
        "payload_hash",
        "content_hash",
        "sha256",
        "request_hash",
        "row_hash",
        "prev_hash",
        "ma_giao_dich",
        "magiaodich",
        "timestamp",
        "destination",
        "batch_id",
        "parent_id",
        "root_id",
        "worker",
        "hostname",
        "cursor",
    }
)

_VALUE_PATTERNS = (
    # BHYT card: 2 letters + 1 digit + 2 digits (province) + 10 digits, sometimes lower case in HIS data.
    re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{13}(?![A-Za-z0-9])"),
    # CCCD (12 digits), CMND (9 digits), passports (letter + 7 digits) and phone numbers (0 + 9-10 digits).
    re.compile(r"(?<![A-Za-z0-9])\d{12}(?![A-Za-z0-9])"),
    re.compile(r"(?<![A-Za-z0-9])(?:\+?84|0)\d{9,10}(?![A-Za-z0-9])"),
    re.compile(r"(?<![A-Za-z0-9])\d{9}(?![A-Za-z0-9])"),
    re.compile(r"(?<![A-Za-z0-9])[A-Z]\d{7}(?![A-Za-z0-9])"),
)


def redact_text(text: str) -> str:
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: _redact_item(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


def _redact_item(key: str, value: Any) -> Any:
    lowered = key.lower()
    if lowered in SENSITIVE_KEYS:
        return REDACTED
    if lowered in SAFE_KEYS:
        return value
    return _redact(value)


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop personal-data keys and mask identifier-shaped values."""
    for key in list(event_dict):
        event_dict[key] = _redact_item(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog and route stdlib logging (Celery, SQLAlchemy, httpx) through the same pipeline."""
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_personal_data,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty() if hasattr(stream, "isatty") else False)
        if use_console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "sqlalchemy.engine", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
