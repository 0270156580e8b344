"""The signature profile of DOMAIN.md §10.2 and the one code path that applies it for every key source.

Profile: enveloped XML-DSig over the whole document (``Reference URI=""``), transforms enveloped-signature +
inclusive C14N 1.0, ``SignedInfo`` canonicalised with inclusive C14N 1.0, RSA-SHA256, SHA-256 digest, the
signer certificate in ``KeyInfo/X509Data/X509Certificate``; the ``Signature`` is the only child of
``CHUKYDONVI``, the last child of the root. Un-prefixed ``<Signature xmlns="…xmldsig#">`` by default (what
.NET ``SignedXml`` writes), a prefix on request (``signer.signature_prefix``).

How a document is signed (``EnvelopedSigner.sign``), and why it is not done with signxml:

1. Parse the input once and check the slot: the root's last child is an empty ``CHUKYDONVI``.
2. Reference digest = SHA-256 of the inclusive C14N 1.0 of the *input* document. The enveloped-signature
   transform removes exactly the ``Signature`` we are about to insert, so the document as it is now, with an
   empty ``CHUKYDONVI``, is the transform's output: no need to insert anything first.
3. ``SignedInfo`` is a fixed template; its canonical form *in its final place* depends only on the namespace
   declarations in scope there (the root's ``xmlns:xsi``/``xmlns:xsd`` plus the ds namespace of the
   ``Signature``) and on inherited ``xml:*`` attributes. Both are read from the parsed tree and rendered by the
   C14N 1.0 rules (namespace nodes sorted by prefix, default first; attributes sorted by namespace URI and
   local name). lxml's own subtree C14N cannot be used here: it canonicalises a detached copy, which adds a
   spurious ``xmlns=""`` under an un-prefixed ``Signature`` and drops inherited ``xml:*`` attributes — the
   defect behind signxml issue #275 (DOMAIN.md §10.6). Tests prove the result against xmlsec1 / libxml2.
4. The key source signs the canonical ``SignedInfo`` bytes (RSASSA-PKCS1-v1_5, SHA-256); the value is checked
   against the certificate's public key (a cheap public operation) so that a key that does not belong to the
   certificate, or a remote service that signs the wrong thing, never produces a file.
5. The ``Signature`` is rendered from the same template and spliced into the input bytes in place of the empty
   ``CHUKYDONVI``: every byte outside ``CHUKYDONVI`` (XML declaration included) is the caller's, and the
   document is never re-serialised.

signxml would serialise the document twice and, for the un-prefixed form, compute ``SignedInfo`` with the
defective subtree C14N; this module is about one raw RSA signature plus one parse and one C14N pass.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from structlog import get_logger

from adapters.signers.errors import CertificateNotUsableError, SignerConfigError, UnsignableDocumentError

log = get_logger(__name__)

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
C14N_1_0 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
ENVELOPED_SIGNATURE = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
SLOT_NAME = "CHUKYDONVI"

#: Prefixes we accept for ``signature_prefix``: an ASCII NCName that does not start with "xml".
_PREFIX_PATTERN = re.compile(r"^(?![Xx][Mm][Ll])[A-Za-z_][A-Za-z0-9_.-]*$")
_XML_ATTRIBUTE = "{" + XML_NS + "}"
_ASCII_COMPATIBLE_ENCODINGS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
#: Namespace URIs holding characters that need escaping: libxml2 canonicalises them differently depending on
#: how the document was parsed (``&#38;`` vs ``&``), so verifiers would not agree with us or each other.
#: The byte pattern is a fast pre-filter (it can also hit text content); the XPath decides.
_ESCAPED_NAMESPACE_DECLARATION = re.compile(rb"""xmlns(?::[^\s=]+)?\s*=\s*(?:"[^"]*&|'[^']*[&"])""")
_ESCAPED_NAMESPACE_URI = etree.XPath(
    "//namespace::*[contains(., $amp) or contains(., $quote) or contains(., $lt)]"
)


