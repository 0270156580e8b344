"""The wire format: paths per variant (mind the case), the MD5 password form and the form encoding."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs

from adapters.gateway.bhxh import protocol


def test_paths_follow_the_variant_and_the_guide_s_case() -> None:
    assert protocol.TOKEN_PATH == "/api/token/take"
    assert protocol.checkin_path("3176") == "/api/qd130/checkInKcbQd3176"
    assert protocol.send_path("3176") == "/api/qd130/guiHoSoXmlQD3176"
    assert protocol.checkin_path("4750") == "/api/qd130/checkInKcbQd4750"
    assert protocol.send_path("4750") == "/api/qd130/guiHoSoXmlQD4750"


def test_password_is_upper_case_hex_md5() -> None:
    assert protocol.password_md5("password") == "5F4DCC3B5AA765D61D8327DEB882CF99"
    assert protocol.password_md5("mật khẩu") == hashlib.md5("mật khẩu".encode()).hexdigest().upper()


def test_form_percent_encodes_base64_plus_slash_and_padding() -> None:
    body = protocol.encode_form({"username": "79999_BV", "fileHSBase64": "ab+/cd=="})
    assert body == b"username=79999_BV&fileHSBase64=ab%2B%2Fcd%3D%3D"
    assert parse_qs(body.decode())["fileHSBase64"] == ["ab+/cd=="]


def test_file_is_standard_base64_of_the_exact_bytes() -> None:
    signed = bytes(range(256)) * 3 + b"\xfb\xff"  # yields '+', '/' and '=' padding
    encoded = protocol.encode_file(signed)
    assert {"+", "/", "="} <= set(encoded)
    assert base64.b64decode(encoded, validate=True) == signed
    body = protocol.encode_form({protocol.FIELD_FILE: encoded})
    assert not {b"+", b"/", b"="} & {bytes([c]) for c in body.split(b"=", 1)[1]}
    assert base64.b64decode(parse_qs(body.decode())[protocol.FIELD_FILE][0]) == signed
