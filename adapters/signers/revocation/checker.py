"""``RevocationChecker``: OCSP first, CRLs second, the last good answer cached until it must be refreshed.

Order of the sources for one certificate:

1. OCSP: ``signer.ocsp_url`` when set, else the responders in the certificate's AuthorityInformationAccess.
2. CRL: ``signer.crl_url`` when set, else the certificate's CRLDistributionPoints (http/https), then
   ``signer.crl_file`` (a copy kept by other means, for networks that cannot reach the CA).

The first verified answer wins. The issuing CA's certificate is needed to verify answers (and to build the
OCSP request); it is taken from the key source's chain, ``signer.trust_store``, the cache, or the
certificate's caIssuers URL, and accepted only when its key verifies the signature on our certificate.

Caching: an answer is used without asking again until ``signer.revocation_refresh_h`` after it was fetched or
its nextUpdate, whichever comes first. When asking again fails, the previous answer is still used up to its
nextUpdate (the CA's own statement of how long it holds); after that the status is unknown. An unknown status
is remembered for ``UNKNOWN_RECHECK`` so an unreachable CA costs one timeout every few minutes, not one per
signed file. With ``signer.revocation_cache`` the answer (the CA's signed bytes and the issuer certificate) is
also kept in ``data_dir/revocation/``, so restarts and the other processes (metrics, alerts, ``cert check``)
reuse it; it is verified again when read, so the file cannot make a certificate good.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AuthorityInformationAccessOID
from structlog import get_logger

from adapters.signers.errors import SignerConfigError
from adapters.signers.keyfiles import load_certificates
from adapters.signers.revocation import crl, ocsp
from adapters.signers.revocation.model import (
    Answer,
    RevocationCheckError,
    RevocationPolicy,
    RevocationSource,
    RevocationState,
    RevocationStatus,
)
from adapters.signers.settings import SignerSettings

log = get_logger(__name__)

#: After the sources failed, try them again this long later (not for every signed file).
UNKNOWN_RECHECK = timedelta(minutes=5)
#: Never ask again sooner than this, even for an answer at the edge of its nextUpdate (accepted within the
#: clock-skew tolerance): otherwise every signed file would cost a request until the CA publishes anew.
MIN_RECHECK = timedelta(minutes=1)
#: Size limits: an OCSP answer is a few KB; a large CA's CRL can reach megabytes.
MAX_OCSP_BYTES = 1 << 20
MAX_CRL_BYTES = 64 << 20
MAX_CERTIFICATE_BYTES = 1 << 20
CACHE_DIRECTORY = "revocation"
_CACHE_FORMAT = 1
_HTTP_SCHEMES = ("http://", "https://")


@dataclass(frozen=True, slots=True)
class RevocationConfig:
    policy: RevocationPolicy
    ocsp_url: str | None = None
    crl_url: str | None = None
    crl_file: Path | None = None
    timeout_s: float = 5.0
    refresh: timedelta = timedelta(hours=24)
    cache_dir: Path | None = None
    trust_store: Path | None = None

    @classmethod
    def from_settings(cls, settings: SignerSettings, data_dir: Path | None) -> RevocationConfig:
        return cls(
            policy=RevocationPolicy(settings.revocation),
            ocsp_url=settings.ocsp_url,
            crl_url=settings.crl_url,
            crl_file=settings.crl_file,
            timeout_s=settings.revocation_timeout_s,
            refresh=timedelta(hours=settings.revocation_refresh_h),
            cache_dir=(data_dir / CACHE_DIRECTORY) if settings.revocation_cache and data_dir else None,
            trust_store=settings.trust_store,
        )


@dataclass(frozen=True, slots=True)
class _Sources:
    ocsp: tuple[str, ...]
    crl: tuple[str, ...]
    skipped: tuple[str, ...]  # named by the certificate but not usable (ldap://, …)

    @property
    def all(self) -> tuple[str, ...]:
        return self.ocsp + self.crl


@dataclass(frozen=True, slots=True)
class _Entry:
    """What is remembered for one certificate: the last answer (if any) and when to ask again."""

    status: RevocationStatus
    answer: Answer | None
    issuer: x509.Certificate | None
    recheck_at: datetime


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _uris(names: Iterable[x509.GeneralName]) -> list[str]:
    return [name.value for name in names if isinstance(name, x509.UniformResourceIdentifier)]


def _access_urls(certificate: x509.Certificate, method: x509.ObjectIdentifier) -> list[str]:
    try:
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return _uris(d.access_location for d in access if d.access_method == method)


def _crl_urls(certificate: x509.Certificate) -> list[str]:
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [url for point in points for url in _uris(point.full_name or ())]


def _parse_certificates(data: bytes) -> list[x509.Certificate]:
    """A caIssuers answer: DER or PEM certificate, or a PKCS#7 bundle (.p7c)."""
    loaders: tuple[Callable[[bytes], list[x509.Certificate]], ...] = (
        lambda der: [x509.load_der_x509_certificate(der)],
        x509.load_pem_x509_certificates,
        pkcs7.load_der_pkcs7_certificates,
        pkcs7.load_pem_pkcs7_certificates,
    )
    for load in loaders:
        try:
            return load(data)
        except ValueError:
            continue
    return []


