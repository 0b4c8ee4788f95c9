"""Read a GGUF header from a URL without downloading the model: HTTP range requests, bounded.

A GGUF header (metadata, tokenizer, tensor table) is a few MB at the front of a file of many
GB. It is fetched in growing chunks as the bounded reader (engine.modelfile.read_header) asks
for bytes, and never past ``MAX_HEADER_BYTES``; tensor data is never requested. Requests go
through huggingface_hub's configured HTTP session, so its endpoint, token, proxies and user
agent apply (the same session downloads use); for a hub URL the token is sent.
"""

from __future__ import annotations

import io
import re
from typing import Any
from urllib.parse import urlsplit

from r1desk.engine.errors import CorruptModel, DownloadError, Offline
from r1desk.engine.gguf.header import GGUFInfo, read_header

MAX_HEADER_BYTES = 64 * 1024 * 1024  # above any real header (a 256k vocabulary is ~12 MB)
FIRST_CHUNK = 256 * 1024
MAX_CHUNK = 8 * 1024 * 1024
TIMEOUT_SECONDS = 30.0
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class RangeReader(io.RawIOBase):
    """A read-only, forward-seekable file over HTTP range requests, with a byte budget."""

    def __init__(self, url: str, *, session: Any = None, headers: dict[str, str] | None = None,
                 budget: int = MAX_HEADER_BYTES, timeout: float = TIMEOUT_SECONDS):
        super().__init__()
        self.url = url
        self.session = session if session is not None else _session()
        self.headers = dict(headers or {})
        self.budget = budget
        self.timeout = timeout
        self.pos = 0
        self.fetched = 0  # bytes received, for tests and the budget
        self.requests = 0
        self._buf = b""
        self._buf_start = 0
        self._chunk = FIRST_CHUNK
        self.size = self._first()

    # io plumbing ---------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self.pos + offset, io.SEEK_END: self.size + offset}[whence]
        if target < 0:
            raise OSError("negative seek")
        self.pos = target
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, max(self.size - self.pos, 0))
        out = bytearray()
        while len(out) < n:
            end_buf = self._buf_start + len(self._buf)
            if self._buf_start <= self.pos < end_buf:
                take = min(n - len(out), end_buf - self.pos)
                i = self.pos - self._buf_start
                out += self._buf[i:i + take]
                self.pos += take
                continue
            self._fill(self.pos)
        return bytes(out)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    # HTTP ----------------------------------------------------------------------------------
    def _get(self, start: int, end: int) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one range; never reads more than the range's length,
        so a server that ignores Range cannot make this download the whole model."""
        headers = dict(self.headers)
        headers["Range"] = f"bytes={start}-{end}"
        self.requests += 1
        limit = end - start + 1
        try:
            with self.session.stream("GET", self.url, headers=headers, timeout=self.timeout,
                                     follow_redirects=True) as resp:
                body = bytearray()
                if resp.status_code in (200, 206):
                    for chunk in resp.iter_bytes():
                        body += chunk
                        if len(body) >= limit:
                            break
                return resp.status_code, dict(resp.headers), bytes(body[:limit])
        except Exception as exc:  # connection refused, DNS, TLS, timeout
            raise Offline(f"{_host(self.url)} could not be reached ({type(exc).__name__}: {exc})") from None

    def _first(self) -> int:
        status, headers, data = self._get(0, self._chunk - 1)
        if status == 206:
            m = _CONTENT_RANGE.match(_header(headers, "Content-Range"))
            if not m or m.group(3) == "*":
                raise DownloadError(f"{self.url}: the server's answer has no usable Content-Range")
            self._take(0, data)
            return int(m.group(3))
        if status == 200:
            # No range support: reading the header would mean downloading the whole model.
            raise DownloadError(f"{self.url}: the server does not support range requests, "
                                "so the header cannot be read without downloading the whole file")
        if status == 416:
            raise CorruptModel(f"{self.url}: empty file")
        raise DownloadError(f"{self.url}: HTTP {status}")

    def _fill(self, start: int) -> None:
        if start >= self.size:
            raise CorruptModel(f"{self.url}: read past the end of the file")
        if self.fetched >= self.budget:
            raise CorruptModel(f"{self.url}: the GGUF header is larger than {self.budget // (1024 * 1024)} MiB; "
                               "refusing to read further")
        self._chunk = min(self._chunk * 2, MAX_CHUNK)
        end = min(start + self._chunk, self.size, start + (self.budget - self.fetched)) - 1
        status, headers, data = self._get(start, end)
        if status != 206:
            raise DownloadError(f"{self.url}: HTTP {status} for bytes {start}-{end}")
        m = _CONTENT_RANGE.match(_header(headers, "Content-Range"))
        if not m or int(m.group(1)) != start:
            raise DownloadError(f"{self.url}: the server answered a different range than asked")
        self._take(start, data)

    def _take(self, start: int, data: bytes) -> None:
        if not data:
            raise DownloadError(f"{self.url}: empty answer for bytes from {start}")
        self.fetched += len(data)
        self._buf, self._buf_start = data, start


def read_remote_header(url: str, *, session: Any = None, budget: int = MAX_HEADER_BYTES,
                       keep: tuple[str, ...] = ()) -> GGUFInfo:
    """The GGUF header of the file at ``url``, fetching only the header's bytes."""
    headers = _hub_headers(url)
    reader = RangeReader(url, session=session, headers=headers, budget=budget)
    try:
        info = read_header(reader, size=reader.size, label=url, allow_truncated_data=True, keep=keep)
    finally:
        reader.close()
    info.warnings = [w for w in info.warnings if "past the end" not in w]
    info.warnings.append(f"read remotely: {reader.fetched:,} bytes in {reader.requests} requests")
    return info


def is_url(text: str) -> bool:
    return str(text).startswith(("http://", "https://"))


def _session():
    from huggingface_hub.utils import get_session

    return get_session()


def _hub_headers(url: str) -> dict[str, str]:
    """The hub's headers (token, user agent) when the URL points at the configured hub endpoint."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import build_hf_headers
    except ImportError:
        return {}
    if _host(url) == _host(constants.ENDPOINT):
        return build_hf_headers()
    return build_hf_headers(token=False)


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()
