"""The canonical completed encounter: what the payload layer needs, independent of any HIS schema or XML."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from schemas.domain.records import (
    BirthCertificate,
    ClinicalNote,
    ClsResult,
    DischargePaper,
    DrugLine,
    FirstCost,
    FollowUp,
    HivCare,
    Patient,
    PregnancyRestCertificate,
    RecordSummary,
    Referral,
    ServiceLine,
    SickLeaveCertificate,
    TbTreatment,
    Visit,
)
from schemas.domain.values import VIETNAM_TZ

#: MA_DOITUONG_KCB of a patient not using BHYT (QĐ 3276).
NON_INSURED_CATEGORY = "9"
#: MA_DOITUONG_KCB of an emergency visit (no XML0 check-in).
EMERGENCY_CATEGORY = "2"


def derive_ma_lk(facility_code: str, his_key: str) -> str:
    """A stable MA_LK from the HIS encounter key (DOMAIN.md §7): never a CCCD, card number or name.

    Short keys are kept readable (``<facility>-<key>``); keys that would exceed 100 characters are hashed.
    """
    candidate = f"{facility_code}-{his_key}"
    if (
        len(candidate) <= 100
        and candidate.isascii()
        and candidate.replace("-", "").replace("_", "").isalnum()
    ):
        return candidate
    return f"{facility_code}-h{hashlib.sha256(his_key.encode('utf-8')).hexdigest()[:40]}"


#: Characters of a HIS key that ``derive_ma_lk`` keeps as they are (``str.isalnum`` of ASCII, ``-`` and ``_``).
_PLAIN_KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_-]*")


def derive_ma_lks(facility_code: str, his_keys: Sequence[str]) -> dict[str, str]:
    """``derive_ma_lk`` of many keys, as MA_LK → HIS key. When every key is kept readable (the usual case:
    checked in one pass over the keys joined) the MA_LKs are made without a function call per key, which
    matters to coverage at a million keys; otherwise key by key."""
    prefix = f"{facility_code}-"
    if (
        his_keys
        and facility_code.isascii()
        and facility_code.isalnum()
        and len(prefix) + max(map(len, his_keys)) <= 100
        and _PLAIN_KEY_CHARACTERS.fullmatch("".join(his_keys))
    ):
        return dict(zip(map(prefix.__add__, his_keys), his_keys, strict=True))
    return {derive_ma_lk(facility_code, key): key for key in his_keys}


@dataclass(frozen=True, slots=True, kw_only=True)
class Encounter:
    """One completed visit (đợt khám chữa bệnh) with everything the standard tables are built from."""

    ma_lk: str
    his_key: str
    patient: Patient
    visit: Visit
    first_cost: FirstCost | None = None
    drug_lines: tuple[DrugLine, ...] = ()
    service_lines: tuple[ServiceLine, ...] = ()
    cls_results: tuple[ClsResult, ...] = ()
    clinical_notes: tuple[ClinicalNote, ...] = ()
    hiv_care: tuple[HivCare, ...] = ()
    discharge_papers: tuple[DischargePaper, ...] = ()
    record_summary: RecordSummary | None = None
    birth_certificates: tuple[BirthCertificate, ...] = ()
    pregnancy_rest: PregnancyRestCertificate | None = None
    sick_leave: SickLeaveCertificate | None = None
    referral: Referral | None = None
    follow_up: FollowUp | None = None
    tb_treatments: tuple[TbTreatment, ...] = ()
    #: Where the HIS says the encounter was completed (discharge/payment/status, per adapter config).
    completed_at: datetime | None = field(default=None, compare=False)

    @property
    def is_insured(self) -> bool:
        return self.visit.ma_doituong_kcb != NON_INSURED_CATEGORY and bool(self.patient.ma_the_bhyt)

    @property
    def is_emergency(self) -> bool:
        return self.visit.ma_doituong_kcb == EMERGENCY_CATEGORY

    @property
    def end_date(self) -> date | None:
        """The visit end date in Vietnam time: code lists are chosen by it (DOMAIN.md §8)."""
        end = self.visit.ngay_ra or self.completed_at
        return end.astimezone(VIETNAM_TZ).date() if end is not None else None
