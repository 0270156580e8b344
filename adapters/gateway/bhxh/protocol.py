"""The wire format of the BHXH gateway API (DOMAIN.md §9), shared by the client and the simulator.

Everything a request or a response is made of lives here, once: paths per variant, header and form field
names, result codes, the password hash and the form encoding. The client and the simulator both import it,
so a correction (say, after a test on the training host) changes both sides at once.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Final, Literal
from urllib.parse import quote_plus

Variant = Literal["3176", "4750"]
VARIANTS: Final[tuple[Variant, ...]] = ("3176", "4750")

TOKEN_PATH: Final = "/api/token/take"  # noqa: S105 - a protocol name, not a secret


def checkin_path(variant: str) -> str:
    """Check-in (XML0) endpoint. Note the case: ``checkInKcbQd…`` (lower-case ``d``), unlike the send path."""
    return f"/api/qd130/checkInKcbQd{variant}"


def send_path(variant: str) -> str:
    """Claim/visit file (``GIAMDINHHS``) endpoint: ``guiHoSoXmlQD…`` (upper-case ``QD``)."""
    return f"/api/qd130/guiHoSoXmlQD{variant}"


# -- request ---------------------------------------------------------------------------------------------
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
HEADER_ACCESS_TOKEN: Final = "accessToken"  # noqa: S105 - a protocol name, not a secret
HEADER_TOKEN_ID: Final = "tokenId"  # noqa: S105 - a protocol name, not a secret
HEADER_PASSWORD_HASH: Final = "passwordHash"  # noqa: S105 - a protocol name, not a secret

FIELD_USERNAME: Final = "username"
FIELD_PASSWORD: Final = "password"  # noqa: S105 - a protocol name, not a secret
FIELD_LOAI_HO_SO: Final = "loaiHoSo"
FIELD_MA_TINH: Final = "maTinh"
FIELD_MA_CSKCB: Final = "maCSKCB"
FIELD_FILE: Final = "fileHSBase64"

LOAI_HO_SO_CHECKIN: Final = "0"  # XML0 alone (codes/GATEWAY_LOAIHOSO.csv)
LOAI_HO_SO_CLAIM: Final = "130"  # the signed GIAMDINHHS file

ROOT_CHECKIN: Final = "CHI_TIEU_TRANG_THAI_KCB"
ROOT_CLAIM: Final = "GIAMDINHHS"

# -- response --------------------------------------------------------------------------------------------
KEY_MA_KET_QUA: Final = "maKetQua"
KEY_MA_GIAO_DICH: Final = "maGiaoDich"
KEY_THOI_GIAN_TIEP_NHAN: Final = "thoiGianTiepNhan"
KEY_THONG_DIEP: Final = "thongDiep"
KEY_API_KEY: Final = "APIKey"  # some gateways/clients spell it apiKey: readers match case-insensitively

RESULT_OK: Final = "200"
RESULT_UNAUTHENTICATED: Final = "401"  # send: token missing/expired; token call: account does not exist
RESULT_WRONG_FACILITY: Final = "402"
RESULT_FORBIDDEN: Final = "403"  # send: unauthorised; token call: account locked
RESULT_SYSTEM_ERROR: Final = "500"

DUPLICATE_FLAG: Final = "daTiepNhan"
"""[I] The "already received" answer. The gateway's behaviour on a resubmitted identical file is not documented
(DOMAIN.md §12.3), so we define it for the simulator and recognise it in the client: ``maKetQua`` ``"200"``
with the ORIGINAL ``maGiaoDich`` and ``thoiGianTiepNhan`` and ``"daTiepNhan": true``. Any client that only
reads ``maKetQua`` still treats it as success; ours also reports ``duplicate=True``."""

RECEIPT_TIME_FORMAT: Final = "%Y%m%d%H%M%S"  # thoiGianTiepNhan, Vietnam time


def password_md5(password: str) -> str:
    """The gateway's password form: MD5 of the UTF-8 password as upper-case hex (DOMAIN.md §9.2)."""
    # MD5 is what the gateway prescribes; it is an identifier of the secret here, not a protection of it.
    return hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()


def encode_file(signed: bytes) -> str:
    """``fileHSBase64``: standard base64 (``+``, ``/``, ``=`` padding) of the exact signed bytes."""
    return base64.b64encode(signed).decode("ascii")


_BASE64_ONLY = re.compile(r"[A-Za-z0-9+/=]*")


def _form_value(value: str) -> str:
    # A signed file's base64 is tens of KB: replacing its three reserved characters in C gives the same
    # bytes as quote_plus at a fraction of the cost (the benchmark measured 0.55 ms per file for urlencode).
    if _BASE64_ONLY.fullmatch(value):
        return value.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return quote_plus(value, safe="")


def encode_form(fields: Mapping[str, str]) -> bytes:
    """``application/x-www-form-urlencoded`` body. Every reserved character is percent-encoded, so base64's
    ``+``, ``/`` and ``=`` travel as ``%2B``, ``%2F``, ``%3D`` (a raw ``+`` would be read back as a space)."""
    return "&".join(
        f"{quote_plus(key, safe='')}={_form_value(value)}" for key, value in fields.items()
    ).encode("ascii")
