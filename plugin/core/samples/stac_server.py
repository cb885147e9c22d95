"""A small STAC API over a static catalogue folder (see ``sample_scenes``), for tests and the demo.

    python -m canopy_explorer.plugin.core.samples.stac_server FOLDER --port 8123 [--host 127.0.0.1]

Serves ``/`` (landing page with conformance), ``/conformance``, ``/collections``,
``/collections/<id>``, ``/collections/<id>/items/<item>``, ``/search`` (GET and POST:
``collections``, ``ids``, ``intersects``, ``bbox``, ``datetime``, ``query`` with
``lt``/``lte``/``gt``/``gte``/``eq``, ``limit``, and paging through a ``next`` link with a
``token``), and the asset files with HTTP Range support (single and multiple ranges),
so GDAL reads COG windows over HTTP as it does from a real bucket. Relative asset hrefs
are made absolute with the address the client used.

``--log FILE`` appends one JSON line per request (method, path, query parameters, body,
Range header, status, bytes sent), so tests can check what a client asked for. Faults
for error tests: ``--fail-asset-pattern REGEX`` (answer those asset paths with
``--fail-status``, default 503), ``--fail-rate P`` (that share of asset requests fails,
deterministic with ``--seed``), ``--fail-search N`` (the first N searches fail),
``--stall SECONDS`` (delay answers to paths matching ``--stall-pattern``; with
``--stall-after N`` only after the first N of them, which stalls a read midway),
``--ignore-query`` (answer as servers without the query extension do: ignore ``query``).
``--require-authorization VALUE`` makes the API (not the assets) a private one: requests whose
``Authorization`` header is not exactly VALUE get 401; the log records each request's
authorization scheme ("Basic", "Bearer", ...), never its credentials.

Run it in its own process (``SampleStacServer``): a server thread inside a process that
opens files over HTTP with rasterio can deadlock, since the open holds the GIL.

This module imports only the standard library and shapely so that it also runs as a
script by path.
"""

import argparse
import datetime as dt
import json
import random
import re
import socket
# B404: runs fixed programs with argument lists, never a shell
import subprocess  # nosec B404
import sys
import threading
import time
import urllib.parse
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


class SearchError(ValueError):
    """A search parameter the server cannot understand: answered with 400."""


# --------------------------------------------------------------------------- catalogue


class Catalogue:
    def __init__(self, folder: Path, ignore_query: bool = False):
        from shapely.geometry import shape

        self.ignore_query = ignore_query
        self.folder = Path(folder).resolve()
        self.collections: Dict[str, Dict] = {}
        self.items: List[Dict] = []
        self._shapes = []
        for path in sorted((self.folder / "collections").glob("*/collection.json")):
            document = json.loads(path.read_text(encoding="utf-8"))
            self.collections[document["id"]] = document
            for item_path in sorted((path.parent / "items").glob("*.json")):
                item = json.loads(item_path.read_text(encoding="utf-8"))
                item.setdefault("collection", document["id"])
                self.items.append(item)
                self._shapes.append(shape(item["geometry"]) if item.get("geometry") else None)
        self.items_by_key = {(item["collection"], item["id"]): item for item in self.items}

    def search(self, params: Dict) -> List[Dict]:
        from shapely.geometry import box, shape

        collections = params.get("collections")
        if isinstance(collections, str):
            collections = [c for c in collections.split(",") if c]
        ids = params.get("ids")
        if isinstance(ids, str):
            ids = [i for i in ids.split(",") if i]
        geometry = None
        if params.get("intersects") is not None:
            intersects = params["intersects"]
            if isinstance(intersects, str):
                intersects = json.loads(intersects)
            try:
                geometry = shape(intersects)
            except Exception as error:
                raise SearchError(f"intersects is not a GeoJSON geometry: {error}") from None
        if params.get("bbox") is not None:
            bbox = params["bbox"]
            if isinstance(bbox, str):
                bbox = [float(v) for v in bbox.split(",")]
            if len(bbox) != 4:
                raise SearchError("bbox must have four numbers")
            bbox_geometry = box(*bbox)
            geometry = bbox_geometry if geometry is None else geometry.intersection(bbox_geometry)
        start, end = _interval(params.get("datetime"))
        query = params.get("query") or {}
        if self.ignore_query:
            query = {}
        if isinstance(query, str):
            query = json.loads(query)
        if not isinstance(query, dict):
            raise SearchError("query must be an object like {\"eo:cloud_cover\": {\"lt\": 20}}")
        found = []
        for item, footprint in zip(self.items, self._shapes):
            if collections and item["collection"] not in collections:
                continue
            if ids and item["id"] not in ids:
                continue
            if geometry is not None and (footprint is None or not footprint.intersects(geometry)):
                continue
            when = _parse_time(item["properties"].get("datetime"))
            if (start and (when is None or when < start)) or (end and (when is None or when > end)):
                continue
            if not _matches(item["properties"], query):
                continue
            found.append(item)
        return found


