"""A fast local PutEvents endpoint that accepts everything, for the benchmark.

It runs in its own process (one asyncio loop, a minimal HTTP/1.1 parser with keep-alive)
so that its CPU does not count against the process being measured, and so that it can
answer far more requests per second than the tool sends: what the benchmark measures
is our side. It speaks the AWS JSON 1.1 wire format of PutEvents (see fault_endpoint.py)
and answers every entry with an EventId. ``GET /stats`` returns the counts so far;
``POST /reset`` zeroes them. It checks what a real endpoint would refuse: more than 10
entries, a missing Source/DetailType/Detail, a Detail that is not a JSON object; those are
counted as ``invalid`` and answered as AWS does.

``latency`` (seconds) delays every answer, as a distant region or a busy network would:
requests on one connection are answered in order, each ``latency`` after it arrived, and
the connections opened are counted (``connections``: keep-alive reuse, or not).

    with StubEndpoint() as stub:
        ... endpoint_url=stub.endpoint_url ...
        stub.stats()   # {"requests": .., "entries": .., "invalid": .., "first_at": .., "last_at": ..}
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from types import TracebackType
from typing import Any


class _Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.entries = 0
        self.invalid = 0
        self.connections = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.per_second: dict[int, int] = {}

    def as_dict(self) -> dict[str, Any]:
        peak = max(self.per_second.values(), default=0)
        return {"requests": self.requests, "entries": self.entries, "invalid": self.invalid,
                "connections": self.connections,
                "first_at": self.first_at, "last_at": self.last_at, "peak_requests_per_second": peak}


_COUNTER = 0


def _answer(stats: _Stats, body: bytes) -> tuple[int, bytes]:
    global _COUNTER
    try:
        entries = json.loads(body).get("Entries") or []
    except ValueError:
        return 400, b'{"__type":"SerializationException","message":"bad JSON"}'
    if len(entries) > 10:
        stats.invalid += 1
        return 400, b'{"__type":"ValidationException","message":"more than 10 entries"}'
    now = time.time()
    stats.requests += 1
    stats.first_at = stats.first_at or now
    stats.last_at = now
    sec = int(now)
    stats.per_second[sec] = stats.per_second.get(sec, 0) + 1
    results = []
    failed = 0
    for e in entries:
        ok = bool(e.get("Source")) and bool(e.get("DetailType")) and isinstance(e.get("Detail"), str)
        if ok:
            try:
                ok = isinstance(json.loads(e["Detail"]), dict)
            except ValueError:
                ok = False
        if ok:
            _COUNTER += 1
            stats.entries += 1
            results.append({"EventId": f"stub-{_COUNTER}"})
        else:
            failed += 1
            stats.invalid += 1
            results.append({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
    return 200, json.dumps({"FailedEntryCount": failed, "Entries": results}).encode()


class _Protocol(asyncio.Protocol):
    def __init__(self, stats: _Stats, latency: float) -> None:
        self.stats = stats
        self.latency = latency
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buf[:head_end].decode("latin-1")
            lines = head.split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buf) < head_end + 4 + length:
                return
            body = self.buf[head_end + 4:head_end + 4 + length]
            self.buf = self.buf[head_end + 4 + length:]
            if method == "GET" and path.startswith("/stats"):
                status, out = 200, json.dumps(self.stats.as_dict()).encode()
            elif method == "POST" and path.startswith("/reset"):
                self.stats.reset()
                status, out = 200, b"{}"
            else:
                status, out = _answer(self.stats, body)
            assert self.transport is not None
            answer = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Bad Request'}\r\n"
                      f"Content-Type: application/x-amz-json-1.1\r\nx-amzn-RequestId: stub\r\n"
                      f"Content-Length: {len(out)}\r\n\r\n").encode() + out
            if self.latency > 0 and path == "/":
                # call_later keeps the order of equal delays: answers stay in request order.
                asyncio.get_running_loop().call_later(self.latency, self._write, answer)
            else:
                self.transport.write(answer)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def _serve(port: int, latency: float) -> None:
    stats = _Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(stats, latency), "127.0.0.1", port, backlog=1024)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


class StubEndpoint:
    """Starts the stub in a child process; stopped on exit."""

    def __init__(self, latency: float = 0.0) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.latency = latency

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StubEndpoint:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen([sys.executable, "-m", "devtools.stub_endpoint", "0", str(self.latency)],
                                     cwd=root,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            self.stop()
            raise RuntimeError("the stub endpoint did not start")
        self.port = int(line[1])
        return self

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint_url}/stats", timeout=10) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/reset", data=b"", method="POST"),
                               timeout=10).close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None

    def __enter__(self) -> StubEndpoint:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


if __name__ == "__main__":
    try:
        asyncio.run(_serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0,
                           float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
    except KeyboardInterrupt:
        pass
