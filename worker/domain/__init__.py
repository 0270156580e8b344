"""The canonical domain model: a completed encounter in the standard's vocabulary."""

from worker.domain.encounter import Encounter, derive_ma_lk, derive_ma_lks
from worker.domain.records import (
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
from worker.domain.values import VIETNAM_TZ, BirthDate

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
