"""The simulator's HTTP plumbing: a stdlib ``ThreadingHTTPServer`` (TLS optional) that turns each request into
a ``SimRequest`` for ``GatewaySimulator.handle`` and writes its ``Reply``; and the ways to run it: in a thread
(tests), or in the foreground until SIGTERM/SIGINT (``python -m adapters.gateway.simulator``,
``vneid-sync simulator serve``)."""

from __future__ import annotations

import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from structlog import get_logger

from adapters.gateway.simulator.config import SimulatorConfig
from adapters.gateway.simulator.server import GatewaySimulator
from adapters.gateway.simulator.wire import Clock, Reply, SimRequest, utc_now

log = get_logger(__name__)


class _Handler(BaseHTTPRequestHandler):
    server: SimulatorHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client uses it
    timeout = 60  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server_version = "vneid-sync-gateway-simulator"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()  # here, in the handler thread, not in the accept loop
        super().setup()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        simulator = self.server.simulator
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._write(Reply(status=411, body=b"Length Required", content_type="text/plain"), close=True)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > simulator.config.max_body_bytes:
            self._write(Reply(status=413, body=b"Payload Too Large", content_type="text/plain"), close=True)
            return
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        request = SimRequest(
            method=method,
            path=url.path,
            query=parse_qs(url.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        reply = simulator.handle(request)
        if reply.drop_connection:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._write(reply)

    def _write(self, reply: Reply, *, close: bool = False) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:  # the client left (it timed out): nothing to answer to
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr line; requests are counted in the stats instead."""


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], simulator: GatewaySimulator, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(address, _Handler)
        self.simulator = simulator
        self.scheme = "https" if ssl_context is not None else "http"
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"{self.scheme}://{host_text}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A failed TLS handshake or a client that vanished: not worth a traceback on stderr."""
        log.debug("simulator.connection_error", client=str(client_address[0]) if client_address else None)


def server_tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


@dataclass
class RunningSimulator:
    """A simulator serving in a background thread; a context manager."""

    server: SimulatorHTTPServer
    simulator: GatewaySimulator
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.simulator.stopping.set()  # wake handlers sleeping in a fault
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.simulator.close()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_simulator_in_thread(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state_dir: Path | None = None,
    ssl_context: ssl.SSLContext | None = None,
    clock: Clock = utc_now,
) -> RunningSimulator:
    """Start serving on ``host:port`` (0: a free port) in a daemon thread; ``.url`` says where."""
    simulator = GatewaySimulator(config, state_dir=state_dir, clock=clock)
    try:
        server = SimulatorHTTPServer((host, port), simulator, ssl_context)
    except BaseException:
        simulator.close()
        raise
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="gateway-simulator", daemon=True
    )
    thread.start()
    return RunningSimulator(server=server, simulator=simulator, thread=thread)


@contextmanager
def running_simulator(config: SimulatorConfig | None = None, **options: Any) -> Iterator[RunningSimulator]:
    running = start_simulator_in_thread(config, **options)
    try:
        yield running
    finally:
        running.stop()


LISTENING_PREFIX = "vneid-sync gateway simulator listening on "


def _print_flushed(line: str) -> None:
    print(line, flush=True)


def serve(
    config: SimulatorConfig,
    *,
    host: str,
    port: int,
    state_dir: Path | None,
    ssl_context: ssl.SSLContext | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until interrupted (SIGINT/SIGTERM). ``announce`` gets one line with the URL
    (``LISTENING_PREFIX`` + URL), so a parent process started with ``--port 0`` learns the port."""
    simulator = GatewaySimulator(config, state_dir=state_dir)
    server = SimulatorHTTPServer((host, port), simulator, ssl_context)

    def stop(_signum: int, _frame: object) -> None:
        simulator.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() blocks: not in the handler

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("simulator.control_api_exposed", host=host)
        log.info("simulator.started", url=server.url, structure_check=simulator.structure_check)
        (announce or _print_flushed)(LISTENING_PREFIX + server.url)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        simulator.close()
