"""Which files under the user's folders are documents to index.

A folder the user adds holds more than documents: version-control folders, installed
packages (node_modules, site-packages, virtual environments), caches, links that lead back
up the tree or nowhere, pipes that would block whoever opens them. ``discover`` walks it
once, in name order, and yields each document with its kind, size and modification time,
and a ``Problem`` for what the user should hear about (a folder it may not list, a link
that loops or points nowhere); the rest is passed over without a word.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import Collection, Iterable, Iterator

from r1desk.engine.docs.extract import EXTENSIONS, KINDS, Problem, _os_problem, kind_of
from r1desk.engine.errors import Cancelled
from r1desk.engine.events import CancelToken

# Folders of tools, never of documents; hidden folders (".git", ".venv") are passed over too.
SKIP_FOLDERS = frozenset({
    "node_modules", "bower_components", "__pycache__", "site-packages", "dist-packages", "__MACOSX",
    "$RECYCLE.BIN", "System Volume Information",
})
# A folder holding one of these is a virtual environment or a cache (the CACHEDIR.TAG convention).
SKIP_MARKERS = ("pyvenv.cfg", "CACHEDIR.TAG")


@dataclass(frozen=True)
class Found:
    """A document to index: ``kind`` is one of ``extract.KINDS``; ``size`` and ``mtime`` as found."""

    path: str
    kind: str
    size: int
    mtime: float


def _hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith(".") or entry.name.startswith("~$"):  # ~$name.docx: Word's lock file
        return True
    attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return bool(attributes & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def _skipped_folder(path: str, name: str) -> bool:
    return name in SKIP_FOLDERS or any(os.path.exists(os.path.join(path, marker)) for marker in SKIP_MARKERS)


def discover(paths: Iterable[str | os.PathLike], *, kinds: Collection[str] | None = None,
             skip_hidden: bool = True, token: CancelToken | None = None) -> Iterator[Found | Problem]:
    """The documents in ``paths`` (files, or folders walked through, links followed once): a
    folder's files in name order, then its folders'.

    ``kinds`` limits the kinds yielded (all of ``extract.KINDS`` by default). A file named
    directly is yielded whatever its name, or a Problem if r1desk cannot read its kind; inside
    folders, hidden files and folders, tool folders and files of other kinds are passed over.
    A file reached twice (by a link, or named twice) is yielded once. Raises ``Cancelled``.
    """
    wanted = set(kinds) if kinds is not None else set(KINDS)
    seen_folders: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def found(path: str, st: os.stat_result, kind: str | None) -> Found | None:
        key = (st.st_dev, st.st_ino)
        if kind not in wanted or key in seen_files:
            return None
        seen_files.add(key)
        return Found(path, kind, st.st_size, st.st_mtime)

    for given in paths:
        root = os.fspath(given)
        try:
            st = os.stat(root)
        except OSError as exc:
            yield _os_problem(root, exc)
            continue
        if stat.S_ISREG(st.st_mode):
            kind = kind_of(root)
            if kind is None:
                yield Problem(root, "unsupported", "not a kind of file r1desk reads")
            elif (item := found(root, st, kind)) is not None:
                yield item
            continue
        if not stat.S_ISDIR(st.st_mode):
            yield Problem(root, "unreadable", "not a regular file or folder (a pipe or device)")
            continue
        if (st.st_dev, st.st_ino) in seen_folders:
            continue
        seen_folders.add((st.st_dev, st.st_ino))
        stack = [root]
        while stack:
            if token is not None and token.cancelled:
                raise Cancelled("cancelled")
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                problem = _os_problem(folder, exc)
                yield Problem(folder, problem.code, f"the folder could not be listed: {problem.reason}")
                continue
            folders = []
            for entry in entries:
                try:
                    if skip_hidden and _hidden(entry):
                        continue
                    is_dir = entry.is_dir()
                except OSError as exc:  # a link in a loop, or gone since the folder was listed
                    if exc.errno == errno.ELOOP:
                        yield _os_problem(entry.path, exc)
                    continue
                if is_dir:
                    if _skipped_folder(entry.path, entry.name):
                        continue
                    try:
                        st = entry.stat()
                    except OSError as exc:
                        yield _os_problem(entry.path, exc)
                        continue
                    if (st.st_dev, st.st_ino) not in seen_folders:  # else a link back up the tree
                        seen_folders.add((st.st_dev, st.st_ino))
                        folders.append(entry.path)
                    continue
                suffix = os.path.splitext(entry.name)[1].lower()
                try:
                    is_file = entry.is_file()
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        yield _os_problem(entry.path, exc)
                    continue
                if not is_file:  # pipes, sockets and devices are not documents; links that lead nowhere
                    if entry.is_symlink():
                        try:
                            os.stat(entry.path)
                        except OSError as exc:
                            if exc.errno == errno.ELOOP or EXTENSIONS.get(suffix) in wanted:
                                yield _os_problem(entry.path, exc)
                    continue
                kind = EXTENSIONS.get(suffix)
                if kind is None and not suffix:
                    kind = kind_of(entry.path)  # README, Makefile, LICENSE: text if they look it
                if kind not in wanted:
                    continue
                try:
                    st = entry.stat()
                except OSError as exc:
                    yield _os_problem(entry.path, exc)
                    continue
                if (item := found(entry.path, st, kind)) is not None:
                    yield item
            stack.extend(reversed(folders))
