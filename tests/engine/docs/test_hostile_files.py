"""Hostile files through the worker process: each one by itself and mixed into a normal folder.

Each gets its problem code and the rest is read; a file that hangs, balloons or crashes the
parser costs that file and a fresh worker, never the caller; nothing hangs (pytest-timeout).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from r1desk.engine.docs.discover import Found, discover
from r1desk.engine.docs.extract import PROBLEMS, Extracted, Limits, Problem
from r1desk.engine.docs.worker import Extractor
from r1desk.engine.errors import Cancelled
from r1desk.engine.events import CancelToken

from tests.support.corpus import big_log, build_corpus, build_hostile, slow_pdf

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
MISBEHAVING = {".balloon": "tests.support.corpus:balloon", ".crash": "tests.support.corpus:segfault"}
HOSTILE = ["locked.pdf", "print-protected.pdf", "damaged.pdf", "half.pdf", "bomb.pdf", "scan.pdf", "setup.pdf",
           "bomb.docx", "locked.docx", "laughs.docx", "notes.docx", "program.txt", "picture.txt", "mojibake.txt",
           "damaged-utf8.txt", "empty.txt", "huge.log", "loop.md", "dangling.md"]


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch) -> None:
    """The worker imports the misbehaving parsers from tests/support, as any module by name."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    folder = tmp_path_factory.mktemp("hostile")
    return folder, build_hostile(folder)


@pytest.fixture(scope="module")
def extractor():
    with Extractor() as ex:
        yield ex


def code_of(result) -> str | None:
    return result.code if isinstance(result, Problem) else None


def test_the_list_here_is_every_hostile_file(hostile) -> None:
    assert sorted(HOSTILE) == sorted(hostile[1])


@pytest.mark.parametrize("name", HOSTILE)
def test_each_hostile_file_by_itself(hostile, extractor, name) -> None:
    folder, expected = hostile
    pid = extractor.worker_pid
    started = time.monotonic()
    result = extractor.extract(folder / name)
    assert code_of(result) == expected[name], result
    assert time.monotonic() - started < 60  # none hangs (generous: the machine may be busy)
    if isinstance(result, Problem):
        assert result.code in PROBLEMS and result.reason and "\n" not in result.reason
    else:
        assert result.blocks and result.text
    assert pid is None or extractor.worker_pid == pid  # none of them costs the worker


def test_what_the_readable_hostile_files_say(hostile, extractor) -> None:
    folder, _ = hostile
    assert extractor.extract(folder / "print-protected.pdf").text == "The annual picnic takes place at Lake Mirren."
    damaged = extractor.extract(folder / "damaged-utf8.txt")
    assert damaged.encoding == "utf-8" and damaged.notes == ["3 damaged UTF-8 sequences were replaced"]
    assert "Die Prüfung der Anlage in Köln" in damaged.text
    laughs = extractor.extract(folder / "laughs.docx")  # refused, not expanded to 3 GB
    assert laughs.code == "corrupt" and "XMLSyntaxError" in laughs.reason and extractor.peak_rss < 400 << 20
    bomb = extractor.extract(folder / "bomb.docx")
    assert "2048.8 MB" in bomb.reason and "zip bomb" in bomb.reason


def test_a_500_mb_log_file_is_read_to_the_text_limit_in_a_moment(hostile, extractor) -> None:
    folder, _ = hostile
    path = folder / "huge.log"
    assert path.stat().st_size == 500 << 20
    started = time.monotonic()
    doc = extractor.extract(path)
    seconds = time.monotonic() - started
    assert doc.truncated and doc.notes == ["only the first 8.0 MB of 500.0 MB were read"]
    assert len(doc.text) <= 8 << 20 and doc.text.endswith(" ms")  # cut at a line's end
    assert seconds < 30 and extractor.peak_rss < 400 << 20


