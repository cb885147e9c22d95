"""A fault-injecting HTTP proxy for the loopback S3 server (and any other loopback HTTP service).

    with FaultProxy("http://127.0.0.1:9000", error_rate=0.1, drop_rate=0.05, delay_rate=0.1) as proxy:
        ...  # point the client at proxy.url

Each request, independently and reproducibly (seeded), is answered with a 503 ``SlowDown``
(as S3 does when throttling), dropped (the connection closed without an answer), delayed
by ``delay_s`` then forwarded, or forwarded untouched. The rates and the delay can be changed
while it runs (``proxy.set(error_rate=0)``, ``proxy.set(delay_rate=1.0, delay_s=0.05)`` for a fixed
latency on every request); ``connection_delay_s`` is added to the first request of each new
connection (the handshakes of TCP and TLS, which a loopback connection does not pay).
``proxy.counts()`` says what happened: requests, each fault, new connections, and the bytes of the
bodies sent back to the client; ``proxy.requests()`` lists the requests one by one
(method, path, status, body bytes) and ``proxy.reset()`` starts both afresh, so that a benchmark
can count what one step of a client costs. The same answers come from the control endpoint
(``<url>/__faults__/``, ``?reset=1``, ``?log=1``) for a client in another process.

The proxy runs in its own process: some TileDB calls hold Python's GIL while they wait for
the network, so a proxy thread in the client's process would never get to answer.
"""

import http.client
import json
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CONTROL = "/__faults__/"
LOG_LIMIT = 100_000  # requests kept in the per-request log between resets

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate (injected fault).</Message></Error>")


