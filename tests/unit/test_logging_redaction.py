from __future__ import annotations

import io
import json
import logging

from adapters.his.demo.synthetic import Kind
from tests.factories import encounter
from worker.logging import configure_logging, get_logger


def _render(**fields: object) -> str:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    get_logger("test").info("event", **fields)
    return stream.getvalue()


def test_personal_keys_and_identifier_values_are_removed() -> None:
    enc = encounter(Kind.INPATIENT_REFERRAL)
    patient = enc.patient
    assert patient.so_cccd
    assert patient.ma_the_bhyt
    assert patient.ho_ten
    assert patient.dien_thoai
    line = _render(
        ma_lk=enc.ma_lk,
        ho_ten=patient.ho_ten,
        patient={"so_cccd": patient.so_cccd, "dia_chi": patient.dia_chi},
        note=f"card {patient.ma_the_bhyt} cccd {patient.so_cccd} phone {patient.dien_thoai}",
        chan_doan_rv=enc.visit.chan_doan_rv,
        diagnosis_codes=[enc.visit.ma_benh_chinh],
    )
    for value in (patient.ho_ten, patient.so_cccd, patient.ma_the_bhyt, patient.dien_thoai, patient.dia_chi,
                  enc.visit.chan_doan_rv):  # fmt: skip
        assert value not in line
    record = json.loads(line)
    assert record["ma_lk"] == enc.ma_lk
    assert record["ho_ten"] == "[redacted]"


def test_stdlib_records_are_redacted_too() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("celery.worker").warning("retrying %s", "001203004567")
    assert "001203004567" not in stream.getvalue()


def test_hashes_and_ids_survive() -> None:
    digest = "a" * 20 + "123456789012" + "b" * 32
    record = json.loads(_render(payload_hash=digest, ledger_id=123456789012, free=f"x{digest}"))
    assert record["payload_hash"] == digest
    assert record["ledger_id"] == 123456789012
    assert record["free"] == f"x{digest}"
