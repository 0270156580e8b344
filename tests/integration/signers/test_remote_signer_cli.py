"""`vneid-sync remote-signer serve` as a real process, used by the remote key source over HTTP."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

from adapters.signers.remote.signer import RemoteSigner
from adapters.signers.verification import xmlsec1_verify
from tests.conftest import REPO_ROOT
from tests.unit.signers.support import PkiSet
from worker.config import SignerSettings


def first_line(stream: object, timeout_s: float = 30.0) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()  # type: ignore[attr-defined]
    return lines.get(timeout=timeout_s)


def test_serve_command_signs_for_the_remote_key_source(pki: PkiSet, envelope: bytes, tmp_path: Path) -> None:
    files = pki[3072]
    token_file = tmp_path / "token"
    token_file.write_text("cli-reference-token-0123456789\n", encoding="utf-8")
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(files.passphrase + "\n", encoding="utf-8")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("VNEID_")}
    command = [
        sys.executable, "-m", "worker.cli.app", "remote-signer", "serve",
        "--key", str(files.pkcs12), "--port", "0",
        "--token-file", str(token_file), "--passphrase-file", str(passphrase_file),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = first_line(process.stdout)
        assert line.startswith("reference signer listening on http://127.0.0.1:"), line
        settings = SignerSettings(
            source="remote", remote_url=line.split()[-1], remote_token="cli-reference-token-0123456789"
        )
        with RemoteSigner.from_settings(settings) as signer:
            assert signer.certificate == files.hospital.certificate
            signed = signer.sign(envelope)
        assert xmlsec1_verify(signed, trusted_pem=pki.ca_certificate).ok
    finally:
        process.terminate()
        process.wait(timeout=10)