def _issued(certificate: x509.Certificate, candidate: x509.Certificate) -> bool:
    """Whether ``candidate``'s key signed ``certificate`` (what makes it usable to verify answers)."""
    try:
        certificate.verify_directly_issued_by(candidate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class RevocationChecker:
    """Thread-safe; one per process (``shared_checker``): the memory cache is what spares the CA."""

    def __init__(self, config: RevocationConfig, *, clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._memory: dict[str, _Entry] = {}
        self._http: httpx.Client | None = None

    # -- the answer ------------------------------------------------------------------------------------
    def status(
        self, certificate: x509.Certificate, *, chain: Sequence[x509.Certificate] = (), refresh: bool = False
    ) -> RevocationStatus:
        """The revocation status of ``certificate``; ``chain``: certificates that may include its issuer.

        ``refresh`` asks the sources even when a cached answer is still to be used (``cert check --refresh``).
        """
        key = fingerprint(certificate)
        with self._lock:
            now = self._clock()
            entry = self._memory.get(key)
            if entry is None:
                entry = self._read_cache_file(key, certificate, now)
                if entry is not None:
                    self._memory[key] = entry
            if entry is not None and not refresh and now < entry.recheck_at:
                return entry.status
            return self._ask(key, certificate, chain, entry, now)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _ask(
        self,
        key: str,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
        previous: _Entry | None,
        now: datetime,
    ) -> RevocationStatus:
        sources = self._sources(certificate)
        problems = [f"{url}: skipped (only http and https are supported)" for url in sources.skipped]
        issuer = None
        if sources.all:
            issuer = self._issuer(certificate, chain, previous, problems)
        answer = self._first_answer(certificate, issuer, sources, now, problems) if issuer else None
        if answer is not None:
            status = RevocationStatus.from_answer(
                answer, checked_at=now, from_cache=False, sources=sources.all, problems=tuple(problems)
            )
            recheck = max(min(answer.valid_until, now + self.config.refresh), now + MIN_RECHECK)
            self._memory[key] = _Entry(replace(status, from_cache=True), answer, issuer, recheck)
            self._write_cache_file(key, answer, issuer, now)
            log.info(
                "signer.revocation_checked",
                certificate_serial=format(certificate.serial_number, "x"),
                state=answer.state.value,
                source=answer.source.value,
                url=answer.url,
                next_update=answer.next_update.isoformat() if answer.next_update else None,
            )
            return status
        if previous is not None and previous.answer is not None and now <= previous.answer.valid_until:
            # The CA cannot be reached now, but its last answer says how long it holds: keep using it.
            kept = replace(previous.status, from_cache=True, problems=tuple(problems))
            recheck = min(previous.answer.valid_until, now + UNKNOWN_RECHECK)
            self._memory[key] = _Entry(kept, previous.answer, previous.issuer or issuer, recheck)
            log.warning(
                "signer.revocation_refresh_failed",
                certificate_serial=format(certificate.serial_number, "x"),
                kept_until=previous.answer.valid_until.isoformat(),
                problems=problems,
            )
            return kept
        if previous is not None and previous.answer is not None:
            problems.append(
                f"the last answer ({previous.answer.source.value.upper()}) expired at "
                f"{previous.answer.valid_until.isoformat()}"
            )
        status = RevocationStatus(
            state=RevocationState.UNKNOWN,
            source=RevocationSource.NONE,
            checked_at=now,
            sources=sources.all,
            problems=tuple(problems),
        )
        self._memory[key] = _Entry(status, None, issuer, now + UNKNOWN_RECHECK)
        if sources.all:
            log.warning(
                "signer.revocation_unknown",
                certificate_serial=format(certificate.serial_number, "x"),
                problems=problems,
            )
        return status

    def _first_answer(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        sources: _Sources,
        now: datetime,
        problems: list[str],
    ) -> Answer | None:
        for url in sources.ocsp:
            try:
                return self._ask_ocsp(url, certificate, issuer, now)
            except RevocationCheckError as exc:
                problems.append(str(exc))
        for location in sources.crl:
            try:
                return self._read_crl(location, certificate, issuer, now)
            except RevocationCheckError as exc:
                problems.append(str(exc))
        return None

    # -- sources ---------------------------------------------------------------------------------------
    def _sources(self, certificate: x509.Certificate) -> _Sources:
        named_ocsp = [self.config.ocsp_url] if self.config.ocsp_url else []
        if not named_ocsp:
            named_ocsp = _access_urls(certificate, AuthorityInformationAccessOID.OCSP)
        named_crl = [self.config.crl_url] if self.config.crl_url else _crl_urls(certificate)
        usable_ocsp = tuple(url for url in named_ocsp if url.startswith(_HTTP_SCHEMES))
        usable_crl = tuple(url for url in named_crl if url.startswith(_HTTP_SCHEMES))
        local = (str(self.config.crl_file),) if self.config.crl_file else ()
        skipped = tuple(url for url in named_ocsp + named_crl if not url.startswith(_HTTP_SCHEMES))
        return _Sources(ocsp=usable_ocsp, crl=usable_crl + local, skipped=skipped)

    def _ask_ocsp(
        self, url: str, certificate: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> Answer:
        nonce = ocsp.new_nonce()
        body = ocsp.build_request(certificate, issuer, nonce=nonce)
        der = self._fetch(
            "POST",
            url,
            what="OCSP",
            limit=MAX_OCSP_BYTES,
            content=body,
            headers={"Content-Type": ocsp.CONTENT_TYPE_REQUEST, "Accept": "application/ocsp-response"},
        )
        return ocsp.verify_response(
            der, certificate=certificate, issuer=issuer, now=now, url=url, nonce=nonce
        )

    def _read_crl(
        self, location: str, certificate: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> Answer:
        if location.startswith(_HTTP_SCHEMES):
            data = self._fetch("GET", location, what="CRL", limit=MAX_CRL_BYTES)
        else:
            try:
                data = Path(location).read_bytes()
            except OSError as exc:
                raise RevocationCheckError(f"CRL {location}: cannot read ({exc.strerror or exc})") from None
        return crl.verify_crl(data, certificate=certificate, issuer=issuer, now=now, url=location)

    def _client(self) -> httpx.Client:
        if self._http is None:
            # trust_env: hospital networks reach the CA through the proxy named in HTTP(S)_PROXY, if any.
            self._http = httpx.Client(
                timeout=self.config.timeout_s,
                follow_redirects=True,
                max_redirects=3,
                headers={"User-Agent": "vneid-sync certificate status"},
                trust_env=True,
            )
        return self._http

    def _fetch(
        self,
        method: str,
        url: str,
        *,
        what: str,
        limit: int,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        try:
            with self._client().stream(method, url, content=content, headers=headers) as response:
                if response.status_code != 200:
                    raise RevocationCheckError(f"{what} {url}: HTTP {response.status_code}")
                received = bytearray()
                for chunk in response.iter_bytes():
                    received += chunk
                    if len(received) > limit:
                        raise RevocationCheckError(f"{what} {url}: answer larger than {limit} bytes")
                return bytes(received)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
            suffix = f": {detail[:160]}" if detail else ""
            raise RevocationCheckError(f"{what} {url}: unreachable ({type(exc).__name__}{suffix})") from None

    # -- the issuer ------------------------------------------------------------------------------------
    def _issuer(
        self,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate],
        previous: _Entry | None,
        problems: list[str],
    ) -> x509.Certificate | None:
        candidates = list(chain)
        if self.config.trust_store is not None:
            try:
                candidates += load_certificates(self.config.trust_store)
            except (SignerConfigError, OSError) as exc:
                problems.append(f"trust store {self.config.trust_store}: {exc}")
        if previous is not None and previous.issuer is not None:
            candidates.append(previous.issuer)
        found = next((c for c in candidates if _issued(certificate, c)), None)
        if found is not None:
            return found
        for url in _access_urls(certificate, AuthorityInformationAccessOID.CA_ISSUERS):
            if not url.startswith(_HTTP_SCHEMES):
                continue
            try:
                data = self._fetch("GET", url, what="caIssuers", limit=MAX_CERTIFICATE_BYTES)
            except RevocationCheckError as exc:
                problems.append(str(exc))
                continue
            found = next((c for c in _parse_certificates(data) if _issued(certificate, c)), None)
            if found is not None:
                return found
            problems.append(f"caIssuers {url}: no certificate there issued ours")
        problems.append(
            "the issuing CA's certificate was not found (add it to signer.trust_store): answers cannot be verified"
        )
        return None

    # -- the cache file --------------------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path | None:
        return self.config.cache_dir / f"{key}.json" if self.config.cache_dir else None

    def _write_cache_file(
        self, key: str, answer: Answer, issuer: x509.Certificate | None, now: datetime
    ) -> None:
        path = self._cache_path(key)
        if path is None or issuer is None:
            return
        record = {
            "format": _CACHE_FORMAT,
            "source": answer.source.value,
            "url": answer.url,
            "fetched_at": now.isoformat(),
            "answer": base64.b64encode(answer.der).decode("ascii"),
            "issuer": base64.b64encode(issuer.public_bytes(serialization.Encoding.DER)).decode("ascii"),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(record), encoding="utf-8")
            temporary.replace(path)  # atomic: another process never reads half a file
        except OSError as exc:
            log.warning("signer.revocation_cache_unwritable", path=str(path), error=type(exc).__name__)

    def _read_cache_file(self, key: str, certificate: x509.Certificate, now: datetime) -> _Entry | None:
        path = self._cache_path(key)
        if path is None or not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("format") != _CACHE_FORMAT:
                return None
            issuer = x509.load_der_x509_certificate(base64.b64decode(record["issuer"], validate=True))
            der = base64.b64decode(record["answer"], validate=True)
            fetched_at = datetime.fromisoformat(record["fetched_at"])
            url = str(record["url"])
            source = RevocationSource(record["source"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("signer.revocation_cache_unreadable", path=str(path))
            return None
        if not _issued(certificate, issuer):
            log.warning("signer.revocation_cache_rejected", path=str(path), reason="issuer")
            return None
        try:
            if source is RevocationSource.OCSP:
                answer = ocsp.verify_response(der, certificate=certificate, issuer=issuer, now=now, url=url)
            else:
                answer = crl.verify_crl(der, certificate=certificate, issuer=issuer, now=now, url=url)
        except RevocationCheckError as exc:
            log.info("signer.revocation_cache_unusable", path=str(path), reason=str(exc))
            return None
        status = RevocationStatus.from_answer(
            answer, checked_at=fetched_at, from_cache=True, sources=self._sources(certificate).all
        )
        return _Entry(status, answer, issuer, min(answer.valid_until, fetched_at + self.config.refresh))


# ------------------------------------------------------------------------------------- one per process

_shared: dict[tuple[int, RevocationConfig], RevocationChecker] = {}
_shared_lock = threading.Lock()


def shared_checker(config: RevocationConfig) -> RevocationChecker:
    """One checker per process and configuration, so the signer, the metrics and the alerts of a process
    share one memory cache; a forked child (Celery prefork) builds its own HTTP client."""
    key = (os.getpid(), config)
    with _shared_lock:
        checker = _shared.get(key)
        if checker is None:
            checker = _shared[key] = RevocationChecker(config)
        return checker


def revocation_status(
    settings: SignerSettings,
    data_dir: Path | None,
    certificate: x509.Certificate,
    *,
    chain: Sequence[x509.Certificate] = (),
    refresh: bool = False,
) -> RevocationStatus | None:
    """The status under ``settings`` through this process's shared checker; ``None`` when checking is off."""
    config = RevocationConfig.from_settings(settings, data_dir)
    if config.policy is RevocationPolicy.OFF:
        return None
    return shared_checker(config).status(certificate, chain=chain, refresh=refresh)
