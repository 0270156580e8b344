"""What the simulator checks in a received file, in order: base64, well-formed XML, root element, structure
(XSD via ``schemas`` when available), signature against the trust store; and what it extracts for duplicate
detection (``MA_LK``, content hash).

Each check sits behind one function, so swapping an implementation is one line:

- ``structure_issues``: with ``structure_check="schemas"`` (the default ``auto`` picks it when the payload layer
  is importable) the XSDs and business rules of ``schemas.validate_envelope_bytes`` / ``validate_document``;
  with ``"minimal"`` only the fixed frame of DOMAIN.md §3.2/§3.3 (for hand-made test files). Both require
  the ``Signature`` inside ``CHUKYDONVI``.
- ``decode_tables`` / ``claim_content_hash``: ``schemas.decode_envelope`` / ``schemas.content_hash_of_envelope``
  when present (so the simulator's content hash equals the ledger's), else local equivalents.
- ``SignatureVerifier``: ``xmlsec1 --verify`` (the reference verifier of DOMAIN.md §10.6), independent of the
  code that signs — a simulator that verified with our own signer's code could not catch its bugs.

The result codes of rejections are the simulator's own (the gateway publishes no catalogue, DOMAIN.md §9.5);
all of them fall in the client's DATA_ERROR class. ``thongDiep`` texts never contain values from the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lxml import etree

from adapters.gateway.bhxh import protocol
from schemas.spec import ENVELOPE_TABLES, TABLE_LAYOUTS, Profile

DS_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"

# Rejection codes (maKetQua) of the simulator.
CODE_BAD_REQUEST = "400"  # form: missing/invalid field, loaiHoSo or maTinh mismatch, unencoded base64 chars
CODE_BAD_BASE64 = "410"
CODE_BAD_XML = "411"
CODE_WRONG_ROOT = "412"
CODE_BAD_STRUCTURE = "413"
CODE_BAD_SIGNATURE = "414"
CODE_FACILITY_MISMATCH = "415"  # MACSKCB inside the file differs from the maCSKCB form field

_MAX_ISSUES_IN_MESSAGE = 5


class Rejected(Exception):  # noqa: N818 - a verdict, not an error of the simulator
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Inspection:
    root: str
    ma_lk: str
    content_hash: str
    tables: tuple[str, ...]
    facility_code: str | None  # MACSKCB of the envelope (None for a check-in, which has none)
    signature_verified: bool | None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_blank_text=False
    )


def decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(CODE_BAD_BASE64, "fileHSBase64 không phải base64 hợp lệ") from None


def parse_xml(document: bytes, *, code: str = CODE_BAD_XML, what: str = "File") -> Any:
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError:
        raise Rejected(code, f"{what} không phải XML hợp lệ") from None
    # lxml-stubs lack DocInfo.doctype; a DOCTYPE has no place in a gateway file (entity tricks).
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise Rejected(code, f"{what} không được có DOCTYPE")
    return root


def _children(element: Any) -> list[Any]:
    return [child for child in element if isinstance(child.tag, str)]


def _child_text(element: Any, tag: str) -> str | None:
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    return str(child.text).strip() or None


# -- structure -------------------------------------------------------------------------------------------
_SCHEMAS_MODULES = ("schemas", "schemas.envelope", "schemas.validation")


def _schemas_function(name: str) -> Callable[..., Any] | None:
    """A function of the payload layer (``schemas`` or its ``envelope``/``validation`` module), looked up
    lazily: ``None`` until it exists."""
    for module_name in _SCHEMAS_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        function: Callable[..., Any] | None = getattr(module, name, None)
        if callable(function):
            return function
    return None


StructureCheck = Literal["auto", "schemas", "minimal"]


def resolve_structure_check(choice: StructureCheck) -> Literal["schemas", "minimal"]:
    """``auto``: the XSD validation of ``schemas`` once it exists, else the minimal check."""
    available = _schemas_function("validate_envelope_bytes") is not None
    if choice == "schemas" and not available:
        raise RuntimeError("schemas.validate_envelope_bytes is not available")
    if choice == "auto":
        return "schemas" if available else "minimal"
    return choice


def structure_issues(
    document: bytes, root: Any, variant: str, check: Literal["schemas", "minimal"]
) -> list[str]:
    """Problems with the document's structure; empty when valid. Either way the signature must be there."""
    if check == "minimal":
        return minimal_structure_issues(root)
    profile = Profile.QD3176 if variant == "3176" else Profile.QD4750
    if root.tag == protocol.ROOT_CLAIM:
        validate_envelope = _schemas_function("validate_envelope_bytes")
        assert validate_envelope is not None  # resolve_structure_check made sure
        found = validate_envelope(document, profile)
    else:
        validate_document = _schemas_function("validate_document")
        found = validate_document("XML0", document, profile) if validate_document else _checkin_issues(root)
    return [_describe(issue) for issue in found if _is_error(issue)] + _signature_slot_issues(root)


