"""The simulator as a child process (``python -m adapters.gateway.simulator``) on a free port."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from adapters.gateway.simulator.serving import LISTENING_PREFIX


class SimulatorProcess:
    """Start with :func:`spawn_simulator`; ``.url`` is where it listens; a context manager that stops it."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        return self.process.returncode

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()


def spawn_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    config_file: Path | None = None,
    faults_file: Path | None = None,
    trust_store: Path | None = None,
    state_dir: Path | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = 20.0,
) -> SimulatorProcess:
    """Run the simulator in a child process and wait until it announces its URL."""
    command = [sys.executable, "-m", "adapters.gateway.simulator", "--host", host, "--port", str(port)]
    for option, value in (
        ("--config", config_file),
        ("--faults", faults_file),
        ("--trust-store", trust_store),
        ("--state", state_dir),
    ):
        if value is not None:
            command += [option, str(value)]
    command += list(extra_args)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command,
        stdout=subprocess.PIPE,
        text=True,  # stderr inherited: startup errors stay visible
    )
    url = read_announcement(process, startup_timeout_s)
    if url is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"the gateway simulator did not start (exit code {process.returncode})")
    return SimulatorProcess(process, url)


def read_announcement(process: subprocess.Popen[str], timeout_s: float) -> str | None:
    """The URL the child announces on stdout, or ``None`` (it ended, or ``timeout_s`` passed).

    A daemon thread reads the pipe — a text pipe's own buffering defeats ``select`` — and keeps draining it
    after the announcement, so a chatty child never blocks on a full pipe.
    """
    assert process.stdout is not None
    stdout = process.stdout
    found: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        announced = False
        for line in stdout:
            if not announced and line.startswith(LISTENING_PREFIX):
                announced = True
                found.put(line[len(LISTENING_PREFIX) :].strip())
        if not announced:
            found.put(None)

    threading.Thread(target=drain, name="simulator-stdout", daemon=True).start()
    try:
        return found.get(timeout=timeout_s)
    except queue.Empty:
        return None
