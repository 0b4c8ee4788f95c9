"""The built app folder (dist/r1desk, made by installer/build) as a user runs it.

From a folder outside the checkout, with an empty home folder, no Python environment and no
network: the self-test, ``r1desk hw`` naming the CPU kernels chosen at run time, a chat with a
real model, the quantiser and the documents worker (child processes of a frozen executable),
the model process ending when the app is killed, the window running offscreen, and what the
folder holds and leaves out. Skipped when there is no bundle; CI builds one first (.ci/run).
``R1DESK_BUNDLE`` names another app folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.models import REAL_ENVIRON

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = Path(REAL_ENVIRON.get("R1DESK_BUNDLE") or ROOT / "dist" / "r1desk")
EXE = BUNDLE / ("r1desk-cli.exe" if sys.platform == "win32" else "r1desk")
INSIDE = BUNDLE / "_internal"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.skipif(not EXE.exists(), reason=f"no app bundle at {BUNDLE} (installer/build makes one)")]


@pytest.fixture
def user(tmp_path: Path) -> dict:
    """A user of the bundle: an empty home, a current folder elsewhere, only the system's PATH."""
    home = tmp_path / "home"
    cwd = tmp_path / "somewhere"
    home.mkdir()
    cwd.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HF_HUB_OFFLINE": "1",
           "QT_QPA_PLATFORM": "offscreen"}
    for key in ("TMPDIR", "SYSTEMROOT", "LOCALAPPDATA", "APPDATA", "USERPROFILE"):  # what Windows needs
        if key in os.environ:
            env[key] = os.environ[key]
    return {"home": home, "cwd": cwd, "env": env, "data": home / ".local" / "share" / "r1desk"}


