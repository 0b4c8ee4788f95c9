"""Watched folders: while the app runs, files added, changed or deleted there reach the index without a rescan.

The operating system says what changed (watchdog: inotify, FSEvents, ReadDirectoryChangesW);
changes are gathered until the folder has been quiet for ``debounce`` seconds (an editor
saving a file, or a copy of a thousand files, is one batch), then only the changed files are
indexed again. A folder renamed or deleted as a whole is followed by a scan of its collection,
which reads only what changed. Indexing runs on a thread of the watcher's own, with a
database connection of its own, so the app's connection is never held while files are read.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import PurePath
from typing import Any, Callable

from r1desk.engine.db.database import Database, open_db
from r1desk.engine.docs import store
from r1desk.engine.docs.discover import SKIP_FOLDERS
from r1desk.engine.docs.extract import EXTENSIONS
from r1desk.engine.docs.index import IndexProgress, index_collection
from r1desk.engine.errors import Cancelled
from r1desk.engine.events import CancelToken

DEBOUNCE_SECONDS = 1.0
FULL_SCAN = "*"  # in a batch: scan the whole collection (a folder moved or deleted)


def _wanted(path: str, root: str) -> bool:
    """A file ``discover`` would index in ``root``: no hidden or tool folder on the way, a document's name."""
    try:
        parts = PurePath(os.path.relpath(path, root)).parts
    except ValueError:
        return False
    if not parts or parts[0] == os.pardir:
        return path == root
    if any(p.startswith(".") or p in SKIP_FOLDERS for p in parts[:-1]):
        return False
    name = parts[-1]
    if name.startswith((".", "~$")) or name.endswith(("~", ".swp", ".tmp", ".part", ".crdownload")):
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in EXTENSIONS or not suffix


class Watcher:
    """Keeps the watched folders of every collection indexed; ``start()``, then ``stop()`` (or ``with``).

    ``embedder``: as for ``index_collection`` (None: full-text only). ``on_event(collection,
    event)`` receives each ``IndexProgress`` of the runs it starts, ``on_error(collection, exc)``
    what a run raised (from the watcher's thread: a GUI hands them to its own).
    """

    def __init__(self, db: Database | str | os.PathLike, *, embedder: Any = None,
                 debounce: float = DEBOUNCE_SECONDS,
                 on_event: Callable[[str, IndexProgress], Any] | None = None,
                 on_error: Callable[[str, BaseException], Any] | None = None):
        self.db_path = db.path if isinstance(db, Database) else os.fspath(db)
        self.embedder = embedder
        self.debounce = debounce
        self.on_event = on_event
        self.on_error = on_error
        self._lock = threading.Lock()
        self._pending: dict[str, set[str]] = {}  # collection name -> changed paths (or FULL_SCAN)
        self._last_change = 0.0
        self._wake = threading.Event()
        self._token = CancelToken()
        self._observer: Any = None
        self._thread: threading.Thread | None = None
        self._roots: dict[str, list[store.Root]] = {}
        self.runs = 0  # indexing runs done so far (tests wait on it)

    # -- the folders ------------------------------------------------------------------
    def start(self) -> "Watcher":
        from watchdog.observers import Observer

        db = open_db(self.db_path)
        try:
            for c in store.list_collections(db):
                roots = [r for r in c.roots if r.watched]
                if roots:
                    self._roots[c.name] = roots
        finally:
            db.close()
        self._observer = Observer()
        handler = _Handler(self)
        scheduled: set[tuple[str, bool]] = set()
        for roots in self._roots.values():
            for root in roots:
                folder, recursive = (root.path, True) if root.kind == "folder" else (os.path.dirname(root.path), False)
                if (folder, recursive) in scheduled or not os.path.isdir(folder):
                    continue
                scheduled.add((folder, recursive))
                self._observer.schedule(handler, folder, recursive=recursive)
        self._observer.start()
        self._thread = threading.Thread(target=self._run, name="r1desk-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._token.cancel()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
            self._observer = None
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "Watcher":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def watching(self) -> dict[str, list[str]]:
        return {name: [r.path for r in roots] for name, roots in self._roots.items()}

    # -- what changed -----------------------------------------------------------------
    def changed(self, path: str, *, folder: bool = False) -> None:
        """Note a change at ``path`` (the handler calls this; so may anything else that knows)."""
        path = os.path.abspath(path)
        with self._lock:
            for name, roots in self._roots.items():
                for root in roots:
                    if root.kind == "file":
                        if path != root.path:
                            continue
                    elif not store._under(path, root.path):
                        continue
                    if folder:
                        self._pending.setdefault(name, set()).add(FULL_SCAN)
                    elif root.kind == "file" or _wanted(path, root.path):
                        self._pending.setdefault(name, set()).add(path)
            self._last_change = time.monotonic()
        self._wake.set()

    def _take(self) -> dict[str, set[str]]:
        with self._lock:
            if not self._pending or time.monotonic() - self._last_change < self.debounce:
                return {}
            batch, self._pending = self._pending, {}
            return batch

    def _run(self) -> None:
        db = open_db(self.db_path)
        try:
            while not self._token.cancelled:
                self._wake.wait(timeout=min(0.25, self.debounce))
                self._wake.clear()
                for name, paths in self._take().items():
                    if self._token.cancelled:
                        return
                    self._index(db, name, paths)
        finally:
            db.close()

    def _index(self, db: Database, name: str, paths: set[str]) -> None:
        only = None if FULL_SCAN in paths else sorted(paths)
        try:
            for event in index_collection(db, name, embedder=self.embedder, token=self._token, only=only):
                if self.on_event is not None:
                    self.on_event(name, event)
        except Cancelled:
            return
        except Exception as exc:  # noqa: BLE001 - the watcher goes on; the app hears of it
            if self.on_error is not None:
                self.on_error(name, exc)
        finally:
            self.runs += 1


class _Handler:
    """watchdog's callbacks, reduced to "this path changed" (both ends of a move)."""

    def __init__(self, watcher: Watcher):
        self.watcher = watcher

    def dispatch(self, event: Any) -> None:
        kind = event.event_type
        if kind in ("opened", "closed_no_write"):
            return
        folder = bool(event.is_directory)
        if folder and kind == "modified":
            return  # a file in it changed: that file has its own event
        self.watcher.changed(os.fsdecode(event.src_path), folder=folder)
        dest = getattr(event, "dest_path", "")
        if dest:
            self.watcher.changed(os.fsdecode(dest), folder=folder)
