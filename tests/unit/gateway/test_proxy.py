"""Hospital networks often reach the gateway through an HTTP proxy named in the environment (``trust_env``)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from schemas.ports import DocumentKind, Outcome
from tests.unit.gateway.conftest import GatewayFactory
from tests.unit.gateway.support import XmlsecSigner


class ForwardingProxy(ThreadingHTTPServer):
    """A plain-HTTP forward proxy: takes absolute-URI requests and relays them; remembers what it relayed."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.relayed: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardingProxy

    def do_POST(self) -> None:
        target = urlsplit(self.path)
        assert target.hostname is not None, "a forward proxy receives absolute URIs"
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")
        }
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        try:
            upstream.request("POST", target.path, body=body, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        self.server.relayed.append(target.path)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch, proxy: ForwardingProxy) -> ForwardingProxy:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    return proxy


def test_with_trust_env_the_claim_goes_through_the_proxy_the_environment_names(
    proxy_env: ForwardingProxy, make_gateway: GatewayFactory, signer: XmlsecSigner, ma_lk: str
) -> None:
    gateway = make_gateway(trust_env=True)
    receipt = gateway.submit(signer.claim(ma_lk), DocumentKind.CLAIM)
    assert receipt.outcome is Outcome.ACCEPTED
    assert proxy_env.relayed == [gateway.config.token_path, gateway.config.send_path]


def test_no_proxy_or_trust_env_off_goes_straight_to_the_gateway(
    proxy_env: ForwardingProxy,
    monkeypatch: pytest.MonkeyPatch,
    make_gateway: GatewayFactory,
    signer: XmlsecSigner,
    ma_lk: str,
) -> None:
    direct = make_gateway(trust_env=False)
    assert direct.submit(signer.claim(ma_lk), DocumentKind.CLAIM).outcome is Outcome.ACCEPTED
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # where the simulator listens
    bypassed = make_gateway(trust_env=True)
    assert bypassed.submit(signer.claim(ma_lk + "B"), DocumentKind.CLAIM).outcome is Outcome.ACCEPTED
    assert proxy_env.relayed == []


def test_a_proxy_that_is_down_is_a_transient_failure_not_a_lost_claim(
    monkeypatch: pytest.MonkeyPatch, make_gateway: GatewayFactory, signer: XmlsecSigner, ma_lk: str
) -> None:
    closed = ForwardingProxy()
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there any more
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    receipt = make_gateway(trust_env=True, transient_attempts=1).submit(
        signer.claim(ma_lk), DocumentKind.CLAIM
    )
    assert receipt.outcome is Outcome.TRANSIENT
