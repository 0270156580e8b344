"""Layer 1 of validation: the generated XSDs (``schemas/xsd/<profile>/``), with findings as :class:`Issue`.

libxml2's messages quote the offending value, so they are never passed on: each error is mapped to the
element it concerns (table, row, field) and a generic reason derived from its error type.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Protocol, cast

from lxml import etree

from schemas.issues import Issue
from schemas.messages import issue
from schemas.spec import TABLE_LAYOUTS, Profile

XSD_ROOT = Path(str(resources.files("schemas"))) / "xsd"
ENVELOPE_SCHEMA = "GIAMDINHHS"

#: libxml2 error type → (Vietnamese, English) reason, without any value.
_REASONS: dict[str, tuple[str, str]] = {
    "SCHEMAV_CVC_PATTERN_VALID": ("sai định dạng", "wrong format"),
    "SCHEMAV_CVC_MAXLENGTH_VALID": ("quá dài", "too long"),
    "SCHEMAV_CVC_MINLENGTH_VALID": ("trống", "empty"),
    "SCHEMAV_CVC_LENGTH_VALID": ("sai độ dài", "wrong length"),
    "SCHEMAV_CVC_ENUMERATION_VALID": ("giá trị không được phép", "value not allowed"),
    "SCHEMAV_CVC_DATATYPE_VALID_1_2_1": ("sai kiểu dữ liệu", "wrong data type"),
    "SCHEMAV_CVC_COMPLEX_TYPE_2_3": ("không được chứa văn bản", "text not allowed here"),
    "SCHEMAV_CVC_COMPLEX_TYPE_2_4": ("thiếu hoặc thừa phần tử", "missing or unexpected element"),
    "SCHEMAV_CVC_TYPE_3_1_2": ("không được có phần tử con", "must not have child elements"),
    "SCHEMAV_CVC_ELT_1": ("phần tử gốc không đúng", "wrong root element"),
}
_DEFAULT_REASON = ("không khớp lược đồ", "does not match the schema")
_ELEMENT = re.compile(r"Element '([^']+)'")
_EXPECTED = re.compile(r"Expected is (?:one of )?\( ([^)]*) \)")
_STEP = re.compile(r"^([^\[]+)(?:\[(\d+)\])?$")

_local = threading.local()


class _LogEntry(Protocol):
    """What we read of an lxml error-log entry (the lxml stubs leave the log untyped)."""

    type_name: str
    path: str | None
    message: str | None


def schema_for(profile: Profile, name: str) -> etree.XMLSchema:
    """The compiled XSD ``schemas/xsd/<profile>/<name>.xsd``; cached per thread (lxml objects are not shared)."""
    cache: dict[tuple[Profile, str], etree.XMLSchema] | None = getattr(_local, "schemas", None)
    if cache is None:
        cache = _local.schemas = {}
    schema = cache.get((profile, name))
    if schema is None:
        schema = cache[(profile, name)] = etree.XMLSchema(
            etree.parse(str(XSD_ROOT / profile.value / f"{name}.xsd"))
        )
    return schema


def _locate(table: str, path: str | None) -> tuple[int | None, str | None]:
    """(row, field) of an XPath such as ``/ROOT/LIST/ROW[2]/FIELD``; row 1-based, None for single records."""
    steps = [step for step in (path or "").split("/") if step]
    layout = TABLE_LAYOUTS.get(table)
    if layout is None:  # the envelope: the innermost element names the problem
        leaf = _STEP.match(steps[-1]) if len(steps) > 1 else None
        return None, leaf.group(1) if leaf else None
    row: int | None = None
    field: str | None = None
    depth = 1 if layout.row is None else 3
    for index, step in enumerate(steps):
        match = _STEP.match(step)
        if match is None:
            continue
        name, position = match.group(1), match.group(2)
        if layout.row is not None and name == layout.row:
            row = int(position or 1)
        if index == depth:
            field = name
    return row, field


def _sibling_names(tree: etree._Element, path: str | None) -> set[str]:
    """Names of the elements next to the one at ``path`` (libxml2 paths are plain, index-qualified XPath)."""
    try:
        found = tree.getroottree().xpath(path) if path else []
    except etree.XPathError:
        return set()
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        return set()
    parent = found[0].getparent()
    return {etree.QName(child).localname for child in parent} if parent is not None else set()


def _to_issue(table: str, error: _LogEntry, tree: etree._Element) -> Issue:
    reason_vi, reason_en = _REASONS.get(error.type_name, _DEFAULT_REASON)
    row, field = _locate(table, error.path)
    message = error.message or ""
    if error.type_name == "SCHEMAV_ELEMENT_CONTENT":
        expected_match = _EXPECTED.search(message)
        expected = [name.strip() for name in expected_match.group(1).split(",")] if expected_match else []
        named = _ELEMENT.search(message)
        missing = "Missing child" in message or (
            bool(expected) and not _sibling_names(tree, error.path) & set(expected)
        )
        if missing and expected:
            field = expected[0]
            reason_vi, reason_en = "thiếu phần tử", "element missing"
        elif named:
            field = named.group(1)
            reason_vi, reason_en = "phần tử thừa hoặc sai thứ tự", "unexpected or misplaced element"
    if field is None:
        return issue(table, row, None, "xsd_structure", reason_vi=reason_vi, reason_en=reason_en)
    return issue(table, row, field, "xsd", reason_vi=reason_vi, reason_en=reason_en)


def validate_tree(
    table: str, tree: etree._Element, profile: Profile, *, schema_name: str | None = None
) -> list[Issue]:
    schema = schema_for(profile, schema_name or table)
    if schema.validate(tree):
        return []
    entries = cast("Iterable[_LogEntry]", schema.error_log)  # iterable at runtime; untyped in lxml-stubs
    return [_to_issue(table, error, tree) for error in entries]
