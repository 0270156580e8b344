"""The fast form encoder must give exactly the bytes of the standard library's urlencode(quote_plus)."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus, urlencode

from hypothesis import given
from hypothesis import strategies as st

from adapters.gateway.bhxh.protocol import encode_form


@given(st.binary(max_size=3000), st.text(max_size=40))
def test_same_bytes_as_urlencode(signed: bytes, other: str) -> None:
    fields = {"username": "79999_BV", "note": other, "fileHSBase64": base64.b64encode(signed).decode("ascii")}
    assert encode_form(fields) == urlencode(list(fields.items()), quote_via=quote_plus, safe="").encode(
        "ascii"
    )