class _Faults:
    """The proxy's state, in the proxy process."""

    def __init__(self, upstream: str, error_rate, drop_rate, delay_rate, delay_s, seed):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.rates = {"error": error_rate, "drop": drop_rate, "delay": delay_rate}
        self.delay_s = delay_s
        self.connection_delay_s = 0.0
        self.counts = {"requests": 0, "errors": 0, "drops": 0, "delays": 0, "connections": 0, "bytes": 0}
        self.log = []  # (method, path, status, body bytes) per answered request, the first LOG_LIMIT
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def decide(self) -> str:
        with self._lock:
            self.counts["requests"] += 1
            draw = self._random.random()
            for kind in ("error", "drop", "delay"):
                if draw < self.rates[kind]:
                    self.counts[kind + "s"] += 1
                    return kind
                draw -= self.rates[kind]
        return "forward"

    def connected(self) -> float:
        """Count a new connection; the handshakes' delay to add to its first request."""
        with self._lock:
            self.counts["connections"] += 1
            return self.connection_delay_s

    def sent(self, method: str, path: str, status: int, size: int) -> None:
        """Count a body of ``size`` bytes sent back to the client."""
        with self._lock:
            self.counts["bytes"] += size
            if len(self.log) < LOG_LIMIT:
                self.log.append((method, path, status, size))

    def reset(self) -> None:
        with self._lock:
            self.counts = dict.fromkeys(self.counts, 0)
            self.log = []


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog is 5: a client opening 32 connections at once (TileDB's S3
    # client does) had the rest of its SYNs dropped and retried by the kernel a second later,
    # a wait no S3 endpoint imposes. 128 is what moto's own server (werkzeug) listens with.
    request_queue_size = 128


def _serve(faults: _Faults, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self, status: int, body: bytes, content_type="application/xml", headers=()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for key, value in headers:
                self.send_header(key, value)
            if not any(key.lower() == "content-length" for key, _ in headers):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _control(self):
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            if query.pop("reset", None):
                faults.reset()
            with_log = bool(query.pop("log", None))
            with faults._lock:
                if "delay_s" in query:
                    faults.delay_s = float(query.pop("delay_s"))
                if "connection_delay_s" in query:
                    faults.connection_delay_s = float(query.pop("connection_delay_s"))
                for key, value in query.items():
                    faults.rates[key] = float(value)
                answer = {"rates": faults.rates, "delay_s": faults.delay_s, "connection_delay_s": faults.connection_delay_s,
                          "counts": faults.counts}
                if with_log:
                    answer["log"] = faults.log
                document = json.dumps(answer).encode()
            self._answer(200, document, "application/json")

        def _handle(self):
            body = self._body()
            if self.path.startswith(CONTROL):
                return self._control()
            if not getattr(self, "_connected", False):  # one handler per connection: its first request
                self._connected = True
                handshakes = faults.connected()
                if handshakes:
                    time.sleep(handshakes)
            action = faults.decide()
            if action == "drop":
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if action == "error":
                faults.sent(self.command, self.path, 503, len(SLOW_DOWN) if self.command != "HEAD" else 0)
                return self._answer(503, SLOW_DOWN)
            if action == "delay":
                time.sleep(faults.delay_s)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            if self.command in ("PUT", "POST") or body:
                headers["Content-Length"] = str(len(body))
            upstream = http.client.HTTPConnection(*faults.upstream, timeout=60)
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
            finally:
                upstream.close()
            passed = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_HEADERS and k.lower() != "content-type"]
            if self.command != "HEAD":  # a HEAD answer keeps the object's length
                passed = [(k, v) for k, v in passed if k.lower() != "content-length"] + [("Content-Length", str(len(data)))]
            self.send_response(response.status, response.reason)
            for key, value in passed:
                self.send_header(key, value)
            content_type = response.getheader("Content-Type")
            if content_type:
                self.send_header("Content-Type", content_type)
            self.end_headers()
            faults.sent(self.command, self.path, response.status, 0 if self.command == "HEAD" else len(data))
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    server = _Server(("127.0.0.1", port), Handler)
    server.serve_forever()


def control(url: str, **parameters) -> dict:
    """The control endpoint of the proxy at ``url`` (from any process): its rates, delay and counts
    after applying ``parameters`` (rates, ``delay_s``, ``reset=1``; ``log=1`` adds the request log)."""
    query = "&".join(f"{k}={v}" for k, v in parameters.items())
    with urllib.request.urlopen(f"{url}{CONTROL}?{query}", timeout=10) as answer:
        return json.loads(answer.read())


class FaultProxy:
    def __init__(self, upstream: str, error_rate=0.0, drop_rate=0.0, delay_rate=0.0, delay_s=0.3, seed=0):
        self.arguments = [upstream, str(error_rate), str(drop_rate), str(delay_rate), str(delay_s), str(seed)]
        self._process = None
        self.url = ""

    def _control(self, **rates) -> dict:
        return control(self.url, **rates)

    def set(self, error_rate=None, drop_rate=None, delay_rate=None, delay_s=None, connection_delay_s=None) -> None:
        changes = (("error", error_rate), ("drop", drop_rate), ("delay", delay_rate), ("delay_s", delay_s),
                   ("connection_delay_s", connection_delay_s))
        self._control(**{k: v for k, v in changes if v is not None})

    def set_latency(self, seconds: float, handshake_round_trips: int = 2) -> None:
        """A link with ``seconds`` per round trip: every request waits that long, and a new
        connection's first request ``handshake_round_trips`` times more (TCP's handshake and TLS
        1.3's: an https connection to S3 costs two round trips before its first request)."""
        self.set(delay_rate=1.0 if seconds else 0.0, delay_s=seconds, connection_delay_s=seconds * handshake_round_trips)

    def counts(self) -> dict:
        return self._control()["counts"]

    def requests(self) -> list:
        """[method, path, status, body bytes] of each request answered since the start or the last reset."""
        return self._control(log=1)["log"]

    def reset(self) -> None:
        """Zero the counts and empty the request log (the rates and the delay stay)."""
        self._control(reset=1)

    def __enter__(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._process = subprocess.Popen([sys.executable, __file__, str(port), *self.arguments])
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                self._control()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the fault proxy did not start")

    def __exit__(self, *exc):
        self._process.terminate()
        self._process.wait(10)


if __name__ == "__main__":
    port, upstream, error_rate, drop_rate, delay_rate, delay_s, seed = sys.argv[1:8]
    _serve(_Faults(upstream, float(error_rate), float(drop_rate), float(delay_rate), float(delay_s), int(seed)), int(port))