def _describe(issue: Any) -> str:
    """``location: message`` of a schemas Issue (which never quotes content), or the string itself."""
    location, message = getattr(issue, "location", None), getattr(issue, "message_vi", None)
    return f"{location}: {message}" if location and message else str(issue)


def _is_error(issue: Any) -> bool:
    if isinstance(issue, str):
        return True
    severity = getattr(issue, "severity", "error")
    return str(getattr(severity, "value", severity)).lower() not in ("warning", "info")


def minimal_structure_issues(root: Any) -> list[str]:
    """The fixed frame of DOMAIN.md §3.2 (GIAMDINHHS) and §3.3 (XML0); not a substitute for the XSD."""
    if root.tag == protocol.ROOT_CHECKIN:
        return _checkin_issues(root)
    return _envelope_issues(root)


def _signature_slot_issues(root: Any) -> list[str]:
    slot = root.find("CHUKYDONVI")
    if slot is None:
        return ["CHUKYDONVI thiếu"]
    children = _children(slot)
    if len(children) != 1 or children[0].tag != f"{{{DS_NAMESPACE}}}Signature":
        return ["CHUKYDONVI phải chứa đúng một ds:Signature"]
    return []


def _checkin_issues(root: Any) -> list[str]:
    tags = [child.tag for child in _children(root)]
    if tags != ["DSACH_TRANG_THAI_KCB", "CHUKYDONVI"]:
        return ["Thứ tự phần tử gốc phải là DSACH_TRANG_THAI_KCB, CHUKYDONVI"]
    rows = root.findall("DSACH_TRANG_THAI_KCB/TRANG_THAI_KCB")
    issues = [] if rows else ["Thiếu TRANG_THAI_KCB"]
    issues += [
        f"TRANG_THAI_KCB {n}: thiếu MA_LK" for n, row in enumerate(rows, 1) if not _child_text(row, "MA_LK")
    ]
    return issues + _signature_slot_issues(root)


def _envelope_issues(root: Any) -> list[str]:
    tags = [child.tag for child in _children(root)]
    if tags != ["THONGTINDONVI", "THONGTINHOSO", "CHUKYDONVI"]:
        return ["Thứ tự phần tử gốc phải là THONGTINDONVI, THONGTINHOSO, CHUKYDONVI"]
    issues: list[str] = []
    facility = _child_text(root.find("THONGTINDONVI"), "MACSKCB")
    if facility is None or len(facility) != 5:
        issues.append("MACSKCB phải có 5 ký tự")
    info = root.find("THONGTINHOSO")
    if [child.tag for child in _children(info)] != ["NGAYLAP", "SOLUONGHOSO", "DANHSACHHOSO"]:
        return [*issues, "THONGTINHOSO phải gồm NGAYLAP, SOLUONGHOSO, DANHSACHHOSO"]
    if not re.fullmatch(r"\d{8}", _child_text(info, "NGAYLAP") or ""):
        issues.append("NGAYLAP phải có dạng yyyyMMdd")
    records = info.findall("DANHSACHHOSO/HOSO")
    if not records:
        issues.append("DANHSACHHOSO không có HOSO")
    if (_child_text(info, "SOLUONGHOSO") or "") != str(len(records)):
        issues.append("SOLUONGHOSO khác số HOSO")
    for number, record in enumerate(records, 1):
        issues += [f"HOSO {number}: {issue}" for issue in _record_issues(record)]
    return issues + _signature_slot_issues(root)