def _parse_time(text) -> Optional[dt.datetime]:
    if text in (None, "", ".."):
        return None
    text = str(text).strip()
    if re.fullmatch(r"\d{4}", text):
        text += "-01-01"
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _interval(value):
    if not value:
        return None, None
    try:
        if "/" in value:
            first, last = value.split("/", 1)
            return _parse_time(first), _parse_time(last)
        when = _parse_time(value)
        return when, when
    except ValueError:
        raise SearchError(f"datetime {value!r} is not an RFC 3339 instant or interval") from None


_OPERATORS = {
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b,
}


def _matches(properties: Dict, query: Dict) -> bool:
    for name, conditions in query.items():
        if not isinstance(conditions, dict):
            raise SearchError(f"query.{name} must be an object of operators (lt, lte, gt, gte, eq)")
        value = properties.get(name)
        for operator, operand in conditions.items():
            if operator not in _OPERATORS:
                raise SearchError(f"unsupported query operator {operator!r}")
            if value is None:
                return False
            if isinstance(operand, str) and isinstance(value, (int, float)):
                # pystac-client's list form ("eo:cloud_cover<5") sends the number as text; Earth Search accepts it
                try:
                    operand = float(operand)
                except ValueError:
                    return False
            try:
                if not _OPERATORS[operator](value, operand):
                    return False
            except TypeError:
                return False
    return True


