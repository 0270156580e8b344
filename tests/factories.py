"""Factories for the canonical model with realistic Vietnamese data (see adapters.his.demo.synthetic)."""

from __future__ import annotations

import itertools
import random
from datetime import datetime

from adapters.his.demo.synthetic import Defect, Kind, make_encounter
from schemas.domain import Encounter
from schemas.domain.values import VIETNAM_TZ

_keys = itertools.count(100_001)


def encounter(
    kind: Kind = Kind.OUTPATIENT_EXAM,
    *,
    seed: int | None = None,
    his_key: str | None = None,
    start: datetime | None = None,
    defect: Defect | None = None,
) -> Encounter:
    key = his_key or str(next(_keys))
    return make_encounter(
        random.Random(seed if seed is not None else int(key)),
        his_key=key,
        kind=kind,
        start=start or datetime(2026, 3, 4, 8, 15, tzinfo=VIETNAM_TZ),
        defect=defect,
    )


def one_of_each_kind(seed: int = 7) -> list[Encounter]:
    return [encounter(kind, seed=seed + index, his_key=f"{9000 + index}") for index, kind in enumerate(Kind)]
