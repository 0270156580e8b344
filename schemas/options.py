"""The choices DOMAIN.md §14 leaves to the operator that change what the payload contains.

Field names and defaults equal ``worker.config.PayloadSettings`` (a test keeps them in step); the worker maps
its settings to this frozen value so that the payload layer does not depend on the configuration system.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas.spec import ENVELOPE_TABLES, Profile

HivFilter = Literal["sskdt_only", "always", "never"]

DEFAULT_NON_BHYT_TABLES: tuple[str, ...] = ("XML1", "XML2", "XML3", "XML4", "XML8")


@dataclass(frozen=True, slots=True, kw_only=True)
class PayloadOptions:
    #: MACSKCB of the envelope and the default MA_CSKCB of the documents (5 characters).
    facility_code: str = "79999"
    #: Field lists of the live gateway (qd3176) or of the QĐ 4750 appendix (qd4750).
    profile: Profile = Profile.QD3176
    #: Send XML8 for every visit, not only MA_LOAI_KCB 03/04/06 (§5).
    xml8_for_every_visit: bool = False
    #: Send an XML0 check-in for non-BHYT visits too (§6).
    checkin_for_non_bhyt: bool = False
    #: The tables a non-BHYT visit may carry (§5); XML13 is never sent for them whatever this says.
    non_bhyt_tables: tuple[str, ...] = DEFAULT_NON_BHYT_TABLES
    #: Keep ``<?xml version="1.0" encoding="utf-8"?>`` on each inner document (§3.2, §15 row 15).
    inner_xml_declaration: bool = True
    #: Drop XML6 and HIV-restricted lines: for non-BHYT (Sổ SKĐT-only) sends, always, or never (§13).
    hiv_filter: HivFilter = "sskdt_only"

    def __post_init__(self) -> None:
        if len(self.facility_code) != 5:
            raise ValueError("facility_code must have 5 characters")
        unknown = set(self.non_bhyt_tables) - set(ENVELOPE_TABLES)
        if unknown:
            raise ValueError(f"unknown tables in non_bhyt_tables: {', '.join(sorted(unknown))}")
        if self.hiv_filter not in ("sskdt_only", "always", "never"):
            raise ValueError("hiv_filter must be sskdt_only, always or never")