@runtime_checkable
class KeySource(Protocol):
    """Where the private key lives. Produces RSASSA-PKCS1-v1_5 / SHA-256 signatures and nothing else."""

    #: Short name of the source for logs and errors: "file", "pkcs11", "remote".
    name: str

    @property
    def certificate(self) -> x509.Certificate: ...

    def sign_pkcs1v15_sha256(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 signature with SHA-256 over ``data`` (the source may hash locally)."""
        ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------------------ the input slot


@dataclass(frozen=True, slots=True)
class SignatureSlot:
    """The parsed input and where, in its bytes, the empty ``CHUKYDONVI`` is."""

    tree: etree._ElementTree
    start: int  # offset of "<CHUKYDONVI"
    end: int  # offset just after the empty element (``/>`` or ``</CHUKYDONVI>``)
    qualified_name: bytes  # b"CHUKYDONVI", or b"p:CHUKYDONVI" when the input uses a prefix
    attributes: bytes  # the start tag's attributes as written, kept verbatim
    namespaces: Mapping[str | None, str]  # namespace declarations in scope at CHUKYDONVI
    xml_attributes: Mapping[str, str]  # xml:* attributes CHUKYDONVI inherits (C14N 1.0 copies them)

    def splice(self, document: bytes, signature: bytes) -> bytes:
        """The input with ``signature`` as the only child of ``CHUKYDONVI``; every other byte unchanged."""
        name = self.qualified_name
        return b"".join(
            (
                document[: self.start],
                b"<",
                name,
                self.attributes,
                b">",
                signature,
                b"</",
                name,
                b">",
                document[self.end :],
            )
        )


_parsers = threading.local()


def _parser() -> etree.XMLParser:
    """One parser per thread (lxml parsers are not thread-safe); no DTDs, no entities, no network."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True, remove_blank_text=False
        )
        _parsers.parser = parser
    return parser


def parse_document(document: bytes) -> etree._ElementTree:
    """Parse serialised XML for signing or verification; refuse DTDs (they could change the canonical form)."""
    if not isinstance(document, bytes | bytearray):
        raise UnsignableDocumentError(
            f"expected the serialised document as bytes, got {type(document).__name__}"
        )
    try:
        root = etree.fromstring(bytes(document), _parser())
    except etree.XMLSyntaxError as exc:
        # lxml's message can quote document text; report the position only.
        raise UnsignableDocumentError(
            f"not well-formed XML (line {exc.lineno}, column {exc.offset})"
        ) from None
    tree = root.getroottree()
    docinfo: Any = tree.docinfo  # lxml-stubs: DocInfo lacks ``doctype``
    if docinfo.doctype:
        raise UnsignableDocumentError(
            "documents with a DOCTYPE are not signed (a DTD can alter the canonical form)"
        )
    return tree


def _qualified_name(element: etree._Element) -> bytes:
    local = etree.QName(element).localname
    return (f"{element.prefix}:{local}" if element.prefix else local).encode("utf-8")


@lru_cache(maxsize=32)
def _slot_pattern(slot_name: bytes, root_name: bytes) -> re.Pattern[bytes]:
    slot, root = re.escape(slot_name), re.escape(root_name)
    return re.compile(
        rb"<" + slot + rb"(?P<attributes>(?:\s[^<>]*?)?)\s*(?:/>|></" + slot + rb"\s*>)"
        rb"(?P<rest>\s*</" + root + rb"\s*>\s*)\Z"
    )


def locate_slot(document: bytes) -> SignatureSlot:
    """Parse ``document`` and find its empty trailing ``CHUKYDONVI``, in the tree and in the bytes."""
    tree = parse_document(document)
    if _ESCAPED_NAMESPACE_DECLARATION.search(document) and _ESCAPED_NAMESPACE_URI(
        tree, amp="&", quote='"', lt="<"
    ):
        raise UnsignableDocumentError(
            "a namespace URI contains '&' or a quote; canonicalisers disagree on those"
        )
    encoding = (tree.docinfo.encoding or "utf-8").lower()
    if encoding not in _ASCII_COMPATIBLE_ENCODINGS:
        raise UnsignableDocumentError(f"document encoding must be UTF-8, got {encoding!r}")
    root = tree.getroot()
    slot = root[-1] if len(root) else None
    if slot is None or not isinstance(slot.tag, str) or etree.QName(slot).localname != SLOT_NAME:
        raise UnsignableDocumentError(
            f"the last child of <{etree.QName(root).localname}> must be <{SLOT_NAME}/>"
        )
    if len(slot) or slot.text:
        raise UnsignableDocumentError(
            f"<{SLOT_NAME}> must be empty before signing (is the document signed already?)"
        )
    if (slot.tail or "").strip() or root.getnext() is not None:
        raise UnsignableDocumentError(
            f"nothing but whitespace may follow <{SLOT_NAME}/> and the root element"
        )
    slot_name = _qualified_name(slot)
    start = document.rfind(b"<" + slot_name)
    match = _slot_pattern(slot_name, _qualified_name(root)).match(document, start) if start >= 0 else None
    if match is None:
        raise UnsignableDocumentError(f"could not locate the empty <{SLOT_NAME}/> in the serialised bytes")
    inherited: dict[str, str] = {}
    for element in (slot, *slot.iterancestors()):
        for key, value in element.attrib.items():
            name, text = str(key), str(value)
            if name.startswith(_XML_ATTRIBUTE):
                inherited.setdefault(name[len(_XML_ATTRIBUTE) :], text)
    return SignatureSlot(
        tree=tree,
        start=start,
        end=match.start("rest"),
        qualified_name=slot_name,
        attributes=match.group("attributes"),
        namespaces=dict(slot.nsmap),
        xml_attributes=inherited,
    )