# --------------------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: GDAL reuses connections for its range requests
    server_version = "SampleSTAC/1.0"

    # set on the class by serve()
    catalogue: Catalogue = None
    options: argparse.Namespace = None
    log_lock = threading.Lock()
    counters = {"search": 0}
    # B311: which test requests fail, not security
    random_source = random.Random(0)  # nosec B311

    def log_message(self, format, *args):  # the JSON log replaces stderr chatter
        pass

    # ------------------------------------------------------------ plumbing

    def _base_url(self) -> str:
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        return f"http://{host}"

    def _record(self, status: int, sent: int, body=None, kind="api") -> None:
        if not self.options.log:
            return
        parsed = urllib.parse.urlsplit(self.path)
        entry = {
            "time": time.time(), "kind": kind, "method": self.command, "path": parsed.path,
            "params": {k: v if len(v) > 1 else v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()},
            "body": body, "range": self.headers.get("Range"), "status": status, "bytes": sent,
            "auth": (self.headers.get("Authorization") or "").split(" ")[0] or None,
        }
        with self.log_lock:
            with open(self.options.log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")

    def _send_json(self, document, status=200, body=None) -> None:
        data = json.dumps(document).encode("utf-8")
        self._record(status, len(data), body)  # before answering: a client that got the answer finds it logged
        self.send_response(status)
        self.send_header("Content-Type", "application/geo+json" if document.get("type") == "FeatureCollection" else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, message: str, body=None, kind="api") -> None:
        data = json.dumps({"code": HTTPStatus(status).phrase, "description": message}).encode("utf-8")
        self._record(status, len(data), body, kind)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _stall(self) -> None:
        if self.options.stall and re.search(self.options.stall_pattern, self.path):
            with self.log_lock:
                self.counters["stall"] += 1
                seen = self.counters["stall"]
            if seen > self.options.stall_after:
                time.sleep(self.options.stall)

    def _authorized(self) -> bool:
        required = self.options.require_authorization
        return not required or self.headers.get("Authorization") == required

    # ------------------------------------------------------------ verbs

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._stall()
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        if _is_api(path) and not self._authorized():
            return self._error(401, "this STAC API needs an Authorization header")
        if path == "/":
            return self._send_json(self._landing())
        if path == "/conformance":
            return self._send_json({"conformsTo": CONFORMANCE})
        if path == "/collections":
            return self._send_json({"collections": [self._collection(c) for c in self.catalogue.collections.values()], "links": []})
        match = re.fullmatch(r"/collections/([^/]+)", path)
        if match:
            if match.group(1) not in self.catalogue.collections:
                return self._error(404, f"no collection {match.group(1)}")
            return self._send_json(self._collection(self.catalogue.collections[match.group(1)]))
        match = re.fullmatch(r"/collections/([^/]+)/items/([^/]+)", path)
        if match:
            item = self.catalogue.items_by_key.get((match.group(1), match.group(2)))
            return self._send_json(self._absolute(item)) if item else self._error(404, "no such item")
        if path == "/search":
            return self._search(params, None)
        return self._asset(urllib.parse.unquote(parsed.path))

    def do_POST(self):
        self._stall()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._error(400, "the request body is not JSON")
        if not self._authorized():
            return self._error(401, "this STAC API needs an Authorization header", body)
        if urllib.parse.urlsplit(self.path).path.rstrip("/") != "/search":
            return self._error(405, "POST is only for /search", body)
        return self._search(body, body)

    # ------------------------------------------------------------ API documents

    def _landing(self):
        base = self._base_url()
        return {
            "type": "Catalog", "stac_version": "1.0.0", "id": "sample-stac", "title": "Sample STAC API",
            "description": "Synthetic Sentinel-2 L2A scenes for Canopy Explorer", "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{base}/conformance", "type": "application/json"},
                {"rel": "data", "href": f"{base}/collections", "type": "application/json"},
                {"rel": "search", "href": f"{base}/search", "type": "application/geo+json", "method": "GET"},
                {"rel": "search", "href": f"{base}/search", "type": "application/geo+json", "method": "POST"},
            ] + [{"rel": "child", "href": f"{base}/collections/{c}", "type": "application/json"} for c in self.catalogue.collections],
        }

    def _collection(self, document):
        base = self._base_url()
        document = dict(document)
        document["links"] = [
            {"rel": "self", "href": f"{base}/collections/{document['id']}"},
            {"rel": "root", "href": f"{base}/"},
            {"rel": "parent", "href": f"{base}/"},
            {"rel": "items", "href": f"{base}/collections/{document['id']}/items"},
        ]
        return document

    def _absolute(self, item):
        base = self._base_url()
        item = json.loads(json.dumps(item))
        for asset in item.get("assets", {}).values():
            href = asset.get("href", "")
            if not re.match(r"^[a-z][a-z0-9+.-]*://", href) and not href.startswith("/"):
                asset["href"] = f"{base}/{urllib.parse.quote(href)}"
        item["links"] = [
            {"rel": "self", "href": f"{base}/collections/{item['collection']}/items/{item['id']}"},
            {"rel": "collection", "href": f"{base}/collections/{item['collection']}"},
            {"rel": "root", "href": f"{base}/"},
        ]
        return item

    def _search(self, params: Dict, body):
        self.counters["search"] += 1
        if self.counters["search"] <= self.options.fail_search:
            return self._error(503, "search failure injected for testing", body)
        try:
            limit = int(params.get("limit") or DEFAULT_LIMIT)
            if not 1 <= limit <= MAX_LIMIT:
                raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
            token = params.get("token")
            start = 0
            if token:
                if not str(token).startswith("next:"):
                    raise SearchError(f"unknown paging token {token!r}")
                start = int(str(token)[5:])
            found = self.catalogue.search(params)
        except (SearchError, ValueError) as error:
            return self._error(400, str(error), body)
        page = found[start:start + limit]
        base = self._base_url()
        links = [{"rel": "root", "href": f"{base}/"}]
        if start + limit < len(found):
            next_token = f"next:{start + limit}"
            if body is not None:
                links.append({"rel": "next", "href": f"{base}/search", "method": "POST", "type": "application/geo+json",
                              "body": {**body, "token": next_token}, "merge": False})
            else:
                query = dict(params, token=next_token)
                links.append({"rel": "next", "href": f"{base}/search?{urllib.parse.urlencode(query)}", "method": "GET",
                              "type": "application/geo+json"})
        document = {
            "type": "FeatureCollection", "features": [self._absolute(item) for item in page], "links": links,
            "numberMatched": len(found), "numberReturned": len(page),
            "context": {"matched": len(found), "returned": len(page), "limit": limit},
        }
        self._send_json(document, body=body)

    # ------------------------------------------------------------ assets

    def _asset(self, path: str):
        target = (self.catalogue.folder / path.lstrip("/")).resolve()
        if self.catalogue.folder not in target.parents or not target.is_file():
            return self._error(404, f"no file {path}", kind="asset")
        options = self.options
        if options.fail_asset_pattern and re.search(options.fail_asset_pattern, path):
            return self._error(options.fail_status, "asset failure injected for testing", kind="asset")
        if options.fail_rate and self.random_source.random() < options.fail_rate:
            return self._error(options.fail_status, "random asset failure injected for testing", kind="asset")
        size = target.stat().st_size
        header = self.headers.get("Range")
        ranges = _parse_ranges(header, size) if header else None
        if header and not ranges:
            self._record(416, 0, kind="asset")
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        with open(target, "rb") as handle:
            if not ranges:
                self._record(200, 0 if self.command == "HEAD" else size, kind="asset")
                self.send_response(200)
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(handle.read())
                return None
            if len(ranges) == 1:
                first, last = ranges[0]
                handle.seek(first)
                data = handle.read(last - first + 1)
                self._record(206, len(data), kind="asset")
                self.send_response(206)
                self.send_header("Content-Type", "image/tiff")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return None
            boundary = "SAMPLESTACBOUNDARY"
            parts = []
            for first, last in ranges:
                handle.seek(first)
                parts.append(
                    f"--{boundary}\r\nContent-Type: image/tiff\r\nContent-Range: bytes {first}-{last}/{size}\r\n\r\n".encode("ascii")
                    + handle.read(last - first + 1) + b"\r\n"
                )
            data = b"".join(parts) + f"--{boundary}--\r\n".encode("ascii")
            self._record(206, len(data), kind="asset")
            self.send_response(206)
            self.send_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)


