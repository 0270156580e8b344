"""The simulator as a child process: `python -m adapters.gateway.simulator` and `vneid-sync simulator serve`,
with its record kept across a restart in the state directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from adapters.gateway.bhxh.client import BhxhGateway
from adapters.gateway.bhxh.token_cache import TokenCache
from adapters.gateway.simulator import SimulatorAdmin, spawn_simulator
from adapters.gateway.simulator.process import SimulatorProcess, read_announcement
from schemas.ports import DocumentKind, Outcome
from tests.unit.gateway.conftest import gateway_config
from tests.unit.gateway.support import XmlsecSigner


def test_child_process_keeps_its_record_across_a_restart(
    tmp_path: Path, signer: XmlsecSigner, ma_lk: str
) -> None:
    state = tmp_path / "state"
    config = tmp_path / "simulator.toml"
    config.write_text('structure_check = "minimal"\n', encoding="utf-8")
    signed = signer.claim(ma_lk)
    with spawn_simulator(config_file=config, state_dir=state) as first:
        with BhxhGateway(gateway_config(first.url), token_cache=TokenCache()) as client:
            original = client.submit(signed, DocumentKind.CLAIM)
        assert original.outcome is Outcome.ACCEPTED
    assert first.process.returncode is not None
    with spawn_simulator(config_file=config, state_dir=state) as second:
        with BhxhGateway(gateway_config(second.url), token_cache=TokenCache()) as client:
            again = client.submit(signed, DocumentKind.CLAIM)
        assert (again.outcome, again.duplicate) == (Outcome.ACCEPTED, True)
        assert again.ma_giao_dich == original.ma_giao_dich
        with SimulatorAdmin(second.url) as admin:
            assert len(admin.accepted(ma_lk=ma_lk)) == 1


def test_faults_file_and_options_on_the_command_line(
    tmp_path: Path, signer: XmlsecSigner, ma_lk: str
) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text('{"http_5xx": 1.0, "seed": 5}', encoding="utf-8")
    with (
        spawn_simulator(faults_file=faults, extra_args=["--max-faults", "1"]) as running,
        SimulatorAdmin(running.url) as admin,
    ):
        assert admin.faults()["http_5xx"] == 1.0
        assert admin.faults()["max_faults"] == 1


def test_vneid_sync_simulator_serve(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "worker.cli.app",
        "simulator",
        "serve",
        "--port",
        "0",
        "--fault-429",
        "0.5",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    url = read_announcement(process, 30)
    assert url is not None, "the CLI did not announce its URL"
    with SimulatorProcess(process, url), SimulatorAdmin(url) as admin:
        assert admin.health()["ok"] is True
        assert admin.faults()["http_429"] == 0.5
