"""Model downloads from the Hugging Face hub or a mirror: resumable after a crash, hash-checked, one writer per file.

huggingface_hub supplies the protocol (file URLs, file metadata, its HTTP session with the
endpoint, token, proxies and user agent) and the cache layout other tools share. It resumes only
within one call, names each partial file uniquely (so a crash leaves litter and the next call
starts from zero) and checks sizes, not hashes. r1desk adds, on top of those pieces:

- one partial file per (repo, file, etag) with a stable name, resumed with a Range request by the
  next run, whether the last one was cancelled, crashed, was killed or lost the network;
- the sha256 of every file checked against the hub's LFS hash before it is moved into place; a
  mismatch deletes the file and nothing is registered;
- free space checked before starting; partial files other runs left behind adopted or swept;
- one writer per file across threads and processes (the same lock file huggingface_hub uses),
  the others wait and then find the file done.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import os
import re
import shutil
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterator
from urllib.parse import urlsplit

import sqlite_utils

from r1desk.engine import paths
from r1desk.engine.db.database import get_setting, open_db, set_setting
from r1desk.engine.errors import (
    Cancelled,
    CorruptModel,
    DiskFull,
    DownloadError,
    ModelNotFound,
    Offline,
)
from r1desk.engine.events import Progress
from r1desk.engine.gguf import quants, splits
from r1desk.engine.models import catalog as _catalog
from r1desk.engine.models import library as _library
from r1desk.engine.units import human_bytes

SETTING_ENDPOINT = "hub.endpoint"
SETTING_TOKEN = "hub.token"
SETTING_FOLDER = "download.folder"
DEFAULT_ENDPOINT = "https://huggingface.co"
MIRROR_HINT = "behind a blocked hub, use a mirror: --endpoint https://hf-mirror.com, or HF_ENDPOINT"
DEFAULT_QUANT = "Q4_K_M"

# Formats that run code when loaded (pickle) are never fetched.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill")
RESUMABLE_DAYS = 14  # a partial file untouched this long is swept instead of resumed
PROGRESS_INTERVAL = 0.1  # seconds between progress events
READ_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------
# Settings: endpoint, token, folder.


@contextmanager
def _database(db: sqlite_utils.Database | None) -> Iterator[sqlite_utils.Database]:
    if db is not None:
        yield db
        return
    own = open_db()
    try:
        yield own
    finally:
        own.conn.close()


def _check_endpoint(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(f"hub endpoint {url!r} is not an http(s) address (example: https://hf-mirror.com)")
    return url


def hub_endpoint(override: str | None = None, *, db: sqlite_utils.Database | None = None) -> str:
    """The hub (or mirror) to use: the argument, else the setting, else ``HF_ENDPOINT``, else huggingface.co."""
    if override:
        return _check_endpoint(override)
    with _database(db) as conn:
        value = get_setting(conn, SETTING_ENDPOINT)
    return _check_endpoint(value or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)


def set_hub_endpoint(url: str | None, *, db: sqlite_utils.Database | None = None) -> None:
    with _database(db) as conn:
        set_setting(conn, SETTING_ENDPOINT, _check_endpoint(url) if url else None)


def hub_token(override: str | bool | None = None, *, endpoint: str | None = None,
              db: sqlite_utils.Database | None = None) -> str | bool | None:
    """The token for gated repos: the argument, else r1desk's setting.

    Without either, None lets huggingface_hub use HF_TOKEN or a saved ``hf auth login`` -- but
    only for huggingface.co itself: a mirror gets False (no token), so a login made for the
    hub is not handed to whoever runs the mirror.
    """
    if isinstance(override, str) and override:
        return override
    with _database(db) as conn:
        saved = get_setting(conn, SETTING_TOKEN)
    if saved:
        return saved
    if endpoint is not None and not _same_origin(_check_endpoint(endpoint), DEFAULT_ENDPOINT):
        return False
    return None


def set_hub_token(token: str | None, *, db: sqlite_utils.Database | None = None) -> None:
    with _database(db) as conn:
        set_setting(conn, SETTING_TOKEN, token.strip() if token else None)


def download_folder(*, db: sqlite_utils.Database | None = None) -> Path | None:
    """The folder chosen for downloads; None means the shared Hugging Face cache."""
    with _database(db) as conn:
        value = get_setting(conn, SETTING_FOLDER)
    return Path(value).expanduser() if value else None


def set_download_folder(folder: str | os.PathLike | None, *, db: sqlite_utils.Database | None = None) -> None:
    with _database(db) as conn:
        set_setting(conn, SETTING_FOLDER, str(Path(folder).expanduser().absolute()) if folder else None)


# ---------------------------------------------------------------------------------------
# Names: repos, revisions, files.


def check_filename(name: str, *, gguf_only: bool = False) -> str:
    """Refuse a repo file name that would land outside the target folder, or a pickle format."""
    bad = (
        not name or "\x00" in name or "\\" in name or name.startswith("/")
        or ".." in name.replace("\\", "/").split("/")
        or any(p.drive or p.root for p in (PurePosixPath(name), PureWindowsPath(name)))
        or any(PureWindowsPath(part).drive for part in name.split("/"))
        or any(part in ("", ".") for part in name.split("/"))
    )
    if bad:
        raise DownloadError(f"refusing file name {name!r}: it would be written outside the download folder")
    lower = name.lower()
    if lower.endswith(PICKLE_SUFFIXES):
        raise DownloadError(
            f"refusing {name}: pickle files ({', '.join(PICKLE_SUFFIXES)}) can run code when loaded; "
            "r1desk downloads GGUF models"
        )
    if gguf_only and not lower.endswith(".gguf"):
        raise DownloadError(f"{name} is not a GGUF file; r1desk chats with GGUF models only")
    return name


def check_repo_id(repo: str) -> str:
    repo = repo.strip().strip("/")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?", repo) or ".." in repo \
            or len(repo) > 96:
        raise DownloadError(f"{repo!r} is not a model repo name (expected owner/name, e.g. "
                            "unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF)")
    return repo


def check_revision(revision: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}", revision) or ".." in revision.split("/"):
        raise DownloadError(f"{revision!r} is not a branch, tag or commit name")
    return revision


def parse_spec(spec: str, *, catalog: Any = None) -> tuple[str, str | None]:
    """What to pull -> (repo, quant).

    ``owner/name[:QUANT]`` (also a hub URL, or Ollama's ``hf.co/owner/name:QUANT``), or the id of a
    model in r1desk's catalog (``deepseek-r1-distill-qwen-7b[:QUANT]``, as ``r1desk catalog``
    lists them), which stands for its hub repo. A name without an owner is only ever looked up
    in the catalog, never on the hub (see ``catalog_model``).
    """
    text = spec.strip()
    text = re.sub(r"^(https?://)?(www\.)?(huggingface\.co|hf\.co|hf-mirror\.com)/", "", text)
    text = re.sub(r"/(tree|blob|resolve)/.*$", "", text)
    quant = None
    if ":" in text:
        text, _, quant = text.rpartition(":")
        quant = quant.strip() or None
    quant = quant.upper() if quant else None
    if text.strip() and "/" not in text.strip().strip("/"):
        return catalog_model(text.strip().strip("/"), catalog).repo, quant
    return check_repo_id(text), quant


def catalog_model(model_id: str, catalog: Any = None) -> Any:
    """The catalog model with this id (any case); an unknown id is refused with the closest ones.

    Hub repos are ``owner/name``; a bare name is almost always a typo of a catalog id, and
    asking the hub about it would only come back with "not found" after a network round trip.
    """
    cat = catalog if catalog is not None else _catalog.load()
    wanted = model_id.lower()
    everything = getattr(cat, "all_models", cat.models)  # embedding models are pulled by id too
    for model in everything:
        if model.id.lower() == wanted:
            return model
    ids = [m.id for m in everything]
    closest = difflib.get_close_matches(wanted, ids, n=3, cutoff=0.6)
    if not closest:
        # A model's repo name typed without its owner ("DeepSeek-R1-Distill-Qwen-7B-GGUF").
        closest = [m.id for m in everything if wanted and wanted.removesuffix("-gguf") in m.repo.lower()][:3]
    guess = ""
    if closest:
        others = f" (or {', '.join(closest[1:])})" if len(closest) > 1 else ""
        guess = f"; did you mean {closest[0]}{others}?"
    raise ModelNotFound(
        f"{model_id!r} is not a model in r1desk's catalog{guess}",
        hint="'r1desk catalog' lists them; any other model is named by its hub repo, owner/name, "
             "e.g. unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF",
    )


# ---------------------------------------------------------------------------------------
# What a repo holds.


@dataclass
class RemoteFile:
    name: str
    size: int | None = None
    sha256: str | None = None  # the LFS hash; None for small files kept in git
    oid: str | None = None  # git blob id


@dataclass
class RepoListing:
    repo: str
    revision: str
    commit: str
    files: list[RemoteFile]
    endpoint: str

    def get(self, name: str) -> RemoteFile | None:
        return next((f for f in self.files if f.name == name), None)

    def ggufs(self) -> list[RemoteFile]:
        """GGUF model files (vision projectors left out), every part of split models included."""
        return [f for f in self.files if f.name.lower().endswith(".gguf") and "mmproj" not in f.name.lower()]

    def quants(self) -> list[str]:
        found = []
        for f in self.ggufs():
            q = quants.from_filename(f.name)
            if q and q not in found:
                found.append(q)
        return found


def list_repo(repo: str, revision: str = "main", *, endpoint: str | None = None, token: str | bool | None = None,
              db: sqlite_utils.Database | None = None) -> RepoListing:
    """The files of a model repo at a revision, with sizes and LFS sha256, pinned to one commit."""
    from huggingface_hub import HfApi

    repo = check_repo_id(repo)
    revision = check_revision(revision)
    endpoint = hub_endpoint(endpoint, db=db)
    token = hub_token(token, endpoint=endpoint, db=db)
    _refuse_offline(endpoint)
    with _hub_errors(endpoint, repo, token=token):
        info = HfApi(endpoint=endpoint, token=token).model_info(repo, revision=revision, files_metadata=True)
    if not info.sha:
        raise DownloadError(f"{endpoint} did not say which commit {repo}@{revision} is; is it a hub endpoint?")
    files = [
        RemoteFile(s.rfilename, (s.lfs.size if s.lfs else s.size), s.lfs.sha256 if s.lfs else None, s.blob_id)
        for s in (info.siblings or [])
    ]
    return RepoListing(repo, revision, info.sha, files, endpoint)


def choose_files(listing: RepoListing, *, quant: str | None = None, filename: str | None = None) -> list[RemoteFile]:
    """The file(s) of one model: the named file or the one of this quant, all parts if split."""
    if filename:
        check_filename(filename, gguf_only=True)
        chosen = listing.get(filename)
        if chosen is None:
            available = ", ".join(f.name for f in listing.ggufs()[:12]) or "no GGUF files"
            raise ModelNotFound(f"{listing.repo} has no file {filename} (it has: {available})")
        return _with_parts(listing, chosen)
    by_name = {f.name: f for f in listing.ggufs()}
    models = [by_name[parts[0]] for parts in splits.group(by_name).values() if parts[0] is not None]
    if not models:
        kinds = sorted({Path(f.name).suffix for f in listing.files if Path(f.name).suffix})
        raise DownloadError(
            f"{listing.repo} has no GGUF files (it has {', '.join(kinds) or 'nothing'}); r1desk chats with GGUF "
            "models, look for a repo whose name ends in -GGUF"
        )
    if quant is None:
        if len(models) == 1:
            return _with_parts(listing, models[0])
        quant = DEFAULT_QUANT
    matching = [f for f in models if quants.matches(quant, f.name)]
    if len(matching) > 1:
        # Asked for IQ2_XXS where Unsloth has both IQ2_XXS and UD-IQ2_XXS: the one spelt as asked.
        matching = [f for f in matching if quants.matches(quant, f.name, exact=True)] or matching
    if not matching:
        have = listing.quants()
        source = next((q for q in ("BF16", "F16", "F32") if q in have), None)
        hint = (f"download {source} and make {quant} from it: r1desk pull {listing.repo}:{source}, then "
                f"r1desk quantize NAME --to {quant}") if source else None
        raise ModelNotFound(f"{listing.repo} has no {quant} file (it has: {', '.join(have) or 'none'})", hint=hint)
    if len(matching) > 1:
        names = ", ".join(f.name for f in matching)
        raise DownloadError(f"several {quant} files in {listing.repo}: {names}; choose one with --file")
    return _with_parts(listing, matching[0])


def _with_parts(listing: RepoListing, chosen: RemoteFile) -> list[RemoteFile]:
    names = splits.part_names(chosen.name)
    if names is None:
        check_filename(chosen.name, gguf_only=True)
        return [chosen]
    count = len(names)
    parts = []
    for i, name in enumerate(names, start=1):
        part = listing.get(name)
        if part is None:
            prefix = splits.parse(chosen.name).prefix
            raise DownloadError(f"{listing.repo} lists only some parts of {prefix} (part {i} of {count} is missing)")
        check_filename(part.name, gguf_only=True)
        parts.append(part)
    return parts


# ---------------------------------------------------------------------------------------
# Turning huggingface_hub and network failures into one-line errors.


def _offline_mode() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if flag is not None:
        return flag.strip().upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.HF_HUB_OFFLINE)


def _refuse_offline(endpoint: str) -> None:
    if _offline_mode():
        raise Offline(f"offline mode is on (HF_HUB_OFFLINE), so nothing can be fetched from {endpoint}",
                      hint="unset HF_HUB_OFFLINE to download")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


_CAUSES = [  # what a network error's text says, in words, first match wins
    ("dns", ("name or service not known", "nodename nor servname", "getaddrinfo", "errno -2", "errno -3",
             "temporary failure in name resolution", "no address associated")),
    ("refused", ("connection refused", "errno 111", "errno 61")),
    ("timeout", ("timed out", "timeout")),
    ("tls", ("ssl", "certificate", "tls")),
    ("reset", ("connection reset", "broken pipe", "remote end closed", "ended early", "incomplete")),
    ("unreachable", ("network is unreachable", "no route to host", "errno 101", "errno 113")),
]
CAUSE_WORDS = {
    "dns": "its name could not be looked up",
    "refused": "it refused the connection",
    "timeout": "it did not answer in time",
    "tls": "the secure connection failed",
    "reset": "the connection was cut",
    "unreachable": "the network cannot reach it",
    "proxy": "the proxy refused the connection",
    "server": "the server is not working right now",
    "other": "the connection failed",
}


def network_cause(exc: BaseException) -> str:
    """A cause code for a network failure (see CAUSE_WORDS), from the exception and its chain."""
    import httpx2

    if isinstance(exc, httpx2.ProxyError):
        return "proxy"
    if isinstance(exc, httpx2.TimeoutException):
        return "timeout"
    seen: BaseException | None = exc
    texts = []
    while seen is not None and len(texts) < 5:
        texts.append(str(seen).lower())
        seen = seen.__cause__ or seen.__context__
    text = " ".join(texts)
    for cause, needles in _CAUSES:
        if any(n in text for n in needles):
            return cause
    return "other"


def _unreachable(endpoint: str, exc: BaseException, what: str = "") -> Offline:
    cause = network_cause(exc)
    mirror = not _same_origin(endpoint, DEFAULT_ENDPOINT)
    return Offline(f"cannot reach {endpoint}: {CAUSE_WORDS[cause]}" + (f" (while fetching {what})" if what else ""),
                   hint="check the download server's address (--endpoint, or HF_ENDPOINT)" if mirror else MIRROR_HINT,
                   facts={"endpoint": endpoint, "cause": cause, "mirror": mirror})


def _token_sent(token: str | bool | None) -> bool:
    """Whether a request carried an access token: the given one, or (None) huggingface_hub's own."""
    if isinstance(token, str):
        return bool(token)
    if token is None:
        from huggingface_hub import get_token

        return get_token() is not None
    return False


