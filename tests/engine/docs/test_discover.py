"""Finding the documents in a folder: kinds by name and by a look inside, tool and hidden folders
passed over, links followed once, loops and dangling links reported, pipes never opened."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from r1desk.engine.docs.discover import Found, discover
from r1desk.engine.docs.extract import Problem
from r1desk.engine.errors import Cancelled
from r1desk.engine.events import CancelToken

pytestmark = pytest.mark.timeout(60)


def tree(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def names(items, root: Path) -> list[str]:
    return [os.path.relpath(i.path, root) for i in items]


def test_documents_are_found_in_name_order_and_tool_folders_are_passed_over(tmp_path) -> None:
    tree(tmp_path, {
        "b.md": "# B", "a.pdf": "%PDF-1.4", "notes/z.txt": "z", "notes/deep/y.docx": "x", "data.csv": "a,b",
        "script.py": "print(1)", "photo.jpg": b"\xff\xd8\xff", "README": "Read me.\n", "blob": b"\x00\x01" * 64,
        ".hidden.txt": "h", ".git/config.txt": "c", "node_modules/pkg/readme.md": "m", "__pycache__/x.txt": "x",
        "env/pyvenv.cfg": "home = /usr", "env/lib/site.txt": "s", "cache/CACHEDIR.TAG": "Signature", "cache/c.txt": "c",
        "~$b.docx": b"lock",
    })
    found = list(discover([tmp_path]))
    assert all(isinstance(f, Found) for f in found)
    # A folder's files in name order, then its folders.
    assert names(found, tmp_path) == ["README", "a.pdf", "b.md", "data.csv", "script.py", "notes/z.txt",
                                      "notes/deep/y.docx"]
    assert [f.kind for f in found] == ["text", "pdf", "markdown", "csv", "code", "text", "docx"]
    f = found[2]
    assert (f.size, f.mtime) == (3, os.stat(f.path).st_mtime)
    assert names(discover([tmp_path], kinds={"pdf", "docx"}), tmp_path) == ["a.pdf", "notes/deep/y.docx"]
    assert ".hidden.txt" in names(discover([tmp_path], skip_hidden=False), tmp_path)


def test_links_are_followed_once_and_loops_and_dangling_links_are_problems(tmp_path) -> None:
    tree(tmp_path, {"docs/a.txt": "a", "docs/sub/b.txt": "b", "elsewhere/c.md": "c"})
    os.symlink("..", tmp_path / "docs/sub/up")  # a folder link back up the tree
    os.symlink(tmp_path / "elsewhere", tmp_path / "docs/linked")
    os.symlink("a.txt", tmp_path / "docs/again.txt")  # the same file by a second name
    os.symlink("loop.md", tmp_path / "docs/loop.md")
    os.symlink("missing.md", tmp_path / "docs/gone.md")
    os.symlink("missing.bin", tmp_path / "docs/gone.bin")  # a link to nothing of no kind read: not worth a word
    os.mkfifo(tmp_path / "docs/pipe.txt")  # opening it would block: never opened
    found = list(discover([tmp_path / "docs", tmp_path / "docs/a.txt"]))
    docs = [f for f in found if isinstance(f, Found)]
    problems = {os.path.basename(p.path): p.code for p in found if isinstance(p, Problem)}
    assert names(docs, tmp_path / "docs") == ["a.txt", "linked/c.md", "sub/b.txt"]
    assert problems == {"loop.md": "symlink-loop", "gone.md": "vanished"}


def test_a_folder_it_may_not_list_is_a_problem_and_the_rest_is_walked(tmp_path) -> None:
    tree(tmp_path, {"open/a.txt": "a", "shut/b.txt": "b"})
    (tmp_path / "shut").chmod(0)
    try:
        found = list(discover([tmp_path]))
    finally:
        (tmp_path / "shut").chmod(0o700)
    if os.geteuid() == 0:  # root lists any folder
        assert names(found, tmp_path) == ["open/a.txt", "shut/b.txt"]
    else:
        assert names(found, tmp_path) == ["open/a.txt", "shut"]
        assert found[1].code == "unreadable" and found[1].reason.startswith("the folder could not be listed")


def test_paths_given_directly(tmp_path) -> None:
    tree(tmp_path, {"a.txt": "a", "photo.jpg": b"\xff\xd8\xff"})
    found = list(discover([tmp_path / "a.txt", tmp_path / "photo.jpg", tmp_path / "missing.pdf", tmp_path / "a.txt"]))
    assert [type(f).__name__ for f in found] == ["Found", "Problem", "Problem"]
    assert [getattr(f, "code", None) for f in found] == [None, "unsupported", "vanished"]


def test_discovery_stops_when_cancelled(tmp_path) -> None:
    tree(tmp_path, {f"d{i}/f.txt": "x" for i in range(20)})
    token = CancelToken()
    walk = discover([tmp_path], token=token)
    next(walk)
    token.cancel()
    with pytest.raises(Cancelled):
        list(walk)
