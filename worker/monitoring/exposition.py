"""What goes on the wire: bounded label values and the HTTP endpoint that serves a registry.

Label values are bounded: result codes are kept only when they look like a code (digits), anything else
becomes ``other``. No label ever carries an id or personal data.

``prometheus_client`` is imported inside ``serve`` on purpose: a worker turns on its multiprocess mode before
the module is first imported (``worker.monitoring.worker_metrics``), and this module is imported before that.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

_CODE = re.compile(r"^[0-9]{1,6}$")


def code_label(value: object) -> str:
    """A bounded label for a gateway result code: the code when it looks like one, else ``none``/``other``."""
    if value is None or value == "":
        return "none"
    text = str(value).strip()
    return text if _CODE.match(text) else "other"


@dataclass
class MetricsServer:
    """A metrics endpoint served by a daemon thread; ``close()`` stops it."""

    host: str
    port: int
    _server: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` on ``host:port`` (0: any free port; IPv4 or IPv6) in a daemon thread.

    prometheus-client's ``start_http_server`` does the same but polls for shutdown every 0.5 s; this one is
    quiet (no access log on stderr) and stops within 0.1 s.
    """
    from prometheus_client import make_wsgi_app  # noqa: PLC0415  # see the module docstring
    from prometheus_client.exposition import ThreadingWSGIServer  # noqa: PLC0415  # idem

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the stdlib's parameter name
            pass

    httpd = make_server(host, port, make_wsgi_app(registry), Server, handler_class=QuietHandler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-http", daemon=True
    )
    thread.start()
    return MetricsServer(host=host, port=int(httpd.server_port), _server=httpd, _thread=thread)