def _wait_seconds(response: Any) -> int | None:
    """How long a 429 asks to wait: the hub's RateLimit header, else Retry-After (seconds)."""
    if response is None:
        return None
    from huggingface_hub.utils import parse_ratelimit_headers

    limit = parse_ratelimit_headers(response.headers)
    if limit is not None and limit.remaining == 0:
        return limit.reset_in_seconds
    value = (response.headers.get("Retry-After") or "").strip()
    return int(value) if value.isdigit() else None


@contextmanager
def _hub_errors(endpoint: str, repo: str, filename: str | None = None, *,
                token: str | bool | None = False) -> Iterator[None]:
    import httpx2
    from huggingface_hub import errors as hf

    what = f"{repo}/{filename}" if filename else repo
    mirror = not _same_origin(endpoint, DEFAULT_ENDPOINT)
    try:
        yield
    except hf.OfflineModeIsEnabled:
        raise Offline(f"offline mode is on (HF_HUB_OFFLINE), so {what} cannot be fetched") from None
    except (httpx2.TransportError, httpx2.TimeoutException) as exc:
        raise _unreachable(endpoint, exc) from None
    except hf.GatedRepoError as exc:
        raise DownloadError(f"{repo} is gated: accept its terms on the hub's web page, then set an access token",
                            hint="r1desk settings → hub token, or HF_TOKEN",
                            facts={"code": "hub-gated", "repo": repo, "endpoint": endpoint,
                                   "status": _status(exc), "token": _token_sent(token)}) from None
    except hf.RepositoryNotFoundError as exc:
        raise ModelNotFound(f"no model repo {repo} on {endpoint} (or it is private and needs a token)",
                            facts={"code": "hub-no-repo", "repo": repo, "endpoint": endpoint,
                                   "status": _status(exc), "token": _token_sent(token)}) from None
    except hf.RevisionNotFoundError:
        raise ModelNotFound(f"{repo} has no such branch, tag or commit",
                            facts={"code": "hub-no-revision", "repo": repo, "endpoint": endpoint}) from None
    except hf.RemoteEntryNotFoundError as exc:
        raise ModelNotFound(f"{repo} has no file {filename}",
                            facts={"code": "hub-no-file", "repo": repo, "file": filename or "",
                                   "endpoint": endpoint, "status": _status(exc)}) from None
    except hf.HfHubHTTPError as exc:
        status = _status(exc)
        if status is not None and status >= 500:
            raise Offline(f"{endpoint} is not working right now (HTTP {status}) while fetching {what}",
                          hint="try again later, or " + MIRROR_HINT,
                          facts={"code": "hub-server", "endpoint": endpoint, "cause": "server", "status": status,
                                 "what": what, "mirror": mirror}) from None
        facts: dict[str, Any] = {"endpoint": endpoint, "status": status, "repo": repo, "what": what,
                                 "mirror": mirror}
        if status == 429:
            wait = _wait_seconds(exc.response)
            raise DownloadError(f"{endpoint} is limiting requests (HTTP 429) while fetching {what}"
                                + (f"; it asks to wait {wait} s" if wait is not None else ""),
                                hint="try again later", facts={**facts, "code": "hub-rate-limit", "wait": wait}) from None
        if status in (401, 403):
            raise DownloadError(f"{endpoint} refused {what} (HTTP {status}): not allowed without the right access token",
                                hint="r1desk settings → hub token, or HF_TOKEN",
                                facts={**facts, "code": "hub-denied", "token": _token_sent(token)}) from None
        if status in (404, 410):
            code = "hub-no-file" if filename else "hub-no-repo"
            raise ModelNotFound(f"{endpoint} has no {what} (HTTP {status})",
                                facts={**facts, "code": code, "file": filename or "",
                                       "token": _token_sent(token)}) from None
        raise DownloadError(f"{endpoint} refused {what} (HTTP {status or 'an error'})",
                            facts={**facts, "code": "hub-refused"}) from None
    except hf.FileMetadataError as exc:
        raise DownloadError(f"{endpoint} does not answer like a Hugging Face hub ({_reason(exc)[:120]})",
                            hint="check the endpoint setting",
                            facts={"code": "hub-not-a-hub", "endpoint": endpoint}) from None
    except hf.HFValidationError as exc:
        raise DownloadError(f"{what}: {_reason(exc)}") from None