def _is_api(path: str) -> bool:
    """The API's documents (landing page, conformance, collections, items, search), not an asset file."""
    return path in ("/", "/conformance", "/collections", "/search") or path.startswith("/collections/")


def _parse_ranges(header: str, size: int):
    if not header.startswith("bytes="):
        return None
    ranges = []
    for part in header[len("bytes="):].split(","):
        part = part.strip()
        first, _, last = part.partition("-")
        try:
            if first == "":
                length = int(last)
                first_byte, last_byte = max(size - length, 0), size - 1
            else:
                first_byte = int(first)
                last_byte = min(int(last), size - 1) if last else size - 1
        except ValueError:
            return None
        if first_byte >= size or last_byte < first_byte:
            continue
        ranges.append((first_byte, last_byte))
    return ranges or None


def serve(folder, host: str = "127.0.0.1", port: int = 0, log: Optional[str] = None, ready=None, **faults) -> None:
    """Serve ``folder`` until interrupted. ``ready(port)`` is called once listening."""
    options = argparse.Namespace(
        log=log, fail_asset_pattern=faults.get("fail_asset_pattern"), fail_status=faults.get("fail_status", 503),
        fail_rate=faults.get("fail_rate", 0.0), fail_search=faults.get("fail_search", 0), stall=faults.get("stall", 0.0),
        stall_pattern=faults.get("stall_pattern") or ".", stall_after=faults.get("stall_after", 0),
        require_authorization=faults.get("require_authorization"),
    )
    handler = type("SampleStacHandler", (Handler,), {
        "catalogue": Catalogue(Path(folder), ignore_query=bool(faults.get("ignore_query"))), "options": options, "counters": {"search": 0, "stall": 0},
        # B311: the seed chooses which requests the fault options fail, not security
        "random_source": random.Random(faults.get("seed", 0)),  # nosec B311
        "log_lock": threading.Lock(),
    })
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    if ready is not None:
        ready(server.server_address[1])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Serve a static STAC catalogue folder as a STAC API with item search.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--fail-asset-pattern", help="answer asset paths matching this regular expression with --fail-status")
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of asset requests that fail (0-1)")
    parser.add_argument("--fail-search", type=int, default=0, help="fail the first N search requests")
    parser.add_argument("--stall", type=float, default=0.0, help="seconds to wait before answering (see --stall-pattern)")
    parser.add_argument("--stall-pattern", default=".", help="regular expression of the paths to stall")
    parser.add_argument("--stall-after", type=int, default=0, help="answer the first N matching requests at once, then stall")
    parser.add_argument("--ignore-query", action="store_true", help="ignore the query parameter, as servers without the query extension do")
    parser.add_argument("--require-authorization", help="answer API requests whose Authorization header is not this with 401")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    faults = {k: getattr(args, k) for k in ("fail_asset_pattern", "fail_status", "fail_rate", "fail_search", "stall", "stall_pattern", "stall_after", "ignore_query", "seed",
                                       "require_authorization")}

    def ready(port):
        print(f"serving {args.folder} as a STAC API at http://{args.host}:{port}/", flush=True)

    try:
        serve(args.folder, args.host, args.port, args.log, ready=ready, **faults)
    except KeyboardInterrupt:
        pass
    return 0


