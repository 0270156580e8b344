"""`vneid-sync payload build --demo` and `payload validate` through the real CLI entry point."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from schemas import decode_envelope, validate_envelope_bytes
from schemas.spec import Profile
from worker.cli.app import main
from worker.cli.context import console


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VNEID_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(console, "width", 300)  # keep rule ids on one line in captured output


def test_build_demo_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "envelopes"
    assert (
        main(["payload", "build", "--demo", "30", "--out", str(out), "--date", "2026-03-05", "--seed", "3"])
        == 0
    )
    summary = capsys.readouterr().out
    files = sorted(out.glob("*.xml"))
    match = re.search(r"(\d+) envelope\(s\) written .*\(qd3176\); (\d+) rejected", summary)
    assert match is not None
    assert int(match.group(1)) == len(files)
    assert len(files) + int(match.group(2)) == 30
    assert int(match.group(2)) == summary.count("XML1.NGAY_SINH.newborn_time")  # only the deliberate newborns
    for path in files:
        document = path.read_bytes()
        assert b"<NGAYLAP>20260305</NGAYLAP>" in document
        assert (
            path.stem
            == re.search(rb"<MA_LK>([^<]+)</MA_LK>", decode_envelope(document)["XML1"]).group(1).decode()
        )  # type: ignore[union-attr]
        assert validate_envelope_bytes(document, Profile.QD3176) == []

    assert main(["payload", "validate", *map(str, files)]) == 0
    assert f"{len(files)} file(s) checked: 0 error(s)" in capsys.readouterr().out


def test_validate_reports_errors_by_rule_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "envelopes"
    assert (
        main(
            [
                "payload",
                "build",
                "--demo",
                "3",
                "--out",
                str(out),
                "--date",
                "2026-03-05",
                "--profile",
                "qd4750",
            ]
        )
        == 0
    )
    good = sorted(out.glob("*.xml"))[0]
    xml1 = decode_envelope(good.read_bytes())["XML1"]
    inner = tmp_path / "XML1.xml"
    inner.write_bytes(xml1)
    capsys.readouterr()
    assert main(["payload", "validate", "--profile", "qd4750", str(inner)]) == 0

    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(re.sub(rb"<SO_CCCD>\d+</SO_CCCD>", b"<SO_CCCD>12345</SO_CCCD>", xml1))
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<GIAMDINHHS><THONGTINDONVI>")
    capsys.readouterr()
    assert main(["payload", "validate", "--lang", "en", str(tampered), str(broken)]) == 1
    output = capsys.readouterr().out
    assert "XML1.SO_CCCD.format" in output
    assert "GIAMDINHHS.parse" in output
    assert "12345" not in output
    assert "2 file(s) checked: 2 error(s)" in output


def test_build_rejects_a_bad_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["payload", "build", "--demo", "1", "--out", str(tmp_path), "--date", "05/03/2026"]) == 2
    assert "yyyy-mm-dd" in capsys.readouterr().err