def run(user: dict, *args: str, timeout: float = 300, check: bool = True, **env) -> subprocess.CompletedProcess:
    done = subprocess.run([str(EXE), *args], cwd=user["cwd"], env={**user["env"], **env}, capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"r1desk {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def test_the_self_test_passes_outside_the_checkout(user: dict) -> None:
    done = run(user, "--self-test")
    assert "(bundle;" in done.stdout.splitlines()[0], done.stdout
    assert str(user["data"]) in done.stdout  # the platform's own folder, under the empty home
    llama = next(line for line in done.stdout.splitlines() if " llama.cpp " in line)
    assert re.search(r"CPU kernels \w+ \(.*\) of \d+ variants", llama), llama
    qt = next(line for line in done.stdout.splitlines() if "Qt (offscreen)" in line)
    assert "SVG icons" in qt and "Chinese translations" in qt and "QtPdf" in qt and "no QtPdf" not in qt, qt
    assert done.stdout.rstrip().endswith("Self-test passed.")


def test_hw_names_the_cpu_kernels_chosen_for_this_cpu(user: dict) -> None:
    build = json.loads(run(user, "hw", "--json").stdout)["build"]
    variant, variants = build["cpu_variant"], build["cpu_variants"]
    assert variant in variants and {"x64", "sse42", "haswell"} <= set(variants), build
    flags = json.loads(run(user, "hw", "--json").stdout)["cpu"]["flags"]
    if "avx2" in flags:  # a CPU that has AVX2 gets kernels that use it, not the portable ones
        assert "AVX2" in build["cpu_features"] and variant not in ("x64", "sse42", "sandybridge", "ivybridge")
    if "avx512f" not in flags:
        assert not any(f.startswith("AVX512") for f in build["cpu_features"])
    text = run(user, "hw").stdout
    assert f"CPU kernels: {variant} (" in text and f"from {len(variants)} variants" in text


def test_a_chat_and_the_model_check(user: dict, smollm2: Path) -> None:
    out = json.loads(run(user, "chat", str(smollm2), "-p", "hi", "--max-tokens", "8", "--json").stdout)
    assert out["answer"].strip() and out["stats"]["completion_tokens"] == 8
    (user["data"] / "models").mkdir(parents=True, exist_ok=True)
    os.symlink(smollm2, user["data"] / "models" / smollm2.name)
    run(user, "models", "scan")
    model = next(line for line in run(user, "--self-test", check=False).stdout.splitlines() if " model " in line)
    assert model.startswith("  ok") and smollm2.stem in model and "8 tokens" in model, model


def test_the_quantiser_runs_as_a_child_of_the_bundle(user: dict, tmp_path: Path) -> None:
    from tests.support.models import tiny_r1_f16_path

    f16 = tiny_r1_f16_path()
    out = tmp_path / "tiny-q8.gguf"
    run(user, "quantize", str(f16), "--to", "Q8_0", "-o", str(out))
    assert 0 < out.stat().st_size < f16.stat().st_size
    chat = json.loads(run(user, "chat", str(out), "-p", "hi", "--ctx", "512", "--json").stdout)
    assert chat["stats"]["completion_tokens"] > 0


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9")
def test_the_quantiser_dies_with_the_app(user: dict, smollm2: Path, tmp_path: Path) -> None:
    # One thread re-quantising to Q6_K takes several seconds: long enough to kill the app mid-way.
    app = subprocess.Popen([str(EXE), "quantize", str(smollm2), "--to", "Q6_K", "--allow-requantize", "--threads", "1",
                            "-o", str(tmp_path / "q6.gguf")], cwd=user["cwd"], env=user["env"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        quantiser = _child(app, "multiprocessing", timeout=60)
        os.kill(app.pid, signal.SIGKILL)
        app.wait(10)
        assert _ends(quantiser, 5), "the quantiser outlived the app"
        assert not (tmp_path / "q6.gguf").exists()  # it never finished
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)


def _ends(process: psutil.Process, timeout: float) -> bool:
    """Whether ``process`` exits within ``timeout`` (a zombie has exited: its parent is gone, nobody reaps it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _child(app: subprocess.Popen, marker: str, timeout: float) -> psutil.Process:
    """The first child process of ``app`` whose command line mentions ``marker``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert app.poll() is None, f"the app ended ({app.returncode}) before its {marker} child started"
        for child in psutil.Process(app.pid).children(recursive=True):
            try:
                if any(marker in part for part in child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.1)
    raise AssertionError(f"no {marker} child within {timeout} s")


def test_the_documents_worker_runs_as_a_child_of_the_bundle(user: dict, tmp_path: Path) -> None:
    if "index" not in run(user, "--help").stdout:
        pytest.skip("this r1desk has no documents index")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "kernels.md").write_text("# Kernels\n\nThe bundle picks its CPU kernels at run time.\n")
    summary = json.loads(run(user, "index", str(notes), "-c", "notes", "--no-embedding", "--json").stdout)
    assert summary["added"] == 1 and summary["problems"] == 0 and summary["chunks"] == 1, summary
    found = run(user, "search", "kernels", "-c", "notes", "--mode", "fts")
    assert "run time" in found.stdout, found.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9")
def test_the_model_process_dies_with_the_app(user: dict, smollm2: Path) -> None:
    app = subprocess.Popen([str(EXE), "serve", str(smollm2), "--port", str(_free_port())], cwd=user["cwd"],
                           env=user["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runner = _child(app, "r1desk.engine.inference.runner", timeout=120)
        # A frozen executable has no "python -m": the model process is the bundle's own executable.
        assert Path(runner.cmdline()[0]).resolve() == EXE.resolve() and "--r1desk-child" in runner.cmdline()
        os.kill(app.pid, signal.SIGKILL)
        app.wait(10)
        assert _ends(runner, 10), "the model process outlived the app"
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)


def test_a_model_split_over_an_rpc_worker_of_the_bundle(user: dict, smollm2: Path) -> None:
    # The worker loads its backends (RPC and the CPU variant) from the bundle, not from the current folder.
    port = _free_port()
    worker = subprocess.Popen([str(EXE), "rpc-server", "--port", str(port), "--threads", "1"], cwd=user["cwd"],
                              env=user["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            assert worker.poll() is None, worker.stderr.read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the RPC worker never listened"
                time.sleep(0.2)
        out = json.loads(run(user, "chat", str(smollm2), "-p", "hi", "--max-tokens", "4", "--ctx", "512",
                             "--rpc", f"127.0.0.1:{port}", "--json").stdout)
        assert out["stats"]["completion_tokens"] == 4
    finally:
        worker.kill()
        worker.wait(10)


def test_the_window_runs_offscreen_and_opens_the_first_run_screen(user: dict) -> None:
    app = subprocess.Popen([str(EXE)], cwd=user["cwd"], env=user["env"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)
        assert app.poll() is None, app.communicate()
    finally:
        app.terminate()
        _out, err = app.communicate(timeout=30)
    assert "Traceback" not in err and "Could not load the Qt platform plugin" not in err, err
    log = (user["data"] / "logs" / "r1desk.log").read_text()
    assert "r1desk started" in log, log


def test_the_folder_holds_what_the_app_uses_and_nothing_else() -> None:
    names = {p.relative_to(INSIDE).as_posix() for p in INSIDE.rglob("*")}
    llama = INSIDE / "llama_cpp" / "lib"
    variants = sorted(p.name for p in llama.iterdir() if p.name.startswith(("libggml-cpu-", "ggml-cpu-")))
    assert len(variants) >= 7, variants
    # One copy of each llama.cpp library: two copies of libggml would keep two lists of backends.
    real = [p.name for p in llama.iterdir() if p.name.startswith("libggml.so") and not p.is_symlink()]
    assert len(real) <= 1, real
    for kept in ("r1desk/assets/icons/r1desk.svg", "r1desk/assets/translations/r1desk_zh_CN.qm",
                 "r1desk/assets/catalog.json", "PySide6/Qt/translations/qtbase_zh_CN.qm"):
        assert kept in names, kept
    plugins = {p.relative_to(INSIDE / "PySide6" / "Qt" / "plugins").as_posix()
               for p in (INSIDE / "PySide6" / "Qt" / "plugins").rglob("*") if p.is_file()}
    if sys.platform.startswith("linux"):
        assert {"platforms/libqxcb.so", "platforms/libqoffscreen.so", "platforms/libqwayland.so",
                "imageformats/libqsvg.so", "iconengines/libqsvgicon.so"} <= plugins, plugins
    assert any("Pdf" in n for n in names), "QtPdf is missing"
    for left_out in ("WebEngine", "Qt6Quick", "Qt6Qml", "Qt63D", "Designer", "torch", "transformers",
                     "pytest", "r1desk/assets/translations/r1desk_zh_CN.ts", "tests/"):
        assert not [n for n in names if left_out in n], left_out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd")
def test_every_library_in_the_folder_finds_what_it_links_to() -> None:
    env = dict(os.environ, LD_LIBRARY_PATH=str(INSIDE))  # as the executable's loader sets it
    missing = []
    for path in sorted(INSIDE.rglob("*.so*")):
        if path.is_symlink() or not path.is_file():
            continue
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env).stdout
        missing += [f"{path.relative_to(INSIDE)}: {line.strip()}" for line in out.splitlines() if "not found" in line]
    assert missing == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux desktop entry")
def test_install_and_uninstall_for_one_user(user: dict) -> None:
    env = {**user["env"], "XDG_DATA_HOME": str(user["home"] / ".local" / "share")}
    subprocess.run([str(BUNDLE / "install.sh")], env=env, check=True, capture_output=True, text=True)
    target = user["home"] / ".local" / "opt" / "r1desk"
    entry = (user["home"] / ".local" / "share" / "applications" / "r1desk.desktop").read_text()
    assert f'Exec="{target}/r1desk"' in entry and "Icon=r1desk" in entry and "StartupWMClass=r1desk" in entry
    assert (user["home"] / ".local" / "share" / "icons" / "hicolor" / "scalable" / "apps" / "r1desk.svg").is_file()
    launcher = user["home"] / ".local" / "bin" / "r1desk"
    done = subprocess.run([str(launcher), "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "r1desk" in done.stdout, done.stderr
    (user["data"]).mkdir(parents=True, exist_ok=True)
    (user["data"] / "keep.txt").write_text("the user's")
    subprocess.run([str(target / "install.sh"), "--uninstall"], env=env, check=True, capture_output=True)
    assert not target.exists() and not launcher.exists()
    assert not (user["home"] / ".local" / "share" / "applications" / "r1desk.desktop").exists()
    assert (user["data"] / "keep.txt").read_text() == "the user's"  # data stays unless the user deletes it