def document_digest(tree: etree._ElementTree) -> bytes:
    """SHA-256 of the inclusive C14N 1.0 (without comments) of the whole document: the ``URI=""`` reference."""
    return hashlib.sha256(etree.tostring(tree, method="c14n", exclusive=False, with_comments=False)).digest()


# --------------------------------------------------------------------------------------------- templates


def _escape_attribute(value: str) -> str:
    """C14N 1.0 attribute value escaping."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


def check_prefix(prefix: str | None) -> str | None:
    """``None``/"" (un-prefixed) or a valid namespace prefix for the ds namespace."""
    if not prefix:
        return None
    if not _PREFIX_PATTERN.match(prefix):
        raise SignerConfigError(f"signer.signature_prefix {prefix!r} is not a usable namespace prefix")
    return prefix


class SignatureTemplate:
    """The ``Signature`` element of the profile for one prefix, rendered as text."""

    def __init__(self, prefix: str | None) -> None:
        self.prefix = check_prefix(prefix)
        p = f"{self.prefix}:" if self.prefix else ""
        self._p = p
        self._declaration = f' xmlns:{self.prefix}="{DS_NS}"' if self.prefix else f' xmlns="{DS_NS}"'

        def empty(name: str, algorithm: str, *, canonical: bool) -> str:
            if canonical:
                return f'<{p}{name} Algorithm="{algorithm}"></{p}{name}>'
            return f'<{p}{name} Algorithm="{algorithm}"/>'

        def head(*, canonical: bool) -> str:
            return (
                empty("CanonicalizationMethod", C14N_1_0, canonical=canonical)
                + empty("SignatureMethod", RSA_SHA256, canonical=canonical)
                + f'<{p}Reference URI=""><{p}Transforms>'
                + empty("Transform", ENVELOPED_SIGNATURE, canonical=canonical)
                + empty("Transform", C14N_1_0, canonical=canonical)
                + f"</{p}Transforms>"
                + empty("DigestMethod", SHA256, canonical=canonical)
                + f"<{p}DigestValue>"
            )

        tail = f"</{p}DigestValue></{p}Reference></{p}SignedInfo>"
        self._canonical_head = head(canonical=True)
        self._written_head = head(canonical=False)
        self._tail = tail

    def canonical_signed_info(
        self, digest_b64: str, namespaces: Mapping[str | None, str], xml_attributes: Mapping[str, str]
    ) -> bytes:
        """Inclusive C14N 1.0 of ``SignedInfo`` once placed in ``CHUKYDONVI`` with ``namespaces`` in scope.

        The apex of a canonicalised subtree carries every namespace node in scope (sorted by prefix, the
        default namespace first; an empty default namespace is no node) and the ``xml:*`` attributes it
        inherits; its descendants add nothing, since the template declares no namespace of its own.
        """
        in_scope = dict(namespaces)
        in_scope[self.prefix] = DS_NS
        parts = [f"<{self._p}SignedInfo"]
        for prefix, uri in sorted(in_scope.items(), key=lambda item: item[0] or ""):
            if prefix is None:
                if uri:
                    parts.append(f' xmlns="{_escape_attribute(uri)}"')
            else:
                parts.append(f' xmlns:{prefix}="{_escape_attribute(uri)}"')
        for name in sorted(xml_attributes):
            parts.append(f' xml:{name}="{_escape_attribute(xml_attributes[name])}"')
        parts.extend((">", self._canonical_head, digest_b64, self._tail))
        return "".join(parts).encode("utf-8")

    def signature(self, digest_b64: str, signature_b64: str, certificate_b64: str) -> bytes:
        """The ``Signature`` element as written into the file (ASCII only)."""
        p = self._p
        return (
            f"<{p}Signature{self._declaration}><{p}SignedInfo>{self._written_head}{digest_b64}{self._tail}"
            f"<{p}SignatureValue>{signature_b64}</{p}SignatureValue>"
            f"<{p}KeyInfo><{p}X509Data><{p}X509Certificate>{certificate_b64}</{p}X509Certificate>"
            f"</{p}X509Data></{p}KeyInfo></{p}Signature>"
        ).encode("ascii")


# ------------------------------------------------------------------------------------------------ signer


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint (hex) of the DER certificate: how logs and errors name a certificate."""
    return certificate.fingerprint(hashes.SHA256()).hex()


