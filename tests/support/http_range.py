"""A minimal loopback static HTTP server with Range support, for reading remote GGUF headers.

Serves files from a mapping of URL path -> local file, answers ``Range: bytes=a-b`` with 206
and ``Content-Range``, and logs every request with the bytes it sent, so a test can check that
only a header's bytes were fetched. ``ranges=False`` makes it ignore Range (a plain server).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeServer:
    def __init__(self, files: dict[str, str | Path], *, ranges: bool = True):
        self.files = {("/" + k.lstrip("/")): Path(v) for k, v in files.items()}
        self.ranges = ranges
        self.log: list[tuple[str, str | None, int]] = []  # (path, Range header, body bytes sent)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                local = server.files.get(path)
                rng = self.headers.get("Range")
                if local is None or not local.exists():
                    self._reply(404, b"not found", {})
                    server.log.append((path, rng, 0))
                    return
                size = local.stat().st_size
                start, end, status = 0, size - 1, 200
                headers = {"Accept-Ranges": "bytes"} if server.ranges else {}
                if rng and server.ranges:
                    m = _RANGE.match(rng.strip())
                    if not m or int(m.group(1)) >= size:
                        self._reply(416, b"", {"Content-Range": f"bytes */{size}"})
                        server.log.append((path, rng, 0))
                        return
                    start = int(m.group(1))
                    end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                length = end - start + 1
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                sent = 0
                if not head:
                    with open(local, "rb") as fh:
                        fh.seek(start)
                        while sent < length:
                            chunk = fh.read(min(1 << 16, length - sent))
                            if not chunk:
                                break
                            try:
                                self.wfile.write(chunk)
                            except (BrokenPipeError, ConnectionResetError):
                                break
                            sent += len(chunk)
                server.log.append((path, rng, sent))

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def bytes_sent(self) -> int:
        return sum(n for _, _, n in self.log)

    def __enter__(self) -> "RangeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
