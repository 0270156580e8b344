"""Validate documents made elsewhere: an inner table document, an XML0 check-in, a whole envelope.

Used by ``vneid-sync payload validate`` and by the gateway simulator. Envelopes are checked against the
GIAMDINHHS XSD and the §3.2 invariants, each decoded document against its table XSD, and — unless
``business_rules=False`` — the documents of the visit against the business rules of ``schemas.rules``.
A signature inside CHUKYDONVI is tolerated. Findings never quote the content.
"""

from __future__ import annotations

from lxml import etree

from schemas.documents import local_name, parse, read_rows
from schemas.envelope import ENVELOPE_ROOT, EnvelopeFormatError, decode_entry, file_entries
from schemas.issues import Issue, first_per_location, sorted_issues
from schemas.messages import issue
from schemas.rules import RuleContext, check_documents
from schemas.spec import ENVELOPE_TABLES, TABLE_LAYOUTS, Profile
from schemas.xsd_validation import ENVELOPE_SCHEMA, validate_tree

_ENVELOPE_ORDER = {table: index for index, table in enumerate(ENVELOPE_TABLES)}
ROOT_TABLES = {layout.root: table for table, layout in TABLE_LAYOUTS.items() if table != "XML12"}


def _parse(table: str, document: bytes) -> tuple[etree._Element | None, list[Issue]]:
    try:
        return parse(document), []
    except etree.XMLSyntaxError:
        return None, [issue(table, None, None, "parse")]


def _document_issues(
    table: str, document: bytes, profile: Profile
) -> tuple[etree._Element | None, list[Issue]]:
    root, issues = _parse(table, document)
    if root is None:
        return None, issues
    if local_name(root) != TABLE_LAYOUTS[table].root:
        return None, [issue(table, None, None, "root")]
    return root, validate_tree(table, root, profile)


def validate_document(table: str, xml_bytes: bytes, profile: Profile) -> list[Issue]:
    """XSD validation of one inner document (``XML0`` … ``XML15``, not XML12)."""
    _, issues = _document_issues(table, xml_bytes, profile)
    return sorted_issues(issues)


def validate_table_document(
    table: str, xml_bytes: bytes, profile: Profile, *, business_rules: bool = True
) -> list[Issue]:
    """XSD plus, optionally, the business rules that one document can support on its own."""
    root, issues = _document_issues(table, xml_bytes, profile)
    if root is not None and business_rules and not any(found.is_error for found in issues):
        context = RuleContext(profile=profile, whole_visit=False)
        issues.extend(check_documents({table: read_rows(table, root)}, context))
    return sorted_issues(first_per_location(issues))


def validate_envelope_bytes(document: bytes, profile: Profile, *, business_rules: bool = True) -> list[Issue]:
    """Envelope XSD and §3.2 invariants, each decoded inner document's XSD, and the business rules."""
    root, issues = _parse(ENVELOPE_ROOT, document)
    if root is None:
        return issues
    if local_name(root) != ENVELOPE_ROOT:
        return [issue(ENVELOPE_ROOT, None, None, "root")]
    issues.extend(validate_tree(ENVELOPE_ROOT, root, profile, schema_name=ENVELOPE_SCHEMA))
    hoso = [
        element for element in root.iter() if isinstance(element.tag, str) and local_name(element) == "HOSO"
    ]
    declared = next(
        (el.text or "" for el in root.iter() if isinstance(el.tag, str) and local_name(el) == "SOLUONGHOSO"),
        "",
    ).strip()
    if declared.isdigit() and int(declared) != len(hoso):
        issues.append(issue(ENVELOPE_ROOT, None, "SOLUONGHOSO", "hoso_count"))
    documents: dict[str, list[dict[str, str]]] = {}
    unreadable = False  # a document we could not read: cross-document rules (totals, keys) would mislead
    last_position = -1
    for name, text in file_entries(root):
        if name not in _ENVELOPE_ORDER:
            issues.append(issue(ENVELOPE_ROOT, None, "LOAIHOSO", "unknown_table"))
            continue
        if name in documents:
            issues.append(issue(name, None, None, "duplicate_table"))
            continue
        if _ENVELOPE_ORDER[name] < last_position:
            issues.append(issue(ENVELOPE_ROOT, None, None, "table_order"))
        last_position = max(last_position, _ENVELOPE_ORDER[name])
        try:
            inner = decode_entry(text)
        except EnvelopeFormatError:
            issues.append(issue(name, None, None, "base64"))
            unreadable = True
            continue
        table_root, table_issues = _document_issues(name, inner, profile)
        issues.extend(table_issues)
        if table_root is None:
            unreadable = True
        else:
            documents[name] = read_rows(name, table_root)
    if "XML1" not in documents and not any(found.table == "XML1" for found in issues):
        issues.append(issue(ENVELOPE_ROOT, None, None, "missing_xml1"))
    if business_rules and documents and not unreadable:
        facility = next(
            (el.text or "" for el in root.iter() if isinstance(el.tag, str) and local_name(el) == "MACSKCB"),
            "",
        ).strip()
        issues.extend(
            check_documents(documents, RuleContext(profile=profile, facility_code=facility or None))
        )
    return sorted_issues(first_per_location(issues))


def table_of_root(document: bytes) -> str | None:
    """``GIAMDINHHS`` for an envelope, the table name for an inner/check-in document, else ``None``."""
    try:
        root = parse(document)
    except etree.XMLSyntaxError:
        return None
    name = local_name(root)
    return ENVELOPE_ROOT if name == ENVELOPE_ROOT else ROOT_TABLES.get(name)
