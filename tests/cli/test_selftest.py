"""``r1desk --self-test`` from the development install: real processes, a real model, real failures named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def self_test(env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1desk.cli", "--self-test"], capture_output=True, text=True,
                          timeout=240, env=env)


def lines(out: str) -> dict[str, str]:
    """{check name: its line} from the report."""
    found = {}
    for line in out.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[0] in ("ok", "FAIL", "skip"):
            found[parts[1] if parts[1] != "data" else "data folder"] = line
    return found


def test_passes_here_and_says_what_it_checked(r1desk_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = self_test(env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = lines(done.stdout)
    assert set(report) >= {"data folder", "database", "llama.cpp", "hardware", "Qt", "model"}, done.stdout
    assert str(r1desk_home) in report["data folder"]
    assert "FTS5" in report["database"] and "sqlite-vec" in report["database"]
    # The development build's CPU kernels are one fixed set: the report says what they use.
    assert "llama-cpp-python 0.3.36" in report["llama.cpp"] and "AVX" in report["llama.cpp"]
    assert report["model"].startswith("  skip") and "no model in the library" in report["model"]
    assert done.stdout.rstrip().endswith("Self-test passed.")
    assert (r1desk_home / "r1desk.db").is_file()  # the app's own database, opened as the app opens it


def test_a_model_in_the_library_answers(r1desk_home: Path, smollm2: Path) -> None:
    from r1desk.engine.models.library import Library

    Library().register(smollm2, origin="local")
    done = self_test()
    assert done.returncode == 0, done.stdout + done.stderr
    model = lines(done.stdout)["model"]
    assert model.startswith("  ok") and smollm2.stem in model and " 8 tokens in " in model, model


def test_an_unwritable_data_folder_fails_by_name(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    done = self_test(dict(os.environ, R1DESK_HOME=str(blocker / "r1desk")))
    assert done.returncode == 1
    report = lines(done.stdout)
    assert report["data folder"].startswith("  FAIL") and str(blocker) in report["data folder"]
    assert "Self-test FAILED: data folder" in done.stdout
    assert report["llama.cpp"].startswith("  ok") and report["Qt"].startswith("  ok")  # the rest still ran


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's X11 platform")
def test_a_display_qt_cannot_reach_fails_with_qts_reason() -> None:
    done = self_test(dict(os.environ, DISPLAY=":987"))  # no X server there
    assert done.returncode == 1
    xcb = next(line for line in done.stdout.splitlines() if "Qt (xcb)" in line)
    assert xcb.startswith("  FAIL") and ("xcb" in xcb or "display" in xcb.lower()), xcb
    offscreen = next(line for line in done.stdout.splitlines() if "Qt (offscreen)" in line)
    assert offscreen.startswith("  ok")
    assert "Self-test FAILED: Qt (xcb)" in done.stdout