def _record_issues(record: Any) -> list[str]:
    issues: list[str] = []
    tables: list[str] = []
    for entry in _children(record):
        if entry.tag != "FILEHOSO" or [child.tag for child in _children(entry)] != [
            "LOAIHOSO",
            "NOIDUNGFILE",
        ]:
            issues.append("mỗi FILEHOSO phải gồm LOAIHOSO, NOIDUNGFILE")
            continue
        table = _child_text(entry, "LOAIHOSO") or ""
        if table not in ENVELOPE_TABLES:
            issues.append("LOAIHOSO không hợp lệ")
            continue
        tables.append(table)
        try:
            inner = parse_xml(decode_base64(_child_text(entry, "NOIDUNGFILE") or ""), what=table)
        except Rejected as rejected:
            issues.append(rejected.message)
            continue
        if inner.tag != TABLE_LAYOUTS[table].root:
            issues.append(f"{table}: phần tử gốc phải là {TABLE_LAYOUTS[table].root}")
    if "XML1" not in tables:
        issues.append("thiếu XML1")
    if tables != sorted(tables, key=ENVELOPE_TABLES.index) or len(set(tables)) != len(tables):
        issues.append("FILEHOSO phải theo thứ tự bảng tăng dần, không lặp")
    return issues


# -- what duplicate detection needs ----------------------------------------------------------------------
def decode_tables(document: bytes, root: Any) -> dict[str, bytes]:
    """``{LOAIHOSO: inner document bytes}`` of the (first) HOSO of a GIAMDINHHS file."""
    decode = _schemas_function("decode_envelope")
    if decode is not None:
        return dict(decode(document))
    tables: dict[str, bytes] = {}
    for entry in root.findall("THONGTINHOSO/DANHSACHHOSO/HOSO/FILEHOSO"):
        table = _child_text(entry, "LOAIHOSO")
        if table is not None and table not in tables:
            tables[table] = decode_base64(_child_text(entry, "NOIDUNGFILE") or "")
    return tables


def claim_content_hash(document: bytes, tables: dict[str, bytes]) -> str:
    """Hash of what the visit says: the inner documents, not the envelope's date or the signature."""
    content_hash = _schemas_function("content_hash_of_envelope")
    if content_hash is not None:
        return str(content_hash(document))
    digest = hashlib.sha256()
    for table in sorted(
        tables, key=lambda name: ENVELOPE_TABLES.index(name) if name in ENVELOPE_TABLES else 99
    ):
        digest.update(table.encode("ascii") + b"\n" + hashlib.sha256(tables[table]).digest())
    return digest.hexdigest()


def checkin_content_hash(root: Any) -> str:
    rows = root.find("DSACH_TRANG_THAI_KCB")
    return hashlib.sha256(etree.tostring(rows, method="c14n")).hexdigest()


# -- signature -------------------------------------------------------------------------------------------
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


SignatureVerifierName = Literal["xmlsec1", "signers"]


