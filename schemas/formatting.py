"""Canonical values → the text of one XML element (DOMAIN.md §7).

* ``datetime12`` → ``yyyyMMddHHmm`` and ``date8`` → ``yyyyMMdd``, in Vietnam local time, no zone suffix;
* NGAY_SINH → :meth:`BirthDate.format12` (``0000`` for unknown parts);
* decimals → fixed point, never an exponent, ``ROUND_HALF_UP`` to 3 places for quantities and unit prices
  (SO_LUONG, DON_GIA*) and 2 for amounts (THANH_TIEN_*, T_*) — see :func:`schemas.constraints.decimal_places`;
* text → NFC, surrounding whitespace removed; characters XML 1.0 cannot carry (C0 controls other than tab,
  LF, CR; lone surrogates; U+FFFE/U+FFFF) and C1/DEL control characters are *rejected*, never dropped,
  because silently changing clinical text is worse than asking the HIS to fix it.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from schemas.domain.values import VIETNAM_TZ, BirthDate

QUANTUM = {places: Decimal(1).scaleb(-places) for places in range(6)}
_ZERO_TEXT = {places: f"{Decimal(0).quantize(quantum):f}" for places, quantum in QUANTUM.items()}

#: Anything outside XML 1.0 ``Char`` or a C1/DEL control character.
_BAD_CHAR = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ValueFormatError(ValueError):
    """A value cannot be written as the standard requires. ``kind`` selects the rule text."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


def datetime12(value: datetime) -> str:
    local = value.astimezone(VIETNAM_TZ) if value.tzinfo is not None else value
    return f"{local.year:04d}{local.month:02d}{local.day:02d}{local.hour:02d}{local.minute:02d}"


def date8(value: date) -> str:
    if isinstance(value, datetime):
        value = (value.astimezone(VIETNAM_TZ) if value.tzinfo is not None else value).date()
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def decimal_text(value: Decimal | int, places: int) -> str:
    """Fixed-point text with exactly ``places`` decimals: ``261100`` → ``261100.00``; never ``1E+3``.

    After quantising to exponent ``-places`` (at most 5), ``str`` never chooses scientific notation.
    """
    number = Decimal(value) if isinstance(value, int) else value
    if not number.is_finite():
        raise ValueFormatError("not_finite")
    try:
        result = number.quantize(QUANTUM[places], rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:  # more digits than the context precision allows
        raise ValueFormatError("not_finite") from exc
    if not result:
        return _ZERO_TEXT[places]  # no "-0.00"
    return str(result)


def text(value: str) -> str:
    """NFC-normalised, stripped text; raises :class:`ValueFormatError` on characters XML 1.0 cannot carry."""
    bad = _BAD_CHAR.search(value)
    if bad is not None:
        code = ord(bad.group())
        kind = (
            "control_char" if 0x7F <= code <= 0x9F else "invalid_char"
        )  # C1/DEL are XML-legal, still garbage
        raise ValueFormatError(kind, f"U+{code:04X} at position {bad.start() + 1}")
    if not value.isascii() and not unicodedata.is_normalized("NFC", value):
        value = unicodedata.normalize("NFC", value)
    return value.strip()


def birth_text(value: BirthDate) -> str:
    return value.format12()
