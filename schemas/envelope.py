"""The GIAMDINHHS envelope (DOMAIN.md §3.2): build it, take it apart, and hash what it carries.

``content_hash`` identifies the *content* of a claim — the inner documents, named and in order — and not
the envelope, whose NGAYLAP changes with the day it is built. The same encounter content therefore gets the
same hash on any day, which is what idempotency and "did anything change?" need (§12.3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from datetime import date

from lxml import etree

from schemas.documents import NSMAP, SIGNATURE_ELEMENT, XML_DECLARATION, local_name, parse

ENVELOPE_ROOT = "GIAMDINHHS"


class EnvelopeFormatError(ValueError):
    """The bytes are not a GIAMDINHHS envelope we can read (message names the problem, never content)."""


def content_hash(documents: Iterable[tuple[str, bytes]]) -> str:
    """SHA-256 (hex) over each inner document as ``LOAIHOSO NUL length NUL bytes``, in envelope order.

    The explicit length keeps the framing unambiguous: no two different sets of documents hash alike.
    """
    digest = hashlib.sha256()
    for name, content in documents:
        digest.update(name.encode("utf-8"))
        digest.update(b"\x00")
        digest.update(str(len(content)).encode("ascii"))
        digest.update(b"\x00")
        digest.update(content)
    return digest.hexdigest()


def build_envelope(facility_code: str, created: date, documents: Sequence[tuple[str, bytes]]) -> bytes:
    """The unsigned envelope: compact, UTF-8, one HOSO, FILEHOSO in the order given, empty CHUKYDONVI last."""
    sub = etree.SubElement
    root = etree.Element(ENVELOPE_ROOT, nsmap=NSMAP)
    sub(sub(root, "THONGTINDONVI"), "MACSKCB").text = facility_code
    record = sub(root, "THONGTINHOSO")
    sub(record, "NGAYLAP").text = f"{created.year:04d}{created.month:02d}{created.day:02d}"
    sub(record, "SOLUONGHOSO").text = "1"  # one visit per file (DOMAIN.md §3.2, §15 row 4)
    hoso = sub(sub(record, "DANHSACHHOSO"), "HOSO")
    for name, content in documents:
        filehoso = sub(hoso, "FILEHOSO")
        sub(filehoso, "LOAIHOSO").text = name
        sub(filehoso, "NOIDUNGFILE").text = base64.b64encode(content).decode("ascii")
    sub(root, SIGNATURE_ELEMENT)
    body: bytes = etree.tostring(root, encoding="utf-8")
    return XML_DECLARATION + body


def _child(element: etree._Element, name: str) -> etree._Element | None:
    for child in element:
        if isinstance(child.tag, str) and local_name(child) == name:
            return child
    return None


def file_entries(root: etree._Element) -> list[tuple[str, str]]:
    """(LOAIHOSO, NOIDUNGFILE text) of every FILEHOSO in document order; namespace prefixes ignored."""
    entries = []
    for element in root.iter():
        if isinstance(element.tag, str) and local_name(element) == "FILEHOSO":
            kind = _child(element, "LOAIHOSO")
            content = _child(element, "NOIDUNGFILE")
            name = (kind.text or "").strip() if kind is not None else ""
            entries.append((name, (content.text or "") if content is not None else ""))
    return entries


def decode_entry(text: str) -> bytes:
    """NOIDUNGFILE text → bytes; whitespace (line-wrapped base64) is tolerated, other junk is not."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeFormatError("NOIDUNGFILE is not valid base64") from exc


def decode_envelope(document: bytes) -> dict[str, bytes]:
    """LOAIHOSO → inner document bytes, in envelope order. A signature inside CHUKYDONVI is ignored."""
    try:
        root = parse(document)
    except etree.XMLSyntaxError as exc:
        raise EnvelopeFormatError("the envelope is not well-formed XML") from exc
    if local_name(root) != ENVELOPE_ROOT:
        raise EnvelopeFormatError(f"the root element is not {ENVELOPE_ROOT}")
    decoded: dict[str, bytes] = {}
    for name, text in file_entries(root):
        if name in decoded:
            raise EnvelopeFormatError(f"LOAIHOSO {name} appears more than once")
        decoded[name] = decode_entry(text)
    return decoded


def content_hash_of_envelope(document: bytes) -> str:
    """The ``content_hash`` that :func:`schemas.builders.build_claim` gave this envelope's content."""
    return content_hash(decode_envelope(document).items())