class SignatureVerifier:
    """Verifies signed files against a PEM trust store.

    ``xmlsec1`` (default): ``xmlsec1 --verify`` — the reference verifier of DOMAIN.md §10.6 and independent of
    the code that signs and self-checks our files, so an end-to-end test can catch a bug in either. Only X.509
    key data is enabled (a signature bringing its own bare ``KeyValue`` cannot vouch for itself) and only
    ``URI=""`` references. ``signers``: the signing layer's in-process verifier
    (``adapters.signers.verification.verify``: profile check + signxml; no subprocess per file, for benches).
    """

    def __init__(
        self,
        trust_store: Path,
        *,
        using: SignatureVerifierName = "xmlsec1",
        xmlsec1: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        certificates = _PEM_CERTIFICATE.findall(trust_store.read_bytes())
        if not certificates:
            raise ValueError(f"no PEM certificate in the trust store {trust_store}")
        self.name: SignatureVerifierName = using
        self._trust_store = trust_store
        self._timeout_s = timeout_s
        self._workdir = tempfile.TemporaryDirectory(prefix="vneid-sim-trust-")
        self._binary = ""
        self._trusted: list[str] = []
        self._in_process: Callable[..., Any] | None = None
        self._rejections: tuple[type[Exception], ...] = (ValueError,)
        if using == "signers":
            self._in_process = importlib.import_module("adapters.signers.verification").verify
            errors = importlib.import_module("adapters.signers.errors")
            names = ("InvalidSignatureError", "SignatureInvalid")  # its name changed while it was written
            self._rejections += tuple(getattr(errors, name) for name in names if hasattr(errors, name))
            return
        binary = xmlsec1 or shutil.which("xmlsec1")
        if binary is None:
            raise RuntimeError("xmlsec1 is not installed; it is needed to verify signatures")
        self._binary = binary
        for number, certificate in enumerate(certificates):
            # one file per certificate: --trusted-pem reads the first certificate of a file
            path = Path(self._workdir.name) / f"trusted-{number}.pem"
            path.write_bytes(certificate + b"\n")
            self._trusted.append(str(path))

    def verify(self, document: bytes) -> bool:
        if self._in_process is not None:
            try:
                self._in_process(document, self._trust_store)
            except self._rejections:
                return False
            return True
        return self._verify_with_xmlsec1(document)

    def _verify_with_xmlsec1(self, document: bytes) -> bool:
        with tempfile.NamedTemporaryFile(dir=self._workdir.name, suffix=".xml") as handle:
            handle.write(document)
            handle.flush()
            command = [self._binary, "--verify", "--enabled-reference-uris", "empty"]
            command += ["--enabled-key-data", "x509"]
            for path in self._trusted:
                command += ["--trusted-pem", path]
            try:
                completed = subprocess.run(  # noqa: S603 - fixed binary, our own temp paths
                    [*command, handle.name], capture_output=True, timeout=self._timeout_s, check=False
                )
            except subprocess.TimeoutExpired:
                return False
        return completed.returncode == 0

    def close(self) -> None:
        self._workdir.cleanup()


# -- the whole inspection --------------------------------------------------------------------------------
def inspect_document(
    document: bytes,
    *,
    loai_ho_so: str,
    variant: str,
    verifier: SignatureVerifier | None,
    structure_check: Literal["schemas", "minimal"] = "minimal",
) -> Inspection:
    """Check one decoded ``fileHSBase64``; raises :class:`Rejected` with the first failing check."""
    root = parse_xml(document)
    expected_root = (
        protocol.ROOT_CHECKIN if loai_ho_so == protocol.LOAI_HO_SO_CHECKIN else protocol.ROOT_CLAIM
    )
    if root.tag != expected_root:
        raise Rejected(CODE_WRONG_ROOT, f"Phần tử gốc phải là {expected_root}")
    issues = structure_issues(document, root, variant, structure_check)
    if issues:
        shown = "; ".join(issues[:_MAX_ISSUES_IN_MESSAGE])
        more = f" (+{len(issues) - _MAX_ISSUES_IN_MESSAGE})" if len(issues) > _MAX_ISSUES_IN_MESSAGE else ""
        raise Rejected(CODE_BAD_STRUCTURE, f"Hồ sơ không đúng cấu trúc: {shown}{more}")
    signature_verified: bool | None = None
    if verifier is not None:
        if not verifier.verify(document):
            raise Rejected(CODE_BAD_SIGNATURE, "Chữ ký số không hợp lệ hoặc chứng thư không được tin cậy")
        signature_verified = True
    if root.tag == protocol.ROOT_CHECKIN:
        rows = root.findall("DSACH_TRANG_THAI_KCB/TRANG_THAI_KCB")
        ma_lk = _child_text(rows[0], "MA_LK") if rows else None
        if ma_lk is None:
            raise Rejected(CODE_BAD_STRUCTURE, "Thiếu MA_LK")
        return Inspection(
            root=root.tag,
            ma_lk=ma_lk,
            content_hash=checkin_content_hash(root),
            tables=("XML0",),
            facility_code=None,
            signature_verified=signature_verified,
        )
    try:
        tables = decode_tables(document, root)
        content_hash = claim_content_hash(document, tables)
    except ValueError:  # schemas.envelope.EnvelopeFormatError and base64 errors are ValueErrors
        raise Rejected(CODE_BAD_STRUCTURE, "Không đọc được NOIDUNGFILE của hồ sơ") from None
    summary = tables.get("XML1")
    ma_lk = (
        _child_text(parse_xml(summary, code=CODE_BAD_STRUCTURE, what="XML1"), "MA_LK") if summary else None
    )
    if ma_lk is None:
        raise Rejected(CODE_BAD_STRUCTURE, "XML1 thiếu MA_LK")
    return Inspection(
        root=root.tag,
        ma_lk=ma_lk,
        content_hash=content_hash,
        tables=tuple(tables),
        facility_code=_child_text(root.find("THONGTINDONVI"), "MACSKCB"),
        signature_verified=signature_verified,
    )
