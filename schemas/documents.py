"""Rendered rows → one inner table document (DOMAIN.md §4), and back.

Documents are built with lxml element factories and serialised once, compactly, in UTF-8. Every element of
the profile's field list is emitted in spec order, empty (``<X/>``) when there is no value; the root
declares ``xmlns:xsi``/``xmlns:xsd`` like the files in circulation.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence

from lxml import etree

from schemas.spec import TABLE_LAYOUTS

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
NSMAP = {"xsi": XSI_NS, "xsd": XSD_NS}
XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'
SIGNATURE_ELEMENT = "CHUKYDONVI"

_SubElement = etree.SubElement


def is_single_record(table: str) -> bool:
    """Tables whose fields sit directly under the root (XML1, XML7, XML8, XML10, XML11, XML13, XML14)."""
    return TABLE_LAYOUTS[table].row is None


_templates = threading.local()


def _record_template(tag: str, names: tuple[str, ...]) -> etree._Element:
    """An empty record with every field element: copying it (in C) is about twice as fast as creating the
    elements one by one, which matters for large records. Kept per thread, like the parsers."""
    cache: dict[tuple[str, tuple[str, ...]], etree._Element] | None = getattr(_templates, "cache", None)
    if cache is None:
        cache = _templates.cache = {}
    record = cache.get((tag, names))
    if record is None:
        record = cache[(tag, names)] = etree.Element(tag, nsmap=NSMAP)
        for name in names:
            _SubElement(record, name)
    return record


def _record(tag: str, row: Mapping[str, str]) -> etree._Element:
    record = copy.copy(_record_template(tag, tuple(row)))
    for element, value in zip(record, row.values(), strict=True):
        if value:
            element.text = value
    return record


def table_tree(table: str, rows: Sequence[Mapping[str, str]]) -> etree._Element:
    """The element tree of one table. Single-record tables take the first row (callers pass one)."""
    layout = TABLE_LAYOUTS[table]
    if layout.list_element is None or layout.row is None:
        root = _record(layout.root, rows[0])
    else:
        root = etree.Element(layout.root, nsmap=NSMAP)
        rows_parent = _SubElement(root, layout.list_element)
        for row in rows:
            rows_parent.append(_record(layout.row, row))
    if table == "XML0":
        _SubElement(root, SIGNATURE_ELEMENT)  # the check-in is signed on its own (§3.3)
    return root


def serialise(root: etree._Element, *, declaration: bool) -> bytes:
    body: bytes = etree.tostring(root, encoding="utf-8")
    return XML_DECLARATION + body if declaration else body


_parsers = threading.local()


def _safe_parser() -> etree.XMLParser:
    """One parser per thread (lxml parsers must not be shared across threads): no DTDs, entities or network."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
    return parser


def parse(document: bytes) -> etree._Element:
    """Parse bytes from elsewhere (CLI, gateway simulator); raises ``etree.XMLSyntaxError``."""
    return etree.fromstring(document, parser=_safe_parser())


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname


def read_rows(table: str, root: etree._Element) -> list[dict[str, str]]:
    """The rows of a parsed table document as element name → text (namespace prefixes ignored)."""
    layout = TABLE_LAYOUTS[table]
    if layout.list_element is None or layout.row is None:
        records = [root]
    else:
        records = [
            record
            for rows_parent in root
            if isinstance(rows_parent.tag, str) and local_name(rows_parent) == layout.list_element
            for record in rows_parent
            if isinstance(record.tag, str) and local_name(record) == layout.row
        ]
    return [
        {
            local_name(child): (child.text or "").strip()
            for child in record
            if isinstance(child.tag, str) and local_name(child) != SIGNATURE_ELEMENT
        }
        for record in records
    ]
