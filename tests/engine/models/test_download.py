"""Downloads against a loopback hub: split sets, resume after cuts/cancel/kill, verification, refusals."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from r1desk.cli import cli
from r1desk.engine.db.database import open_db
from r1desk.engine.errors import (
    Cancelled,
    DiskFull,
    DownloadError,
    ModelNotFound,
    Offline,
)
from r1desk.engine.events import Progress
from r1desk.engine.models import download
from r1desk.engine.models.library import Library
from r1desk.engine.paths import hf_cache_dir

from tests.support.hub import FakeHub, fake_hub  # noqa: F401  (fixture)
from tests.support.models import REPO_ROOT, rewrite_gguf, tiny_r1_expected

SPLIT_REPO = "r1desk-test/tiny-r1-split-GGUF"
ONE_REPO = "r1desk-test/tiny-r1-GGUF"
ONE_FILE = "tiny-r1-Q8_0.gguf"


@pytest.fixture(scope="session")
def split_model(tiny_r1: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    parts = rewrite_gguf(tiny_r1, tmp_path_factory.mktemp("split") / "tiny-r1-Q8_0.gguf", split_max_tensors=10)
    assert len(parts) == 3
    return parts


@pytest.fixture
def hub(fake_hub: FakeHub, tiny_r1: Path, split_model: list[Path]) -> FakeHub:
    fake_hub.add_repo(SPLIT_REPO, {**{p.name: p for p in split_model}, "README.md": b"# tiny R1, split\n"})
    fake_hub.add_repo(ONE_REPO, {ONE_FILE: tiny_r1, "README.md": b"# tiny R1\n"})
    return fake_hub


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(job) -> list[Progress]:
    return list(job)


def blob_dir(repo: str) -> Path:
    return hf_cache_dir() / ("models--" + repo.replace("/", "--")) / "blobs"


def incomplete_files() -> list[Path]:
    return sorted(hf_cache_dir().rglob("*.incomplete"))


def library_models() -> list:
    db = open_db()
    try:
        return Library(db).list()
    finally:
        db.conn.close()


def refetched(hub: FakeHub, name: str, size: int) -> int:
    return hub.bytes_served(name) - size


# ---------------------------------------------------------------------------------------
# The whole path: a split model pulled, verified, registered, loaded, chatted with.


def test_split_model_is_fetched_as_a_set_verified_and_registered(hub: FakeHub, split_model: list[Path]) -> None:
    job = download.pull(f"{SPLIT_REPO}:Q8_0", endpoint=hub.endpoint)
    events = run(job)

    total = sum(p.stat().st_size for p in split_model)
    commit = hub.repos[SPLIT_REPO].commit
    snapshot = hf_cache_dir() / f"models--{SPLIT_REPO.replace('/', '--')}" / "snapshots" / commit
    for part in split_model:
        pointer = snapshot / part.name
        assert pointer.is_symlink(), "the HF cache layout: snapshot entries link to blobs"
        assert pointer.resolve().parent.name == "blobs"
        assert pointer.resolve().name == sha256(part), "blobs are named by the hub's sha256"
        assert sha256(pointer) == sha256(part)
    assert (snapshot.parent.parent / "refs" / "main").read_text() == commit
    assert incomplete_files() == []
    assert hub.bytes_served() == total, "each byte fetched once"
    assert not hub.requests(file="README.md"), "only the model's files are fetched"

    sized = [e for e in events if e.total]
    assert sized[-1].done == sized[-1].total == total
    dones = [e.done for e in sized]
    assert dones == sorted(dones), "progress never goes backwards"
    assert any(e.speed for e in events)

    model = job.model
    assert model is not None
    assert Path(model.path) == snapshot / split_model[0].name, "registered through the first part"
    assert model.parts == [str(snapshot / p.name) for p in split_model]
    assert (model.status, model.origin, model.quant) == ("ready", "hub", "Q8_0")
    assert (model.source_repo, model.source_revision, model.size) == (SPLIT_REPO, commit, total)
    assert model.sha256 == sha256(split_model[0])
    assert model.metadata["part_sha256"] == [sha256(p) for p in split_model]
    assert [m.name for m in library_models()] == [model.name]


@pytest.mark.slow
def test_pulled_split_model_loads_through_its_first_part_and_chats(hub: FakeHub) -> None:
    import llama_cpp

    job = download.pull(f"{SPLIT_REPO}:Q8_0", endpoint=hub.endpoint)
    run(job)
    from r1desk.engine.models.library import resolve

    path = resolve(job.model.name)
    llm = llama_cpp.Llama(str(path), n_ctx=256, n_threads=2, verbose=False)
    try:
        reply = llm.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=48, temperature=0)
    finally:
        llm.close()
    reasoning, answer = tiny_r1_expected()
    text = reply["choices"][0]["message"]["content"]
    assert reasoning in text and text.endswith(answer)


@pytest.mark.slow
def test_pulled_split_model_chats_through_chat_service(hub: FakeHub) -> None:
    from r1desk.engine.chat.service import ChatService
    from r1desk.engine.events import ContentDelta

    job = download.pull(f"{SPLIT_REPO}:Q8_0", endpoint=hub.endpoint)
    run(job)
    service = ChatService()
    try:
        service.load_model(job.model.name)
        text = "".join(e.text for e in service.send(None, "hi") if isinstance(e, ContentDelta))
    finally:
        service.close()
    assert text.endswith(tiny_r1_expected()[1])


def test_pull_again_reuses_verified_files_without_fetching(hub: FakeHub) -> None:
    first = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(first)
    served = hub.bytes_served()
    second = download.pull(ONE_REPO, endpoint=hub.endpoint)
    events = run(second)
    assert hub.bytes_served() == served
    assert second.model.path == first.model.path
    assert any("already downloaded" in e.message for e in events)
    assert len(library_models()) == 1


def test_new_commit_on_main_reuses_the_blob_and_moves_the_ref(hub: FakeHub) -> None:
    run(download.pull(ONE_REPO, endpoint=hub.endpoint))
    served = hub.bytes_served()
    new = hub.new_commit(ONE_REPO)
    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(job)
    assert hub.bytes_served() == served
    storage = hf_cache_dir() / f"models--{ONE_REPO.replace('/', '--')}"
    assert (storage / "refs" / "main").read_text() == new
    assert (storage / "snapshots" / new / ONE_FILE).resolve() == (blob_dir(ONE_REPO) / sha256(Path(job.model.path)))


def test_files_are_shared_with_huggingface_hub(hub: FakeHub) -> None:
    """Another tool using huggingface_hub finds r1desk's download in the cache and fetches nothing."""
    from huggingface_hub import hf_hub_download

    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(job)
    served = hub.bytes_served()
    path = hf_hub_download(ONE_REPO, ONE_FILE, endpoint=hub.endpoint, cache_dir=hf_cache_dir())
    assert Path(path) == Path(job.model.path)
    assert hub.bytes_served() == served


