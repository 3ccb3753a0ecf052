"""What our local AWS endpoints (devtools/eventbridgev2_endpoint.py, schemas_endpoint.py)
share: a threaded HTTP server on 127.0.0.1 that can end its idle keep-alive connections,
started and stopped with the endpoint, and a command line that serves until interrupted."""

from __future__ import annotations

import signal
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class TrackedServer(ThreadingHTTPServer):
    """Serves ``endpoint`` with ``handler`` (which reads ``self.server.endpoint``)."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 makes many clients at once wait a SYN retry

    def __init__(self, endpoint: Any, port: int, handler: type[BaseHTTPRequestHandler],
                 tls: ssl.SSLContext | None = None) -> None:
        self.endpoint = endpoint
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), handler)
        if tls is not None:  # a server-side context: the endpoint speaks HTTPS, as AWS does
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End idle keep-alive connections, so their handler threads exit."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ServedEndpoint:
    """start() / stop() / a context manager / endpoint_url, for an endpoint whose requests
    ``HANDLER`` answers; ``port`` 0 picks a free one."""

    HANDLER: type[BaseHTTPRequestHandler]
    THREAD_NAME = "local-endpoint"
    port: int = 0
    tls: ssl.SSLContext | None = None
    _server: TrackedServer | None = None
    _thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first.")
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls is not None else 'http'}://{host!s}:{port}"

    def start(self) -> Self:
        if self._server is None:
            self._server = TrackedServer(self, self.port, self.HANDLER, self.tls)
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                            name=self.THREAD_NAME, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        raise NotImplementedError


def serve_until_signalled(endpoint: ServedEndpoint, extra_lines: Callable[[], list[str]]) -> int:
    """Prints the endpoint's ``export`` lines (and ``extra_lines()``), then serves until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with endpoint:
        for key, value in endpoint.env().items():
            print(f"export {key}={value}")
        for line in extra_lines():
            print(line)
        sys.stdout.flush()
        stop.wait()
    return 0