def test_a_messy_folder_is_read_with_a_problem_for_each_bad_file(tmp_path) -> None:
    corpus = build_corpus(tmp_path)
    expected = build_hostile(tmp_path / "hostile")
    slow_pdf(tmp_path / "hostile" / "endless.pdf")
    expected["endless.pdf"] = "timeout"
    (tmp_path / "hostile" / "plugin.crash").write_text("x")
    expected["plugin.crash"] = "crashed"
    results: dict[str, Extracted | Problem] = {}
    started = time.monotonic()
    with Extractor(Limits(seconds=3), parsers={".crash": MISBEHAVING[".crash"]}) as ex:
        found = list(discover([tmp_path], kinds=None))
        extra = [Found(str(tmp_path / "hostile/plugin.crash"), "x", 1, 0)] + [f for f in found if isinstance(f, Found)]
        for item in found:
            if isinstance(item, Problem):
                results[os.path.basename(item.path)] = item
        for item in extra:
            results[os.path.basename(item.path)] = ex.extract(item.path)
        workers = ex.started
    seconds = time.monotonic() - started
    for path in corpus.files:
        doc = results.pop(path.name)
        assert isinstance(doc, Extracted), doc
        for fact in corpus.facts_in(path.name):
            assert any(fact.found_in(b.text) for b in doc.blocks), fact.id
    assert {name: code_of(r) for name, r in results.items()} == expected
    assert workers == 3  # the first, and one after each of the timeout and the crash
    assert seconds < 180


def test_a_pdf_that_takes_forever_times_out_and_the_next_file_is_read(tmp_path) -> None:
    slow = slow_pdf(tmp_path / "endless.pdf")
    assert slow.stat().st_size < 100_000
    (tmp_path / "next.md").write_text("# Next\n\nRead as usual.\n")
    with Extractor(Limits(seconds=2)) as ex:
        ex.extract(tmp_path / "next.md")
        first = ex.worker_pid
        started = time.monotonic()
        result = ex.extract(slow)
        assert (result.code, result.reason) == ("timeout", "reading it took longer than 2 seconds")
        assert 2 <= time.monotonic() - started < 30
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
        assert ex.extract(tmp_path / "next.md").blocks[1].text == "Read as usual."
        assert ex.worker_pid != first and ex.started == 2


def test_kill_9_of_the_worker_mid_file_costs_that_file_only(tmp_path) -> None:
    slow = slow_pdf(tmp_path / "endless.pdf")
    (tmp_path / "next.txt").write_text("Still here.")
    with Extractor() as ex:
        ex.extract(tmp_path / "next.txt")
        pid = ex.worker_pid
        killer = threading.Timer(0.7, os.kill, (pid, signal.SIGKILL))
        killer.start()
        result = ex.extract(slow)
        killer.join()
        assert result.code == "crashed"
        assert result.reason == "the document reader died while reading it (ended by SIGKILL)"
        assert ex.extract(tmp_path / "next.txt").text == "Still here."
        assert ex.worker_pid != pid


def test_a_parser_that_crashes_in_c_costs_its_file(tmp_path) -> None:
    (tmp_path / "a.crash").write_text("boom")
    (tmp_path / "b.txt").write_text("fine")
    with Extractor(parsers=MISBEHAVING) as ex:
        result = ex.extract(tmp_path / "a.crash")
        assert code_of(result) == "crashed" and "SIGSEGV" in result.reason
        assert ex.extract(tmp_path / "b.txt").text == "fine"


@pytest.mark.parametrize("kernel_limit", [True, False], ids=["rlimit", "watched"])
def test_a_parser_that_balloons_is_stopped_at_the_memory_limit(tmp_path, kernel_limit) -> None:
    """With RLIMIT_AS the allocation fails in the worker; without it (macOS does not enforce it)
    the parent sees the worker's memory pass the limit and kills it."""
    (tmp_path / "a.balloon").write_text("x")
    (tmp_path / "b.txt").write_text("fine")
    limit = 600 << 20
    with Extractor(Limits(memory_bytes=limit), parsers=MISBEHAVING, kernel_limit=kernel_limit) as ex:
        started = time.monotonic()
        result = ex.extract(tmp_path / "a.balloon")
        assert code_of(result) == "too-much-memory", result
        assert time.monotonic() - started < 120
        assert ex.peak_rss < limit + (300 << 20)  # stopped near the limit, not at the machine's end
        assert ex.extract(tmp_path / "b.txt").text == "fine"
        assert ex.started == 2