def test_download_into_a_chosen_folder(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    folder = tmp_path / "my models"
    job = download.pull(f"{SPLIT_REPO}:Q8_0", endpoint=hub.endpoint, folder=folder)
    run(job)
    assert Path(job.model.path) == folder / "tiny-r1-Q8_0-00001-of-00003.gguf"
    assert all(Path(p).is_file() and not Path(p).is_symlink() for p in job.model.parts)
    assert not hf_cache_dir().exists() or not any(hf_cache_dir().rglob("*.gguf"))
    assert list(folder.rglob("*.incomplete")) == []
    served = hub.bytes_served()
    # huggingface_hub's own local-dir bookkeeping was written, so it sees the file as current.
    hf_hub_download(SPLIT_REPO, "tiny-r1-Q8_0-00002-of-00003.gguf", endpoint=hub.endpoint, local_dir=folder)
    assert hub.bytes_served() == served


def test_folder_setting_is_used_when_no_folder_is_given(hub: FakeHub, tmp_path: Path) -> None:
    download.set_download_folder(tmp_path / "dl")
    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(job)
    assert Path(job.model.path) == tmp_path / "dl" / ONE_FILE


# ---------------------------------------------------------------------------------------
# Network faults.


@pytest.mark.parametrize("cut_at", [0.3, 0.99])
def test_connection_cut_is_resumed_within_the_same_pull(hub: FakeHub, tiny_r1: Path, cut_at: float) -> None:
    size = tiny_r1.stat().st_size
    hub.fault(ONE_REPO, ONE_FILE, cut_at=cut_at)
    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    events = run(job)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)
    assert refetched(hub, ONE_FILE, size) <= 0.10 * size
    gets = hub.requests(server="cdn", method="GET", file=ONE_FILE)
    assert len(gets) == 2 and gets[1].range == f"bytes={int(cut_at * size)}-"
    assert any("Connection lost" in e.message for e in events)