def _status(exc: Any) -> int | None:
    response = getattr(exc, "response", None)
    return response.status_code if response is not None else None


# ---------------------------------------------------------------------------------------
# The download job.


@dataclass
class FetchedFile:
    name: str
    path: Path  # what to open: a link in the HF cache's snapshot folder, or the file in the chosen folder
    size: int
    sha256: str
    commit: str
    resumed_from: int = 0  # bytes already on disk when this run started
    fetched: int = 0  # bytes this run fetched


@dataclass
class _Target:
    remote: RemoteFile
    url: str
    location: str
    etag: str
    size: int
    sha256: str | None  # expected; None when only a git sha1 is known
    git_sha1: str | None
    final: Path
    blob: Path
    partial: Path
    lock: Path
    orphans: tuple[Path, str]  # folder, glob for partial files other runs left
    send_token: bool
    folder_mode: bool
    commit: str = ""
    storage: Path | None = None
    refreshed: bool = False


class _Rate:
    """Bytes per second over the last few seconds."""

    def __init__(self, window: float = 4.0):
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, moved: int) -> None:
        now = time.monotonic()
        self.samples.append((now, moved))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()

    def speed(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None



def _disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1))


class Download:
    """Fetch files of one repo, as a generator of Progress events; ``cancel()`` from any thread.

    Iterate it to run it; ``result`` then holds the files. Cancel raises ``Cancelled`` from the
    iteration and keeps the partial file, so the same download started again resumes it.
    """

    def __init__(
        self,
        repo: str,
        files: list[str],
        *,
        revision: str = "main",
        folder: str | os.PathLike | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        db: sqlite_utils.Database | None = None,
        retries: int = 3,
        listing: RepoListing | None = None,
    ):
        self.repo = check_repo_id(repo)
        self.names = [check_filename(f) for f in files]
        self.revision = check_revision(revision)
        self.folder = Path(folder).expanduser().absolute() if folder else None
        self._endpoint = endpoint
        self._token = token
        self._db = db
        self.retries = retries
        self.listing = listing
        self.result: list[FetchedFile] = []
        self._cancel = threading.Event()
        self._rate = _Rate()
        self._moved = 0
        self._last_event = 0.0

    # -- public --------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def path(self) -> Path:
        """The file to open (the first part of a split model)."""
        if not self.result:
            raise RuntimeError("the download has not finished")
        return self.result[0].path

    def __iter__(self) -> Iterator[Progress]:
        return self._run()

    # -- the run -------------------------------------------------------------------------
    def _run(self) -> Iterator[Progress]:
        db = self._db if self._db is not None else open_db()
        try:
            self.lib = _library.Library(db)
            self.endpoint = hub_endpoint(self._endpoint, db=db)
            self.token = hub_token(self._token, endpoint=self.endpoint, db=db)
            _refuse_offline(self.endpoint)
            if self.folder is None:
                self.folder = download_folder(db=db)
            if self.listing is None or self.listing.repo != self.repo:
                yield Progress(0, None, f"Looking up {self.repo} on {self.endpoint}")
                self.listing = list_repo(self.repo, self.revision, endpoint=self.endpoint, token=self.token, db=db)
            targets = []
            for name in self.names:
                remote = self.listing.get(name)
                if remote is None:
                    raise ModelNotFound(f"{self.repo} has no file {name}")
                self._check_cancel()
                targets.append(self._plan(remote))
            total = sum(t.size for t in targets)
            self._check_space(targets)
            done = 0
            for i, target in enumerate(targets, start=1):
                label = target.remote.name if len(targets) == 1 else f"{target.remote.name} ({i}/{len(targets)})"
                yield from self._fetch(target, label, done, total)
                done += target.size
            yield Progress(total, total, f"Downloaded and verified {self.repo}", speed=self._rate.speed(), eta=0.0)
        finally:
            if self._db is None:
                db.conn.close()

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("download cancelled; what was fetched is kept, and the same download resumes it")

    def _plan(self, remote: RemoteFile) -> _Target:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        commit = self.listing.commit
        url = hf_hub_url(self.repo, remote.name, revision=commit, endpoint=self.endpoint)
        with _hub_errors(self.endpoint, self.repo, remote.name, token=self.token):
            meta = get_hf_file_metadata(url, token=self.token, endpoint=self.endpoint, retry_on_errors=True)
        etag = meta.etag or ""
        size = meta.size if meta.size is not None else remote.size
        if size is None:
            raise DownloadError(f"{self.endpoint} did not give the size of {remote.name}")
        if remote.size is not None and size != remote.size:
            raise DownloadError(f"{self.endpoint} gives two sizes for {remote.name} ({remote.size:,} and {size:,})")
        sha256, git_sha1 = remote.sha256, None
        if re.fullmatch(r"[0-9a-f]{64}", etag):
            if sha256 and sha256 != etag:
                raise DownloadError(f"{self.endpoint} gives two different sha256 for {remote.name}; not downloading it")
            sha256 = etag
        elif sha256 is None and re.fullmatch(r"[0-9a-f]{40}", etag):
            git_sha1 = etag
        if sha256 is None and git_sha1 is None:
            raise DownloadError(f"{self.endpoint} gives no sha256 for {remote.name}, so it cannot be verified")
        safe_etag = etag if re.fullmatch(r"[0-9A-Za-z_-]{8,128}", etag) else hashlib.sha256(etag.encode()).hexdigest()
        send_token = _same_origin(url, meta.location) or _same_origin(self.endpoint, meta.location)
        if self.folder is None:
            from huggingface_hub.file_download import repo_folder_name

            cache = paths.hf_cache_dir()
            repo_folder = repo_folder_name(repo_id=self.repo, repo_type="model")
            storage = cache / repo_folder
            blob = storage / "blobs" / safe_etag
            final = storage / "snapshots" / commit / Path(*remote.name.split("/"))
            return _Target(remote, url, meta.location, safe_etag, size, sha256, git_sha1, final, blob,
                           blob.with_name(f"{safe_etag}.incomplete"), cache / ".locks" / repo_folder / f"{safe_etag}.lock",
                           (blob.parent, f"{safe_etag}.*.incomplete"), send_token, False, commit, storage)
        from huggingface_hub._local_folder import get_local_download_paths

        local = get_local_download_paths(self.folder, remote.name)
        partial = local.incomplete_path(safe_etag)
        stem = partial.name[: -len(".incomplete")]
        return _Target(remote, url, meta.location, safe_etag, size, sha256, git_sha1, local.file_path,
                       local.file_path, partial, local.lock_path, (partial.parent, f"{stem}.*.incomplete"),
                       send_token, True, commit)

    def _check_space(self, targets: list[_Target]) -> None:
        needed: dict[Path, int] = {}
        for t in targets:
            if t.blob.exists() and t.blob.stat().st_size == t.size:
                continue
            have = t.partial.stat().st_size if t.partial.exists() else 0
            folder = t.partial.parent
            folder.mkdir(parents=True, exist_ok=True)
            needed[folder] = needed.get(folder, 0) + max(0, t.size - have)
        by_device: dict[int, tuple[Path, int]] = {}
        for folder, n in needed.items():
            dev = folder.stat().st_dev
            first, total = by_device.get(dev, (folder, 0))
            by_device[dev] = (first, total + n)
        for folder, n in by_device.values():
            free = shutil.disk_usage(folder).free
            if n > free:
                raise DiskFull(
                    f"not enough disk space in {folder}: the download needs {human_bytes(n)}, "
                    f"{human_bytes(free)} is free",
                    hint="free some space, or choose another download folder",
                    facts={"code": "disk-full", "folder": str(folder), "need": n, "free": free},
                )

    # -- one file ------------------------------------------------------------------------
    def _fetch(self, t: _Target, label: str, done_before: int, total: int) -> Iterator[Progress]:
        from filelock import FileLock, Timeout

        t.lock.parent.mkdir(parents=True, exist_ok=True)
        t.partial.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(t.lock), mode=0o664)
        announced = False
        while True:
            try:
                lock.acquire(timeout=0.2)
                break
            except Timeout:
                self._check_cancel()
                if not announced:
                    announced = True
                    yield Progress(done_before, total, f"Waiting: another download of {label} is running")
        try:
            if self._final_exists(t):
                ok = yield from self._verify_existing(t, label, done_before, total)
                if ok:
                    return
            self._adopt_orphans(t)
            yield from self._transfer(t, label, done_before, total)
        finally:
            lock.release()

    def _final_exists(self, t: _Target) -> bool:
        # In a chosen folder the file may have been put there by hand or by another tool: its
        # hash, not huggingface_hub's bookkeeping, decides whether it is the right file.
        return t.blob.exists()

    def _verify_existing(self, t: _Target, label: str, done_before: int, total: int):
        expected = t.sha256 or t.git_sha1
        known = self.lib.known_sha256(t.blob) if t.sha256 else None
        if known != t.sha256:
            hasher = _hasher(t)
            seen = 0
            with open(t.blob, "rb") as fh:
                while True:
                    self._check_cancel()
                    data = fh.read(READ_CHUNK)
                    if not data:
                        break
                    hasher.update(data)
                    seen += len(data)
                    if self._due():
                        yield Progress(done_before + seen, total, f"Verifying {label} (already on disk)")
            known = hasher.hexdigest()
        if known != expected:
            # A copy from another tool or an older run that is damaged: replace it.
            t.blob.unlink(missing_ok=True)
            if not t.folder_mode:
                t.final.unlink(missing_ok=True)
            yield Progress(done_before, total, f"{label} on disk does not match the hub (damaged or outdated); "
                                               "downloading it again")
            return False
        if t.sha256:
            self.lib.remember_sha256(t.blob, t.sha256)
        self._install(t, moved=False)
        self.result.append(FetchedFile(t.remote.name, t.final, t.size, expected, t.commit, t.size, 0))
        yield Progress(done_before + t.size, total, f"{label} is already downloaded and verified")
        return True

    def _adopt_orphans(self, t: _Target) -> None:
        """Keep the longest partial file of this content (ours or huggingface_hub's) and drop the rest."""
        folder, pattern = t.orphans
        candidates = [p for p in folder.glob(pattern) if p != t.partial]
        if not candidates:
            return
        if t.partial.exists():
            candidates.append(t.partial)
        best = max(candidates, key=lambda p: p.stat().st_size)
        for p in candidates:
            if p != best:
                p.unlink(missing_ok=True)
        if best != t.partial:
            os.replace(best, t.partial)

    def _transfer(self, t: _Target, label: str, done_before: int, total: int) -> Iterator[Progress]:
        import httpx2
        from huggingface_hub import constants
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.utils import (
            build_hf_headers,
            get_session,
            hf_raise_for_status,
        )

        have = t.partial.stat().st_size if t.partial.exists() else 0
        if have > t.size:
            have = 0
            os.truncate(t.partial, 0)
        hasher = _hasher(t)
        resumed_from = have
        if have:
            yield Progress(done_before, total, f"Checking the {human_bytes(have)} of {label} already downloaded")
            seen = 0
            with open(t.partial, "rb") as fh:
                while seen < have:
                    self._check_cancel()
                    data = fh.read(min(READ_CHUNK, have - seen))
                    if not data:
                        break
                    hasher.update(data)
                    seen += len(data)
                    if self._due():
                        yield Progress(done_before + seen, total, f"Checking the part of {label} already downloaded")
        failures = 0
        fetched = 0
        session = get_session()
        while have < t.size:
            self._check_cancel()
            headers = build_hf_headers(token=self.token)
            headers["Accept-Encoding"] = "identity"
            if not t.send_token:
                headers.pop("authorization", None)
                headers.pop("Authorization", None)
            if have:
                headers["Range"] = f"bytes={have}-"
            try:
                with session.stream("GET", t.location, headers=headers,
                                    timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT) as response:
                    if response.status_code == 416 and have == t.size:
                        break
                    hf_raise_for_status(response)
                    start = _range_start(response) if response.status_code == 206 else 0
                    if start != have:
                        # The server ignored or misread the Range: start the file again.
                        have, hasher = 0, _hasher(t)
                        if t.partial.exists():
                            os.truncate(t.partial, 0)
                        if start != 0:
                            continue
                    if have == 0 and resumed_from:
                        resumed_from = 0
                    label_now = f"Downloading {label}" + (" (resumed)" if resumed_from else "")
                    with _open_partial(t.partial) as fh:
                        for chunk in response.iter_bytes():
                            if self._cancel.is_set():
                                fh.flush()
                                self._check_cancel()
                            if not chunk:
                                continue
                            if have + len(chunk) > t.size:
                                raise DownloadError(f"{self.endpoint} sent more bytes than {label} has")
                            _write(fh, chunk, t, self)
                            hasher.update(chunk)
                            have += len(chunk)
                            fetched += len(chunk)
                            self._moved += len(chunk)
                            self._rate.add(self._moved)
                            failures = 0
                            if self._due():
                                yield self._progress(done_before + have, total, label_now)
                        if have == t.size:
                            fh.flush()
                            os.fsync(fh.fileno())
                    if have < t.size:
                        raise httpx2.RemoteProtocolError("the connection ended early")
            except (httpx2.TransportError, httpx2.TimeoutException) as exc:
                failures += 1
                if failures > self.retries:
                    raise Offline(
                        f"lost the connection to {urlsplit(t.location).netloc} while downloading {label} "
                        f"({human_bytes(have)} of {human_bytes(t.size)} kept; run the same download again to resume)",
                        hint=MIRROR_HINT,
                    ) from None
                yield Progress(done_before + have, total,
                               f"Connection lost ({_reason(exc)[:60]}); resuming {label}, try {failures}/{self.retries}")
                self._sleep(min(8.0, 0.5 * 2 ** (failures - 1)))
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status in (401, 403, 404, 410) and not t.refreshed:
                    # A signed CDN address expires; ask the hub for a fresh one once.
                    t.refreshed = True
                    self._refresh_location(t)
                    continue
                if status >= 500 or status in (408, 429):
                    failures += 1
                    if failures <= self.retries:
                        self._sleep(min(8.0, 0.5 * 2 ** (failures - 1)))
                        continue
                with _hub_errors(self.endpoint, self.repo, t.remote.name, token=self.token):
                    raise
        digest = hasher.hexdigest()
        expected = t.sha256 or t.git_sha1
        if digest != expected:
            t.partial.unlink(missing_ok=True)
            raise DownloadError(
                f"{label} failed verification: its sha256 is {digest[:12]}…, the hub says {expected[:12]}…; "
                "the file was deleted and not installed",
                hint="try again; if it happens again, the network, proxy or mirror is altering files",
            )
        os.replace(t.partial, t.blob)
        if t.sha256:
            self.lib.remember_sha256(t.blob, t.sha256)
        self._install(t, moved=True)
        self.result.append(FetchedFile(t.remote.name, t.final, t.size, expected, t.commit, resumed_from, fetched))
        yield self._progress(done_before + t.size, total, f"Verified {label}")

    def _refresh_location(self, t: _Target) -> None:
        from huggingface_hub import get_hf_file_metadata

        with _hub_errors(self.endpoint, self.repo, t.remote.name, token=self.token):
            meta = get_hf_file_metadata(t.url, token=self.token, endpoint=self.endpoint, retry_on_errors=True)
        t.location = meta.location
        t.send_token = _same_origin(t.url, meta.location) or _same_origin(self.endpoint, meta.location)

    def _install(self, t: _Target, *, moved: bool) -> None:
        if t.folder_mode:
            # huggingface_hub's record for a file in a local folder (its write_download_metadata
            # would wait for the lock this download holds), so hf_hub_download sees it as current.
            from huggingface_hub._local_folder import get_local_download_paths

            meta = get_local_download_paths(self.folder, t.remote.name).metadata_path
            tmp = meta.with_name(f"{meta.name}.{os.getpid()}.tmp")
            tmp.write_text(f"{t.commit}\n{t.etag}\n{time.time()}\n")
            os.replace(tmp, meta)
            return
        assert t.storage is not None
        if not t.final.exists():
            t.final.parent.mkdir(parents=True, exist_ok=True)
            _link(t.blob, t.final, new_blob=moved)
        if self.revision != t.commit:
            ref = t.storage / "refs" / self.revision
            ref.parent.mkdir(parents=True, exist_ok=True)
            if not ref.exists() or ref.read_text().strip() != t.commit:
                tmp = ref.with_name(f"{ref.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(t.commit)
                os.replace(tmp, ref)

    # -- helpers -------------------------------------------------------------------------
    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_event >= PROGRESS_INTERVAL:
            self._last_event = now
            return True
        return False

    def _progress(self, done: int, total: int, message: str) -> Progress:
        speed = self._rate.speed()
        eta = (total - done) / speed if speed else None
        return Progress(done, total, message, speed=speed, eta=eta)

    def _sleep(self, seconds: float) -> None:
        if self._cancel.wait(seconds):
            self._check_cancel()


def _hasher(t: _Target):
    if t.sha256:
        return hashlib.sha256()
    h = hashlib.sha1()
    h.update(f"blob {t.size}\0".encode())
    return h


def _range_start(response) -> int:
    m = re.match(r"\s*bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else -1


@contextmanager
def _open_partial(path: Path):
    try:
        fh = open(path, "ab")
    except OSError as exc:
        if _disk_full(exc):
            raise DiskFull(f"disk full: cannot create {path}") from None
        raise
    try:
        yield fh
    finally:
        try:
            fh.close()
        except OSError:
            pass


def _write(fh, chunk: bytes, t: _Target, job: Download) -> None:
    try:
        fh.write(chunk)
    except OSError as exc:
        if not _disk_full(exc):
            raise
        try:
            fh.close()
        except OSError:
            pass
        t.partial.unlink(missing_ok=True)
        free = shutil.disk_usage(t.partial.parent).free
        raise DiskFull(
            f"the disk filled up while downloading {t.remote.name} to {t.partial.parent} "
            f"({human_bytes(free)} free, {human_bytes(t.size)} needed); the partial file was removed",
            hint="free some space, or choose another download folder",
            facts={"code": "disk-full", "folder": str(t.partial.parent), "need": t.size, "free": free},
        ) from None


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    ports = {"http": 80, "https": 443}
    return (pa.scheme, (pa.hostname or "").lower(), pa.port or ports.get(pa.scheme)) == \
        (pb.scheme, (pb.hostname or "").lower(), pb.port or ports.get(pb.scheme))


def _link(blob: Path, pointer: Path, *, new_blob: bool) -> None:
    """The snapshot entry, as huggingface_hub makes it (a relative link, or a copy without links)."""
    try:
        from huggingface_hub.file_download import _create_symlink
    except ImportError:  # the helper is private; fall back to a plain relative link
        pointer.unlink(missing_ok=True)
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
        return
    _create_symlink(str(blob), str(pointer), new_blob=new_blob)


# ---------------------------------------------------------------------------------------
# Pull: choose, download, verify, register.


class Pull:
    """``r1desk pull REPO[:QUANT]`` as a job: Progress events, ``cancel()``, then ``model``."""

    def __init__(
        self,
        spec: str,
        *,
        quant: str | None = None,
        filename: str | None = None,
        revision: str = "main",
        folder: str | os.PathLike | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        db: sqlite_utils.Database | None = None,
        name: str | None = None,
        retries: int = 3,
    ):
        self.repo, spec_quant = parse_spec(spec)
        self.quant = (quant or spec_quant or None)
        self.filename = filename
        self.revision = revision
        self.folder = folder
        self.endpoint = endpoint
        self.token = token
        self.db = db
        self.name = name
        self.retries = retries
        self.files: list[RemoteFile] = []
        self.download: Download | None = None
        self.model: _library.Model | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()
        if self.download is not None:
            self.download.cancel()

    def __iter__(self) -> Iterator[Progress]:
        return self._run()

    def _run(self) -> Iterator[Progress]:
        db = self.db if self.db is not None else open_db()
        try:
            endpoint = hub_endpoint(self.endpoint, db=db)
            token = hub_token(self.token, endpoint=endpoint, db=db)
            _refuse_offline(endpoint)
            yield Progress(0, None, f"Looking up {self.repo} on {endpoint}")
            listing = list_repo(self.repo, self.revision, endpoint=endpoint, token=token, db=db)
            self.files = choose_files(listing, quant=self.quant, filename=self.filename)
            if self.folder is None and download_folder(db=db) is None:
                try:
                    sweep_incomplete()  # leftovers of other runs, before adding new files
                except OSError:
                    pass
            if self._cancel.is_set():
                raise Cancelled("download cancelled")
            self.download = Download(self.repo, [f.name for f in self.files], revision=self.revision,
                                     folder=self.folder, endpoint=endpoint, token=token, db=db,
                                     retries=self.retries, listing=listing)
            if self._cancel.is_set():
                self.download.cancel()
            total = 0
            for event in self.download:
                total = event.total or total
                yield event
            first = self.download.result[0]
            lib = _library.Library(db)
            try:
                self.model = lib.register(
                    first.path, name=self.name, origin="hub", source_repo=self.repo, source_file=first.name,
                    source_revision=listing.commit, sha256=first.sha256,
                    metadata={"endpoint": endpoint,
                              "part_sha256": [f.sha256 for f in self.download.result]},
                )
            except CorruptModel as exc:
                raise CorruptModel(f"{self.repo}/{first.name} downloaded and matches the hub, "
                                   f"but it is not a usable model: {exc}") from None
            yield Progress(total, total or None, f"Ready: {self.model.name}")
        finally:
            if self.db is None:
                db.conn.close()


def pull(spec: str, **kwargs: Any) -> Pull:
    """Start building a pull job; iterate it to run it (see ``Pull``)."""
    return Pull(spec, **kwargs)


# ---------------------------------------------------------------------------------------
# Leftovers.


@dataclass
class SweepReport:
    removed: list[Path] = field(default_factory=list)
    adopted: list[Path] = field(default_factory=list)
    freed: int = 0


def sweep_incomplete(cache_dir: str | os.PathLike | None = None, *, max_age_days: float = RESUMABLE_DAYS) -> SweepReport:
    """Tidy ``*.incomplete`` files in the HF cache that no download is writing.

    A partial file of a finished blob, or a duplicate, is deleted; huggingface_hub's uniquely
    named leftovers are renamed to r1desk's stable name so the next download resumes them; a
    partial file nobody touched for ``max_age_days`` is deleted.
    """
    from filelock import FileLock, Timeout

    report = SweepReport()
    cache = Path(cache_dir) if cache_dir else paths.hf_cache_dir()
    if not cache.is_dir():
        return report
    cutoff = time.time() - max_age_days * 86400
    for blobs in sorted(cache.glob("models--*/blobs")):
        repo_folder = blobs.parent.name
        by_etag: dict[str, list[Path]] = {}
        for p in blobs.glob("*.incomplete"):
            by_etag.setdefault(p.name.split(".", 1)[0], []).append(p)
        for etag, found in by_etag.items():
            lock = FileLock(str(cache / ".locks" / repo_folder / f"{etag}.lock"), mode=0o664)
            try:
                (cache / ".locks" / repo_folder).mkdir(parents=True, exist_ok=True)
                lock.acquire(timeout=0)
            except (Timeout, OSError):
                continue  # being written right now
            try:
                stable = blobs / f"{etag}.incomplete"
                sizes = {p: p.stat().st_size for p in found if p.exists()}
                if (blobs / etag).exists():
                    drop, keep = list(sizes), None
                else:
                    keep = max(sizes, key=sizes.get) if sizes else None
                    drop = [p for p in sizes if p != keep]
                    if keep is not None and keep.stat().st_mtime < cutoff:
                        drop.append(keep)
                        keep = None
                for p in drop:
                    report.freed += sizes.get(p, 0)
                    p.unlink(missing_ok=True)
                    report.removed.append(p)
                if keep is not None and keep != stable:
                    os.replace(keep, stable)
                    report.adopted.append(stable)
            finally:
                lock.release()
    return report