class EnvelopedSigner:
    """The ``Signer`` port for every key source: digest, ``SignedInfo``, placement; the key only signs.

    Build one per process (after fork) and reuse it: the key and certificate are loaded once, and ``sign`` is
    thread-safe as long as the key source is.
    """

    #: Entry-point name of the key source; subclasses set it.
    source_name: ClassVar[str] = "custom"

    def __init__(self, key: KeySource, *, signature_prefix: str | None = None) -> None:
        certificate = key.certificate
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise SignerConfigError(
                f"the {key.name} certificate holds a {type(public_key).__name__}; the profile is RSA-SHA256"
            )
        self._key = key
        self._certificate = certificate
        self._public_key = public_key
        self._template = SignatureTemplate(signature_prefix)
        self._certificate_b64 = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode(
            "ascii"
        )
        self._not_before = certificate.not_valid_before_utc
        self._not_after = certificate.not_valid_after_utc
        self._serial = format(certificate.serial_number, "x")

    # -- the port ----------------------------------------------------------------------------------------
    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    def sign(self, document: bytes) -> bytes:
        """Sign serialised XML with an empty trailing ``<CHUKYDONVI/>``; return the exact bytes to keep."""
        started = time.perf_counter()
        self.ensure_certificate_valid()
        slot = locate_slot(document)
        digest = document_digest(slot.tree)
        digest_b64 = base64.b64encode(digest).decode("ascii")
        signed_info = self._template.canonical_signed_info(digest_b64, slot.namespaces, slot.xml_attributes)
        value = self._key.sign_pkcs1v15_sha256(signed_info)
        self._check_signature_value(value, signed_info)
        signature = self._template.signature(
            digest_b64, base64.b64encode(value).decode("ascii"), self._certificate_b64
        )
        signed = slot.splice(document, signature)
        log.debug(
            "signer.signed",
            key_source=self._key.name,
            certificate_serial=self._serial,
            reference_sha256=digest.hex(),
            elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return signed

    # -- checks ------------------------------------------------------------------------------------------
    def ensure_certificate_valid(self, now: datetime | None = None) -> None:
        """Refuse to sign outside the certificate's validity period (DOMAIN.md §10.2, §10.5)."""
        now = now or datetime.now(UTC)
        if now > self._not_after:
            raise CertificateNotUsableError(
                f"signing certificate (serial {self._serial}) expired on {self._not_after.isoformat()}; "
                "refusing to sign — install the renewed certificate"
            )
        if now < self._not_before:
            raise CertificateNotUsableError(
                f"signing certificate (serial {self._serial}) is not valid before "
                f"{self._not_before.isoformat()}; refusing to sign"
            )

    def _check_signature_value(self, value: bytes, signed_info: bytes) -> None:
        try:
            self._public_key.verify(value, signed_info, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise CertificateNotUsableError(
                f"the {self._key.name} key source returned a signature that does not verify with the "
                f"certificate (serial {self._serial}): the key does not belong to the certificate"
                + (
                    ", or the service signs a DigestInfo where it should sign a bare SHA-256 hash"
                    if self._key.name == "remote"
                    else ""
                )
            ) from None

    def key_matches_certificate(self) -> bool:
        """Probe the key source with a random challenge and check the value against the certificate."""
        challenge = os.urandom(32)
        value = self._key.sign_pkcs1v15_sha256(challenge)
        try:
            self._public_key.verify(value, challenge, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    @property
    def key_source(self) -> KeySource:
        return self._key

    # -- lifetime ----------------------------------------------------------------------------------------
    def close(self) -> None:
        self._key.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
