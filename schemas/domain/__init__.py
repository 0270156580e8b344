"""The canonical domain model: a completed encounter in the standard's vocabulary."""

from schemas.domain.encounter import Encounter, derive_ma_lk, derive_ma_lks
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
from schemas.domain.values import VIETNAM_TZ, BirthDate

__all__ = [
    "VIETNAM_TZ",
    "BirthCertificate",
    "BirthDate",
    "ClinicalNote",
    "ClsResult",
    "DischargePaper",
    "DrugLine",
    "Encounter",
    "FirstCost",
    "FollowUp",
    "HivCare",
    "Patient",
    "PregnancyRestCertificate",
    "RecordSummary",
    "Referral",
    "ServiceLine",
    "SickLeaveCertificate",
    "TbTreatment",
    "Visit",
    "derive_ma_lk",
    "derive_ma_lks",
]