@pytest.mark.parametrize("cut_at", [0.3, 0.99])
def test_connection_cut_then_a_later_pull_resumes(hub: FakeHub, tiny_r1: Path, cut_at: float) -> None:
    size = tiny_r1.stat().st_size
    hub.fault(ONE_REPO, ONE_FILE, cut_at=cut_at)
    with pytest.raises(Offline) as info:
        run(download.pull(ONE_REPO, endpoint=hub.endpoint, retries=0))
    assert "run the same download again to resume" in str(info.value) and "\n" not in str(info.value)
    partial = blob_dir(ONE_REPO) / f"{sha256(tiny_r1)}.incomplete"
    assert incomplete_files() == [partial], "one partial file, with a stable name"
    assert partial.stat().st_size == int(cut_at * size)
    assert library_models() == [] and not (blob_dir(ONE_REPO) / sha256(tiny_r1)).exists()

    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    events = run(job)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)
    assert refetched(hub, ONE_FILE, size) <= 0.10 * size
    assert any("already downloaded" in e.message and "Checking" in e.message for e in events)
    assert incomplete_files() == []


def test_server_errors_are_retried(hub: FakeHub, tiny_r1: Path) -> None:
    hub.fault(ONE_REPO, ONE_FILE, status=503, times=1)
    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(job)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)


def test_right_size_wrong_bytes_is_rejected_and_deleted(hub: FakeHub, tiny_r1: Path) -> None:
    hub.fault(ONE_REPO, ONE_FILE, corrupt=True, times=None)
    with pytest.raises(DownloadError) as info:
        run(download.pull(ONE_REPO, endpoint=hub.endpoint))
    message = str(info.value)
    assert "failed verification" in message and "deleted" in message
    assert hub.bytes_served(ONE_FILE) == tiny_r1.stat().st_size, "the wrong bytes had the right size"
    assert incomplete_files() == []
    assert not blob_dir(ONE_REPO).exists() or list(blob_dir(ONE_REPO).iterdir()) == []
    assert not list(hf_cache_dir().rglob(ONE_FILE)), "no snapshot entry points at it"
    assert library_models() == []

    hub.clear_faults()
    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(job)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)


def test_damaged_copy_already_in_the_cache_is_replaced(hub: FakeHub, tiny_r1: Path) -> None:
    """huggingface_hub accepts a blob of the right size; r1desk hashes it and fetches a good one."""
    run(download.pull(ONE_REPO, endpoint=hub.endpoint))
    blob = blob_dir(ONE_REPO) / sha256(tiny_r1)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    served = hub.bytes_served()
    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    events = run(job)
    assert any("damaged" in e.message for e in events)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)
    assert hub.bytes_served() - served == tiny_r1.stat().st_size