def test_a_file_deleted_after_it_was_found_has_vanished(tmp_path, extractor) -> None:
    (tmp_path / "soon-gone.md").write_text("# Temporary\n")
    (found,) = discover([tmp_path])
    os.remove(found.path)
    assert code_of(extractor.extract(found.path)) == "vanished"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_a_file_without_read_permission_is_unreadable(tmp_path, extractor) -> None:
    path = tmp_path / "private.txt"
    path.write_text("salaries")
    path.chmod(0)
    try:
        assert code_of(extractor.extract(path)) == "unreadable"
    finally:
        path.chmod(0o600)


def test_a_pipe_named_txt_is_neither_found_nor_waited_on(tmp_path, extractor) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    assert list(discover([tmp_path])) == []
    started = time.monotonic()
    assert code_of(extractor.extract(tmp_path / "pipe.txt")) == "unreadable"
    assert time.monotonic() - started < 20


def test_cancel_stops_a_long_file_at_once(tmp_path) -> None:
    slow = slow_pdf(tmp_path / "endless.pdf")
    (tmp_path / "next.txt").write_text("next")
    token = CancelToken()
    with Extractor() as ex:
        ex.extract(tmp_path / "next.txt")
        threading.Timer(0.5, token.cancel).start()
        started = time.monotonic()
        with pytest.raises(Cancelled):
            ex.extract(slow, token=token)
        assert time.monotonic() - started < 20
        assert ex.extract(tmp_path / "next.txt").text == "next"
        with pytest.raises(Cancelled):
            ex.extract(tmp_path / "next.txt", token=token)  # cancelled before it starts


def test_a_worker_is_replaced_after_serving_its_share_of_files(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("a")
    with Extractor(recycle_after=3) as ex:
        pids = []
        for _ in range(7):
            assert ex.extract(tmp_path / "a.txt").text == "a"
            pids.append(ex.worker_pid)
    assert len(set(pids[:3])) == 1 and len(set(pids)) == 3 and ex.worker_pid is None


def test_the_worker_ends_with_the_process_that_started_it(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("a")
    script = textwrap.dedent(f"""
        import sys, time
        from r1desk.engine.docs.worker import Extractor
        ex = Extractor()
        ex.extract({str(tmp_path / 'a.txt')!r})
        print(ex.worker_pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        assert psutil.pid_exists(worker)
        parent.kill()  # kill -9: no cleanup code runs in the parent
        parent.wait(10)
        deadline = time.monotonic() + 10
        while psutil.pid_exists(worker) and psutil.Process(worker).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the worker outlived its parent"
            time.sleep(0.1)
    finally:
        parent.kill()


def test_the_workers_peak_memory_is_its_own_not_its_parents(tmp_path) -> None:
    """A parent holding a lot of memory starts a worker: the peak reported is the worker's."""
    (tmp_path / "a.txt").write_text("a")
    script = textwrap.dedent(f"""
        big = bytearray(1200 << 20)
        for i in range(0, len(big), 4096):
            big[i] = 1
        from r1desk.engine.docs.worker import Extractor
        with Extractor() as ex:
            ex.extract({str(tmp_path / 'a.txt')!r})
            print(ex.peak_rss, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert 0 < int(out.stdout) < 400 << 20


def test_big_log_costs_nothing_to_make(tmp_path) -> None:
    started = time.monotonic()
    path = big_log(tmp_path / "huge.log")
    assert path.stat().st_size == 500 << 20 and time.monotonic() - started < 30
    assert path.stat().st_blocks * 512 < 50 << 20  # sparse: the disk holds the written start only
