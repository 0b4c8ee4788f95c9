"""A loopback stand-in for the Hugging Face hub, since the real one cannot be reached from tests.

It speaks the part of the hub protocol huggingface_hub 2.x uses to download files, serving real
bytes (GGUF files on disk or in memory):

- ``GET /api/models/{repo}[/revision/{rev}]``: model info with ``sha`` and ``siblings[]`` carrying
  ``size``, ``blobId`` and ``lfs.sha256/size/pointerSize``;
- ``GET /api/models/{repo}/tree/{rev}[/{path}]``: the file tree (``recursive`` honoured);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{file}``: for LFS files a 302 to a second loopback origin
  (the "CDN", as the real hub redirects to cdn-lfs) carrying ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; small files are answered directly;
- ``Range: bytes=N-[M]`` -> ``206`` with ``Content-Range`` (``416`` past the end), ``Accept-Ranges``.

It never advertises Xet storage (no ``X-Xet-*`` headers, no ``xetHash``), so the client uses plain
HTTP. Errors carry the hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``, ``GatedRepo``) so huggingface_hub raises its usual exceptions.

Faults, per file: cut the connection after a fraction of the file, serve wrong bytes of the right
size, throttle, or answer with an HTTP status (and headers, such as the hub's ``RateLimit``).
Every request is logged with the body bytes sent, so tests can measure how much was fetched
again after a resume.

Usage::

    with FakeHub() as hub:
        hub.add_repo("org/model-GGUF", {"model-Q4_K_M.gguf": path})
        hub.fault("org/model-GGUF", "model-Q4_K_M.gguf", cut_at=0.3)
        ... download with endpoint=hub.endpoint ...
        assert hub.bytes_served("model-Q4_K_M.gguf") < 1.1 * size
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

CHUNK = 64 * 1024
LFS_POINTER_SIZE = 134


class HubFile:
    """One file of a repo: bytes in memory or a file on disk, with the hashes the hub reports."""

    def __init__(self, name: str, source: bytes | str | Path, *, lfs: bool | None = None):
        self.name = name
        if isinstance(source, (bytes, bytearray)):
            self._data: bytes | None = bytes(source)
            self._path: Path | None = None
            self.size = len(self._data)
        else:
            self._data = None
            self._path = Path(source)
            self.size = self._path.stat().st_size
        self.lfs = lfs if lfs is not None else (name.endswith(".gguf") or self.size > 10_000_000)
        sha256, sha1 = hashlib.sha256(), hashlib.sha1(f"blob {self.size}\0".encode())
        for chunk in self.chunks(0, self.size):
            sha256.update(chunk)
            sha1.update(chunk)
        self.sha256 = sha256.hexdigest()
        self.git_sha1 = sha1.hexdigest()
        if self.lfs:
            pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
                       f"size {self.size}\n").encode()
            self.oid = hashlib.sha1(f"blob {len(pointer)}\0".encode() + pointer).hexdigest()
        else:
            self.oid = self.git_sha1

    @property
    def etag(self) -> str:
        """What the hub puts in X-Linked-Etag (LFS) or ETag (plain git file)."""
        return self.sha256 if self.lfs else self.git_sha1

    def chunks(self, start: int, end: int, size: int = CHUNK) -> Iterator[bytes]:
        """The bytes ``[start, end)`` in pieces."""
        if self._data is not None:
            for pos in range(start, end, size):
                yield self._data[pos:min(end, pos + size)]
            return
        assert self._path is not None
        with open(self._path, "rb") as fh:
            fh.seek(start)
            pos = start
            while pos < end:
                piece = fh.read(min(size, end - pos))
                if not piece:
                    return
                pos += len(piece)
                yield piece


@dataclass
class Fault:
    """Misbehaviour for one file. ``times`` counts the responses it still applies to (None: all)."""

    cut_at: float | None = None  # cut the connection once the file's byte at this fraction is reached
    corrupt: bool = False  # serve wrong bytes of the right size
    throttle: float | None = None  # bytes per second
    status: int | None = None  # answer resolve requests for the file with this HTTP status
    headers: dict[str, str] = field(default_factory=dict)  # sent with that status (RateLimit, Retry-After)
    times: int | None = 1


@dataclass
class Repo:
    repo_id: str
    commit: str
    files: dict[str, HubFile] = field(default_factory=dict)
    token: str | None = None  # when set, the repo is gated: requests need "Authorization: Bearer <token>"


@dataclass
class Logged:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    file: str | None
    range: str | None
    authorization: bool
    status: int = 0
    body_bytes: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    hub: "FakeHub"
    role: str

    def log_message(self, format: str, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    # -- plumbing ------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        entry = Logged(self.role, method, url.path, None, self.headers.get("Range"),
                       "authorization" in {k.lower() for k in self.headers.keys()})
        self.hub._log(entry)
        try:
            if self.role == "cdn":
                self._cdn(method, url.path, parse_qs(url.query), entry)
            else:
                self._hub(method, url.path, parse_qs(url.query), entry)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"", entry: Logged | None = None,
              method: str = "GET") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if entry is not None:
            entry.status = status
        if method != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, entry: Logged, method: str,
               extra: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        headers.update(extra or {})
        self._send(status, headers, body, entry, method)

    def _json(self, payload, entry: Logged, method: str, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(200, {"Content-Type": "application/json", **(extra or {})}, body, entry, method)

    # -- the hub's own origin ------------------------------------------------------------
    def _hub(self, method: str, path: str, query: dict, entry: Logged) -> None:
        hub = self.hub
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            m = re.fullmatch(r"(?P<repo>[^/]+(?:/[^/]+)?)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?P<sub>/.*)?)?", rest)
            if not m:
                return self._error(404, "RepoNotFound", "Repository not found", entry, method)
            repo = hub.repos.get(m["repo"])
            if repo is None or not self._authorised(repo):
                return self._not_authorised(repo, entry, method)
            rev = unquote(m["rev"]) if m["rev"] else "main"
            if rev not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", entry, method)
            if m["kind"] == "tree":
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                return self._json(hub._tree(repo, unquote(m["sub"] or "").strip("/"), recursive), entry, method)
            return self._json(hub._model_info(repo), entry, method)

        m = re.fullmatch(r"/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path)
        if not m:
            return self._error(404, "RepoNotFound", "Not found", entry, method)
        repo = hub.repos.get(m["repo"])
        if repo is None or not self._authorised(repo):
            return self._not_authorised(repo, entry, method)
        rev = unquote(m["rev"])
        if rev not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", entry, method)
        name = unquote(m["file"])
        entry.file = name
        f = repo.files.get(name)
        commit = {"X-Repo-Commit": repo.commit}
        if f is None:
            return self._error(404, "EntryNotFound", f"{name} does not exist", entry, method, commit)
        fault = hub._take_fault(repo.repo_id, name, lambda flt: flt.status is not None)
        if fault is not None:
            return self._send(fault.status or 500, {"Content-Type": "text/plain", **fault.headers}, b"fault", entry,
                              method)
        if f.lfs and hub.cdn_redirect:
            # The repo rides along, as in a signed CDN address: several repos may hold the same bytes.
            location = (f"{hub.cdn_endpoint}/cdn/{f.sha256}?X-Amz-Signature=fake&repo={m['repo']}"
                        f"&name={m['file']}")
            return self._send(302, {
                "Location": location, **commit, "ETag": f'"{f.oid}"', "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(f.size), "Accept-Ranges": "bytes",
            }, b"", entry, method)
        extra = {**commit, "ETag": f'"{f.etag}"'}
        if f.lfs:
            extra.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(f.size)})
        self._body(method, repo.repo_id, f, extra, entry)

    def _authorised(self, repo: Repo) -> bool:
        return repo.token is None or self.headers.get("Authorization") == f"Bearer {repo.token}"

    def _not_authorised(self, repo: Repo | None, entry: Logged, method: str) -> None:
        if repo is None:
            return self._error(401, "RepoNotFound", "Repository not found", entry, method)
        return self._error(401, "GatedRepo", "Access to this model is restricted", entry, method)

    # -- the CDN origin ------------------------------------------------------------------
    def _cdn(self, method: str, path: str, query: dict, entry: Logged) -> None:
        m = re.fullmatch(r"/cdn/(?P<sha>[0-9a-f]{64})", path)
        found = self.hub._by_sha(m["sha"], query.get("repo", [None])[0]) if m else None
        if found is None:
            return self._send(404, {"Content-Type": "text/plain"}, b"no such object", entry, method)
        repo_id, f = found
        entry.file = f.name
        self._body(method, repo_id, f, {"ETag": f'"{f.sha256}"'}, entry)

    # -- file bodies with ranges and faults ----------------------------------------------
    def _body(self, method: str, repo_id: str, f: HubFile, extra: dict[str, str], entry: Logged) -> None:
        start, end = 0, f.size
        status = 200
        wanted = self.headers.get("Range")
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", **extra}
        if wanted:
            m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", wanted)
            if m and m.group(1):
                start = int(m.group(1))
                end = min(f.size, int(m.group(2)) + 1) if m.group(2) else f.size
            elif m and m.group(2):  # suffix range: the last N bytes
                start = max(0, f.size - int(m.group(2)))
            if start >= f.size:
                return self._send(416, {"Content-Range": f"bytes */{f.size}", **extra}, b"", entry, method)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
        headers["Content-Length"] = str(end - start)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        entry.status = status
        if method == "HEAD":
            return
        hub = self.hub
        cut = hub._take_fault(repo_id, f.name, lambda flt: flt.cut_at is not None and
                              start < int(flt.cut_at * f.size))
        corrupt = hub._take_fault(repo_id, f.name, lambda flt: flt.corrupt)
        throttle = hub._take_fault(repo_id, f.name, lambda flt: flt.throttle is not None)
        stop_at = int(cut.cut_at * f.size) if cut is not None and cut.cut_at is not None else end
        rate = throttle.throttle if throttle is not None else None
        piece = CHUNK if rate is None else max(1024, min(CHUNK, int(rate / 20)))
        bad_from, bad_to = f.size // 2, f.size // 2 + 64
        began = time.monotonic()
        pos = start
        for chunk in f.chunks(start, min(end, stop_at), piece):
            if corrupt is not None and pos < bad_to and pos + len(chunk) > bad_from:
                buf = bytearray(chunk)
                for i in range(max(bad_from, pos), min(bad_to, pos + len(chunk))):
                    buf[i - pos] ^= 0xFF
                chunk = bytes(buf)
            try:
                self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True
                return
            pos += len(chunk)
            hub._count(entry, len(chunk))
            if rate:
                ahead = (pos - start) / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
            if hub._stopping.is_set():
                break
        if pos < end:  # cut: the client sees the connection close before the promised length
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True


class FakeHub:
    """Two loopback origins (the hub and its CDN) serving repos registered with ``add_repo``."""

    def __init__(self, *, cdn_redirect: bool = True):
        self.cdn_redirect = cdn_redirect
        self.repos: dict[str, Repo] = {}
        self.log: list[Logged] = []
        self._faults: dict[tuple[str, str], list[Fault]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.endpoint = ""
        self.cdn_endpoint = ""

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> "FakeHub":
        for role in ("hub", "cdn"):
            handler = type(f"_{role.title()}Handler", (_Handler,), {"hub": self, "role": role})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"fake-{role}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.endpoint = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_endpoint = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- content -------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: dict[str, bytes | str | Path] | None = None, *,
                 commit: str | None = None, token: str | None = None) -> Repo:
        commit = commit or hashlib.sha1(f"{repo_id}-{time.time_ns()}".encode()).hexdigest()
        repo = Repo(repo_id, commit, token=token)
        self.repos[repo_id] = repo
        for name, source in (files or {}).items():
            self.add_file(repo_id, name, source)
        return repo

    def add_file(self, repo_id: str, name: str, source: bytes | str | Path, *, lfs: bool | None = None) -> HubFile:
        f = HubFile(name, source, lfs=lfs)
        self.repos[repo_id].files[name] = f
        return f

    def file(self, repo_id: str, name: str) -> HubFile:
        return self.repos[repo_id].files[name]

    def new_commit(self, repo_id: str) -> str:
        """Move ``main`` to a new commit (same files), as a push to the repo would."""
        repo = self.repos[repo_id]
        repo.commit = hashlib.sha1(f"{repo.commit}-next".encode()).hexdigest()
        return repo.commit

    # -- faults --------------------------------------------------------------------------
    def fault(self, repo_id: str, name: str, **kwargs) -> Fault:
        flt = Fault(**kwargs)
        with self._lock:
            self._faults.setdefault((repo_id, name), []).append(flt)
        return flt

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, repo_id: str, name: str, matches) -> Fault | None:
        with self._lock:
            for flt in self._faults.get((repo_id, name), []):
                if matches(flt) and (flt.times is None or flt.times > 0):
                    if flt.times is not None:
                        flt.times -= 1
                    return flt
        return None

    def _peek_fault(self, repo_id: str, name: str, matches) -> Fault | None:
        with self._lock:
            for flt in self._faults.get((repo_id, name), []):
                if matches(flt) and (flt.times is None or flt.times > 0):
                    return flt
        return None

    # -- measurements --------------------------------------------------------------------
    def _log(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def _count(self, entry: Logged, n: int) -> None:
        with self._lock:
            entry.body_bytes += n

    def bytes_served(self, name: str | None = None) -> int:
        """Body bytes of files sent so far (of one file when ``name`` is given)."""
        with self._lock:
            return sum(e.body_bytes for e in self.log if e.file is not None and (name is None or e.file == name))

    def requests(self, *, server: str | None = None, method: str | None = None,
                 file: str | None = None) -> list[Logged]:
        with self._lock:
            return [e for e in self.log if (server is None or e.server == server)
                    and (method is None or e.method == method) and (file is None or e.file == file)]

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    # -- JSON payloads -------------------------------------------------------------------
    def _by_sha(self, sha: str, repo_id: str | None = None) -> tuple[str, HubFile] | None:
        """The file with these bytes, in the named repo when it has them (faults are per repo)."""
        repos = sorted(self.repos.values(), key=lambda r: r.repo_id != repo_id)
        for repo in repos:
            for f in repo.files.values():
                if f.sha256 == sha:
                    return repo.repo_id, f
        return None

    @staticmethod
    def _sibling(f: HubFile) -> dict:
        out = {"rfilename": f.name, "size": f.size, "blobId": f.oid}
        if f.lfs:
            out["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": LFS_POINTER_SIZE}
        return out

    def _model_info(self, repo: Repo) -> dict:
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.commit,
            "lastModified": "2025-01-20T00:00:00.000Z",
            "createdAt": "2025-01-20T00:00:00.000Z",
            "private": False,
            "gated": "manual" if repo.token else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "library_name": "gguf",
            "tags": ["gguf"],
            "siblings": [self._sibling(f) for f in repo.files.values()],
            "usedStorage": sum(f.size for f in repo.files.values()),
        }

    def _tree(self, repo: Repo, sub: str, recursive: bool) -> list[dict]:
        prefix = f"{sub}/" if sub else ""
        out: list[dict] = []
        folders: set[str] = set()
        for f in repo.files.values():
            if not f.name.startswith(prefix):
                continue
            rest = f.name[len(prefix):]
            if not recursive and "/" in rest:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    folders.add(prefix + "/".join(parts[:i]))
            entry = {"type": "file", "oid": f.oid, "size": f.size, "path": f.name}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": LFS_POINTER_SIZE}
            out.append(entry)
        out.extend({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                   for d in sorted(folders))
        return out


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running FakeHub, with the HF cache and token isolated in the test's temp folder."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    with FakeHub() as hub:
        yield hub
