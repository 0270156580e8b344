"""Generated code and vendored spec data must match their sources."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from schemas.codegen import domain_model
from schemas.spec import SPEC_ROOT

SHARED_SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec"


def test_domain_model_equals_a_fresh_generation() -> None:
    assert domain_model.TARGET.read_text(encoding="utf-8") == domain_model.render_formatted(), (
        "schemas/domain/records.py is stale: run `make generate`"
    )


@pytest.mark.skipif(not SHARED_SPEC.is_dir(), reason="shared/spec is not beside this checkout")
@pytest.mark.parametrize("folder", ["tables", "tables/qd3176", "codes"])
def test_vendored_spec_equals_shared_spec(folder: str) -> None:
    shared = sorted(path.name for path in (SHARED_SPEC / folder).glob("*.csv"))
    vendored = sorted(path.name for path in (SPEC_ROOT / folder).glob("*.csv"))
    assert shared == vendored
    _, mismatch, errors = filecmp.cmpfiles(SHARED_SPEC / folder, SPEC_ROOT / folder, shared, shallow=False)
    assert not mismatch, f"copy shared/spec/{folder} into schemas/data/spec/{folder}: {mismatch}"
    assert not errors