# --------------------------------------------------------------------------- in a subprocess


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _python() -> str:
    """A Python interpreter: ours, unless we run inside an application (QGIS's sys.executable is qgis)."""
    name = Path(sys.executable).name.lower()
    if name.startswith("python"):
        return sys.executable
    import shutil

    return shutil.which("python3") or shutil.which("python") or sys.executable


class SampleStacServer:
    """The server in its own process on a free loopback port, as a context manager.

        with SampleStacServer(folder, log=tmp / "requests.jsonl") as server:
            source = default_stac_source(url=server.url, ...)
            ...
            server.requests(kind="api")      # what clients asked for
    """

    def __init__(self, folder, host: str = "127.0.0.1", port: Optional[int] = None, log=None, python: Optional[str] = None, **faults):
        self.folder = Path(folder)
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log) if log else None
        self.python = python or _python()
        self.faults = faults
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> List[str]:
        command = [self.python, str(Path(__file__).resolve()), str(self.folder), "--host", self.host, "--port", str(self.port)]
        if self.log_path:
            command += ["--log", str(self.log_path)]
        for key, value in self.faults.items():
            if value is True:
                command.append(f"--{key.replace('_', '-')}")
            elif value is not None and value is not False:
                command += [f"--{key.replace('_', '-')}", str(value)]
        return command

    def start(self, timeout_s: float = 20.0) -> "SampleStacServer":
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # this module's own file, run by this Python, with the folder and port as arguments
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # nosec B603
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode("utf-8", "replace")
                raise RuntimeError(f"the sample STAC server exited with {self.process.returncode}: {error.strip()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the sample STAC server did not start on {self.url} within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def requests(self, kind: Optional[str] = None, path: Optional[str] = None) -> List[Dict]:
        """Logged requests (needs ``log=``), optionally of one kind ("api", "asset") or path."""
        if not self.log_path or not self.log_path.exists():
            return []
        entries = [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [e for e in entries if (kind is None or e["kind"] == kind) and (path is None or e["path"] == path)]

    def __enter__(self) -> "SampleStacServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    raise SystemExit(main())