def test_not_enough_disk_space_is_refused_before_fetching(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    real = download.shutil.disk_usage

    def tiny_disk(path):
        usage = real(path)
        return type(usage)(usage.total, usage.total - 5_000_000, 5_000_000)

    monkeypatch.setattr(download.shutil, "disk_usage", tiny_disk)
    with pytest.raises(DiskFull) as info:
        run(download.pull(ONE_REPO, endpoint=hub.endpoint))
    assert "needs 25.5 MB, 4.8 MB is free" in str(info.value)
    assert hub.requests(server="cdn") == [], "nothing was fetched"
    assert library_models() == [] and incomplete_files() == []


@pytest.mark.slow
def test_disk_filling_up_during_the_download_is_a_clean_error(hub: FakeHub, tiny_r1: Path) -> None:
    """A real write failure: the file-size limit makes writes past 8 MB fail with EFBIG."""
    code = f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8_000_000, 8_000_000))
        from r1desk.engine.models import download
        from r1desk.engine.errors import R1deskError
        try:
            list(download.pull({ONE_REPO!r}, endpoint={hub.endpoint!r}))
        except R1deskError as exc:
            print(type(exc).__name__, "|", exc)
        else:
            print("no error")
    """
    out = _python(code, timeout=120)
    assert out.startswith("DiskFull | the disk filled up while downloading"), out
    assert "the partial file was removed" in out
    assert incomplete_files() == []
    assert library_models() == []


# ---------------------------------------------------------------------------------------
# Refusals.


@pytest.mark.parametrize("name", [
    "../evil.gguf", "/abs/evil.gguf", "\\\\host\\share\\evil.gguf", "C:\\evil.gguf", "C:evil.gguf",
    "sub/../../evil.gguf", "sub\\..\\..\\evil.gguf", "./evil.gguf",
])
def test_file_names_escaping_the_target_are_refused(hub: FakeHub, name: str, tmp_path: Path) -> None:
    hub.add_file(ONE_REPO, name, b"GGUF" + b"\0" * 100, lfs=True)
    with pytest.raises(DownloadError, match="outside the download folder"):
        run(download.pull(ONE_REPO, endpoint=hub.endpoint, filename=name))
    with pytest.raises(DownloadError, match="outside the download folder"):
        run(download.Download(ONE_REPO, [name], endpoint=hub.endpoint, folder=tmp_path / "dl"))
    assert hub.requests(server="cdn") == []
    assert not list(tmp_path.parent.rglob("evil.gguf"))


def test_hostile_name_in_a_listing_is_refused_when_chosen(fake_hub: FakeHub) -> None:
    fake_hub.add_repo("bad/repo-GGUF", {"../../model-Q4_K_M.gguf": b"GGUF" + b"\0" * 64})
    with pytest.raises(DownloadError, match="outside the download folder"):
        run(download.pull("bad/repo-GGUF:Q4_K_M", endpoint=fake_hub.endpoint))
    assert fake_hub.requests(method="HEAD") == []


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth", "model.pkl", "model.ckpt"])
def test_pickle_files_are_refused(hub: FakeHub, name: str) -> None:
    hub.add_file(ONE_REPO, name, b"\x80\x04pickle")
    with pytest.raises(DownloadError, match="pickle"):
        run(download.Download(ONE_REPO, [name], endpoint=hub.endpoint))
    assert hub.requests(method="HEAD") == []


def test_repo_without_gguf_is_refused(fake_hub: FakeHub) -> None:
    fake_hub.add_repo("org/pytorch-only", {"pytorch_model.bin": b"\x80\x04" * 10, "config.json": b"{}"})
    with pytest.raises(DownloadError, match="no GGUF files"):
        run(download.pull("org/pytorch-only", endpoint=fake_hub.endpoint))


def test_only_gguf_is_pulled_as_a_chat_model(hub: FakeHub) -> None:
    with pytest.raises(DownloadError, match="not a GGUF file"):
        run(download.pull(ONE_REPO, endpoint=hub.endpoint, filename="README.md"))


# ---------------------------------------------------------------------------------------
# Concurrency, cancel, crash.


def test_same_file_requested_twice_at_once_has_one_writer(hub: FakeHub, tiny_r1: Path) -> None:
    size = tiny_r1.stat().st_size
    hub.fault(ONE_REPO, ONE_FILE, throttle=20_000_000, times=None)
    results: dict[int, object] = {}

    def worker(i: int) -> None:
        try:
            job = download.pull(ONE_REPO, endpoint=hub.endpoint)
            results[i] = (run(job), job.model)
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(r, tuple) for r in results.values()), results
    (events_a, model_a), (events_b, model_b) = results[0], results[1]
    assert model_a.path == model_b.path
    assert sha256(Path(model_a.path)) == sha256(tiny_r1)
    assert hub.bytes_served(ONE_FILE) == size, "one download, not two"
    assert any("Waiting" in e.message for e in events_a + events_b)
    assert sorted(p.name for p in blob_dir(ONE_REPO).iterdir()) == [sha256(tiny_r1)]
    assert len(library_models()) == 1


def test_cancel_then_resume(hub: FakeHub, tiny_r1: Path) -> None:
    size = tiny_r1.stat().st_size
    hub.fault(ONE_REPO, ONE_FILE, throttle=10_000_000, times=1)
    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    partial = blob_dir(ONE_REPO) / f"{sha256(tiny_r1)}.incomplete"

    def cancel_at_30_percent() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if partial.exists() and partial.stat().st_size > 0.3 * size:
                job.cancel()  # from another thread, as the GUI does
                return
            time.sleep(0.02)

    canceller = threading.Thread(target=cancel_at_30_percent)
    canceller.start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run(job)
    canceller.join()
    assert time.monotonic() - started < 10
    kept = partial.stat().st_size
    assert 0.3 * size < kept < size
    assert library_models() == []

    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(job)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)
    assert refetched(hub, ONE_FILE, size) <= 0.10 * size
    assert hub.requests(server="cdn", method="GET")[-1].range == f"bytes={kept}-"


def _python(code: str, *, timeout: float) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, env=_child_env(),
                            capture_output=True, text=True, timeout=timeout)
    return (result.stdout + result.stderr).strip()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _kill_when(proc: subprocess.Popen, partial: Path, threshold: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if partial.exists() and partial.stat().st_size > threshold:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            return partial.stat().st_size
        if proc.poll() is not None:
            raise AssertionError(f"the downloader ended early: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("the partial file never grew")


@pytest.mark.slow
def test_kill_minus_9_during_download_then_resume(hub: FakeHub, tiny_r1: Path) -> None:
    size = tiny_r1.stat().st_size
    hub.fault(ONE_REPO, ONE_FILE, throttle=8_000_000, times=1)
    code = f"from r1desk.engine.models import download; list(download.pull({ONE_REPO!r}, endpoint={hub.endpoint!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=_child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    partial = blob_dir(ONE_REPO) / f"{sha256(tiny_r1)}.incomplete"
    kept = _kill_when(proc, partial, int(0.3 * size))
    assert proc.returncode == -signal.SIGKILL
    assert library_models() == []

    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(job)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)
    assert hub.requests(server="cdn", method="GET")[-1].range == f"bytes={kept}-"
    assert refetched(hub, ONE_FILE, size) <= 0.10 * size
    assert incomplete_files() == []


@pytest.mark.slow
def test_partial_file_left_by_a_killed_huggingface_hub_download_is_adopted(hub: FakeHub, tiny_r1: Path) -> None:
    """huggingface_hub alone would start again from zero; r1desk resumes its leftover."""
    size = tiny_r1.stat().st_size
    hub.fault(ONE_REPO, ONE_FILE, throttle=8_000_000, times=1)
    code = (f"from huggingface_hub import hf_hub_download; "
            f"hf_hub_download({ONE_REPO!r}, {ONE_FILE!r}, endpoint={hub.endpoint!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=_child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    blobs = blob_dir(ONE_REPO)
    deadline = time.monotonic() + 60
    leftover = None
    while time.monotonic() < deadline and leftover is None:
        found = [p for p in blobs.glob("*.incomplete")] if blobs.exists() else []
        if found and found[0].stat().st_size > 0.3 * size:
            leftover = found[0]
        time.sleep(0.02)
    assert leftover is not None and leftover.name != f"{sha256(tiny_r1)}.incomplete"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    kept = leftover.stat().st_size

    job = download.pull(ONE_REPO, endpoint=hub.endpoint)
    run(job)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)
    assert hub.requests(server="cdn", method="GET")[-1].range == f"bytes={kept}-"
    assert refetched(hub, ONE_FILE, size) <= 0.10 * size
    assert incomplete_files() == []


def test_sweep_tidies_leftovers_but_not_a_download_in_progress(fake_hub: FakeHub, tmp_path: Path) -> None:
    from filelock import FileLock

    cache = hf_cache_dir()
    blobs = cache / "models--org--m" / "blobs"
    blobs.mkdir(parents=True)
    done, orphan, old, busy = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    (blobs / done).write_bytes(b"x" * 10)
    (blobs / f"{done}.incomplete").write_bytes(b"x" * 5)  # finished already: drop
    (blobs / f"{orphan}.1234abcd.incomplete").write_bytes(b"y" * 7)  # huggingface_hub's: adopt
    (blobs / f"{orphan}.incomplete").write_bytes(b"y" * 3)  # shorter duplicate: drop
    (blobs / f"{old}.incomplete").write_bytes(b"z" * 4)
    os.utime(blobs / f"{old}.incomplete", (time.time() - 30 * 86400,) * 2)  # abandoned: drop
    (blobs / f"{busy}.incomplete").write_bytes(b"w" * 4)
    lock_dir = cache / ".locks" / "models--org--m"
    lock_dir.mkdir(parents=True)
    held = FileLock(str(lock_dir / f"{busy}.lock"))
    held.acquire()
    try:
        report = download.sweep_incomplete()
    finally:
        held.release()
    left = sorted(p.name for p in blobs.iterdir())
    assert left == sorted([done, f"{orphan}.incomplete", f"{busy}.incomplete"])
    assert (blobs / f"{orphan}.incomplete").read_bytes() == b"y" * 7
    assert report.freed == 5 + 3 + 4


# ---------------------------------------------------------------------------------------
# Endpoint, token, offline.


def test_offline_is_one_clear_line(fake_hub: FakeHub) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Offline) as info:
        run(download.pull(ONE_REPO, endpoint=f"http://127.0.0.1:{port}"))
    assert str(info.value) == f"cannot reach http://127.0.0.1:{port}: it refused the connection"
    assert info.value.facts == {"endpoint": f"http://127.0.0.1:{port}", "cause": "refused", "mirror": True}
    # A mirror is already set: the advice is to check it, not to set one.
    assert "hf-mirror.com" not in info.value.hint and "address" in info.value.hint


@pytest.mark.parametrize("text, cause", [
    ("[Errno -2] Name or service not known", "dns"),
    ("[Errno -3] Temporary failure in name resolution", "dns"),
    ("[Errno 111] Connection refused", "refused"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "tls"),
    ("[Errno 101] Network is unreachable", "unreachable"),
    ("something else entirely", "other"),
])
def test_network_failures_are_reduced_to_a_cause(text: str, cause: str) -> None:
    import httpx2

    try:
        try:
            raise OSError(text)
        except OSError as inner:
            raise httpx2.ConnectError("wrapped") from inner
    except httpx2.ConnectError as exc:
        assert download.network_cause(exc) == cause
        assert download.CAUSE_WORDS[cause]


def test_hf_hub_offline_refuses_before_any_request(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Offline, match="offline mode"):
        run(download.pull(ONE_REPO, endpoint=hub.endpoint))
    assert hub.log == []


def test_endpoint_comes_from_argument_then_setting_then_hf_endpoint(hub: FakeHub, monkeypatch) -> None:
    assert download.hub_endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint + "/")
    assert download.hub_endpoint() == hub.endpoint
    job = download.pull(ONE_REPO)  # reaches the loopback hub through HF_ENDPOINT alone
    run(job)
    assert job.model is not None
    download.set_hub_endpoint("https://hf-mirror.com")
    assert download.hub_endpoint() == "https://hf-mirror.com"
    assert download.hub_endpoint("http://other:8080") == "http://other:8080"
    with pytest.raises(DownloadError):
        download.set_hub_endpoint("ftp://nope")


def test_gated_repo_needs_the_token_setting(fake_hub: FakeHub, tiny_r1: Path) -> None:
    fake_hub.add_repo("org/gated-GGUF", {ONE_FILE: tiny_r1}, token="hf_secret")
    with pytest.raises(DownloadError, match="gated"):
        run(download.pull("org/gated-GGUF", endpoint=fake_hub.endpoint))
    download.set_hub_token("hf_secret")
    job = download.pull("org/gated-GGUF", endpoint=fake_hub.endpoint)
    run(job)
    assert sha256(Path(job.model.path)) == sha256(tiny_r1)
    assert all(e.authorization for e in fake_hub.requests(server="hub") if e.status == 200 or e.status == 302)
    assert not any(e.authorization for e in fake_hub.requests(server="cdn")), "the token stays on the hub"


def test_a_login_for_the_hub_is_not_sent_to_a_mirror(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_users_own_login")
    assert download.hub_token(endpoint="https://huggingface.co") is None  # huggingface_hub may use it
    assert download.hub_token(endpoint=hub.endpoint) is False
    run(download.pull(ONE_REPO, endpoint=hub.endpoint))
    assert hub.log and not any(e.authorization for e in hub.log)
    download.set_hub_token("hf_for_this_mirror")
    assert download.hub_token(endpoint=hub.endpoint) == "hf_for_this_mirror"


def test_missing_repo_file_and_quant_are_clear(hub: FakeHub) -> None:
    with pytest.raises(ModelNotFound, match="no model repo nobody/nothing"):
        run(download.pull("nobody/nothing", endpoint=hub.endpoint))
    with pytest.raises(ModelNotFound, match="has no Q2_K file .it has: Q8_0"):
        run(download.pull(f"{ONE_REPO}:Q2_K", endpoint=hub.endpoint))
    with pytest.raises(ModelNotFound, match="has no file nope.gguf"):
        run(download.pull(ONE_REPO, endpoint=hub.endpoint, filename="nope.gguf"))
    with pytest.raises(ModelNotFound, match="no such branch"):
        run(download.pull(ONE_REPO, endpoint=hub.endpoint, revision="v9"))


# ---------------------------------------------------------------------------------------
# Choosing files.


def _listing(*names: str) -> download.RepoListing:
    files = [download.RemoteFile(n, 10, "0" * 64) for n in names]
    return download.RepoListing("o/r", "main", "c" * 40, files, "https://huggingface.co")


def test_choose_files_by_quant_split_and_default() -> None:
    listing = _listing("m-Q4_K_M.gguf", "m-Q8_0.gguf", "m-Q6_K-00001-of-00002.gguf", "m-Q6_K-00002-of-00002.gguf",
                       "mmproj-m-f16.gguf", "README.md")
    assert [f.name for f in download.choose_files(listing)] == ["m-Q4_K_M.gguf"]
    assert [f.name for f in download.choose_files(listing, quant="q8_0")] == ["m-Q8_0.gguf"]
    assert [f.name for f in download.choose_files(listing, quant="Q6_K")] == [
        "m-Q6_K-00001-of-00002.gguf", "m-Q6_K-00002-of-00002.gguf"]
    assert [f.name for f in download.choose_files(listing, filename="m-Q6_K-00001-of-00002.gguf")] == [
        "m-Q6_K-00001-of-00002.gguf", "m-Q6_K-00002-of-00002.gguf"]
    assert set(listing.quants()) == {"Q4_K_M", "Q8_0", "Q6_K"}
    with pytest.raises(DownloadError, match="part 2 of 2 is missing"):
        download.choose_files(_listing("x-Q4_0-00001-of-00002.gguf"), quant="Q4_0")
    with pytest.raises(ModelNotFound) as info:
        download.choose_files(_listing("m-F16.gguf", "m-Q8_0.gguf"), quant="Q4_K_M")
    assert "r1desk pull o/r:F16" in info.value.hint and "--to Q4_K_M" in info.value.hint
    nested = _listing("Q4_K_M/m-Q4_K_M-00001-of-00002.gguf", "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf")
    assert len(download.choose_files(nested, quant="Q4_K_M")) == 2
    assert download.choose_files(_listing("only.gguf"))[0].name == "only.gguf"


def test_parse_spec() -> None:
    assert download.parse_spec("unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF:q4_k_m") == (
        "unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF", "Q4_K_M")
    assert download.parse_spec("https://huggingface.co/org/m-GGUF") == ("org/m-GGUF", None)
    assert download.parse_spec("hf.co/org/m-GGUF:Q8_0") == ("org/m-GGUF", "Q8_0")
    assert download.parse_spec("https://hf-mirror.com/org/m-GGUF/tree/main") == ("org/m-GGUF", None)
    for bad in ("../x", "org/../x", "a/b/c", "", "org/x y"):
        with pytest.raises(DownloadError):
            download.parse_spec(bad)


# ---------------------------------------------------------------------------------------
# The command line.


def test_cli_pull_shows_progress_and_registers(hub: FakeHub) -> None:
    result = CliRunner().invoke(cli, ["pull", f"{SPLIT_REPO}:Q8_0", "--endpoint", hub.endpoint])
    assert result.exit_code == 0, result.output
    assert "100.0%" in result.output and "Ready: tiny-r1-Q8_0" in result.output
    assert "r1desk chat tiny-r1-Q8_0" in result.output
    listed = CliRunner().invoke(cli, ["models"])
    assert "tiny-r1-Q8_0" in listed.output and "hub" in listed.output


def test_cli_pull_without_quant_says_where_the_choice_came_from(hub: FakeHub) -> None:
    result = CliRunner().invoke(cli, ["pull", ONE_REPO, "--endpoint", hub.endpoint])
    assert result.exit_code == 0, result.output
    assert "Q4_K_M" in result.output  # says what it falls back to
    assert "Ready: tiny-r1-Q8_0" in result.output  # the repo's only GGUF


def test_cli_pull_takes_the_recommendation_for_this_machine(fake_hub: FakeHub, tiny_r1: Path) -> None:
    from r1desk.cli.models import recommended_quant
    from r1desk.engine.models.catalog import load

    repo = load().models[0].repo
    quant, filename, note = recommended_quant(repo)
    assert quant and filename, note
    fake_hub.add_repo(repo, {filename: tiny_r1, "other-Q2_K.gguf": tiny_r1})
    result = CliRunner().invoke(cli, ["pull", repo, "--endpoint", fake_hub.endpoint])
    assert result.exit_code == 0, result.output
    assert f"{quant} is the recommended quantisation" in result.output
    assert [e.file for e in fake_hub.requests(server="cdn")] == [filename]


def test_cli_errors_are_one_line(fake_hub: FakeHub) -> None:
    result = CliRunner().invoke(cli, ["pull", "../etc", "--endpoint", fake_hub.endpoint])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "not a model repo name" in errors[0]


# ---------------------------------------------------------------------------------------
# Catalog ids: `r1desk pull deepseek-r1-distill-qwen-7b` as `catalog` lists it.

CATALOG_ID = "deepseek-r1-distill-qwen-7b"
CPU_16GB = {"name": "cpu-16", "ram_total": "16 GiB", "ram_available": "14 GiB",
            "cpu": {"name": "Test CPU", "physical_cores": 8, "logical_cores": 16, "flags": ["avx2"]}}


@pytest.fixture
def described_machine(monkeypatch: pytest.MonkeyPatch):
    """Recommendations for a described 16 GB CPU machine, whatever this one is."""
    from r1desk.engine.hardware import probe

    hardware = probe.Hardware.from_dict(CPU_16GB)
    monkeypatch.setattr(probe, "detect", lambda *a, **k: hardware)
    return hardware


def test_parse_spec_takes_catalog_ids_and_refuses_other_bare_names() -> None:
    from r1desk.engine.models.catalog import load

    repo = load().get(CATALOG_ID).repo
    assert download.parse_spec(CATALOG_ID) == (repo, None)
    assert download.parse_spec(f"{CATALOG_ID}:q8_0") == (repo, "Q8_0")
    assert download.parse_spec("DeepSeek-R1-Distill-Qwen-7B") == (repo, None)  # ids in any case
    with pytest.raises(ModelNotFound, match=f"did you mean {CATALOG_ID}") as typo:
        download.parse_spec("deepseek-r1-distil-qwen-7b:Q4_K_M")
    assert "r1desk catalog" in typo.value.hint and "owner/name" in typo.value.hint
    with pytest.raises(ModelNotFound, match="'foo' is not a model in r1desk's catalog"):
        download.parse_spec("foo")
    # A repo name typed without its owner points at the catalog model it belongs to.
    with pytest.raises(ModelNotFound, match=f"did you mean {CATALOG_ID}"):
        download.parse_spec("DeepSeek-R1-Distill-Qwen-7B-GGUF")


def test_cli_pull_of_a_catalog_id_takes_the_quant_recommended_for_this_machine(
        fake_hub: FakeHub, tiny_r1: Path, described_machine) -> None:
    from r1desk.cli.models import recommended_quant
    from r1desk.engine.models.catalog import load

    model = load().get(CATALOG_ID)
    quant, filename, _ = recommended_quant(model.repo)
    assert quant and filename and quant in filename
    other = model.quant("Q2_K").names[0]
    fake_hub.add_repo(model.repo, {filename: tiny_r1, other: tiny_r1})
    result = CliRunner().invoke(cli, ["pull", CATALOG_ID, "--endpoint", fake_hub.endpoint])
    assert result.exit_code == 0, result.output
    assert f"{CATALOG_ID} is {model.repo} in r1desk's catalog" in result.output
    assert f"{quant} is the recommended quantisation for this machine" in result.output
    assert [e.file for e in fake_hub.requests(server="cdn")] == [filename]
    assert "Ready:" in result.output


def test_cli_pull_of_a_catalog_id_with_a_quant_takes_that_quant(fake_hub: FakeHub, tiny_r1: Path) -> None:
    from r1desk.engine.models.catalog import load

    model = load().get(CATALOG_ID)
    wanted, other = model.quant("Q8_0").names[0], model.quant("Q4_K_M").names[0]
    fake_hub.add_repo(model.repo, {wanted: tiny_r1, other: tiny_r1})
    result = CliRunner().invoke(cli, ["pull", f"{CATALOG_ID}:q8_0", "--endpoint", fake_hub.endpoint])
    assert result.exit_code == 0, result.output
    assert [e.file for e in fake_hub.requests(server="cdn")] == [wanted]


@pytest.mark.parametrize("name", ["deepseek-r1-distil-qwen-7b", "foo", "qwen3:Q4_K_M"])
def test_cli_pull_of_an_unknown_bare_name_is_refused_without_touching_the_network(
        fake_hub: FakeHub, name: str) -> None:
    result = CliRunner().invoke(cli, ["pull", name, "--endpoint", fake_hub.endpoint])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "is not a model in r1desk's catalog" in errors[0]
    if name.startswith("deepseek"):
        assert f"did you mean {CATALOG_ID}" in errors[0]
    if name.startswith("qwen3"):
        assert "did you mean qwen3-" in errors[0]
    assert fake_hub.requests() == [], "nothing was asked of the hub or its CDN"
