"""r1desk as a user installs it: the wheel into a fresh virtual environment, run from outside the
checkout with an empty HOME and no PYTHONPATH: the command line, a chat with a real model (the
model process starts from the installed package) and the app, offscreen, for a few seconds.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
PARIS = "What is the capital of France? Answer in one word."


def llama_wheel() -> Path:
    """The llama-cpp-python wheel installer/setup.sh compiled (and cached) for this machine."""
    given = os.environ.get("R1DESK_LLAMA_WHEEL")
    if given:
        return Path(given)
    from tests.support.models import REAL_ENVIRON  # each test has a home of its own; the cache is the real one

    version = metadata.version("llama-cpp-python")
    cache = Path(REAL_ENVIRON.get("XDG_CACHE_HOME") or Path(REAL_ENVIRON.get("HOME", str(Path.home()))) / ".cache")
    found = sorted(glob.glob(str(cache / "r1desk-build" / "llama-cpp-python" / "*" / f"llama_cpp_python-{version}-*.whl")))
    if not found:
        pytest.skip("no compiled llama-cpp-python wheel: run installer/setup.sh test")
    return Path(found[0])


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("package")
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("r1desk-*.whl")
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), str(llama_wheel())],
                   check=True, capture_output=True, timeout=800)
    home = base / "home"
    home.mkdir()
    outside = base / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("R1DESK_", "XDG_", "PYTHON", "VIRTUAL_ENV", "HF_"))}
    env.update(HOME=str(home), HF_HUB_OFFLINE="1", QT_QPA_PLATFORM="offscreen")
    return {"wheel": wheel, "bin": env_dir / "bin", "home": home, "cwd": outside, "env": env}


def run(venv: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv["bin"] / "r1desk"), *args], cwd=venv["cwd"], env=venv["env"],
                          capture_output=True, text=True, timeout=timeout)


def test_the_wheel_holds_one_import_package_and_its_assets(venv) -> None:
    names = zipfile.ZipFile(venv["wheel"]).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"r1desk"}
    for asset in ("r1desk/assets/catalog.json", "r1desk/assets/styles/light.qss", "r1desk/assets/styles/dark.qss",
                  "r1desk/assets/icons/send.svg", "r1desk/assets/translations/r1desk_zh_CN.qm"):
        assert asset in names, asset
    assert not any(n.startswith(("tests/", "app/", "engine/")) for n in names)


def test_the_installed_command_line_works_from_anywhere(venv) -> None:
    hw = run(venv, "hw", "--json")
    assert hw.returncode == 0, hw.stderr
    build = json.loads(hw.stdout)["build"]
    assert "CPU" in build["backends"] and set(build["backends"]) <= {"CPU", "RPC"}  # RPC: see installer/setup.sh
    assert build["gpu_offload"] is False  # no GPU here, whatever llama.cpp says of RPC
    imported = subprocess.run([str(venv["bin"] / "python"), "-c", "import r1desk.engine, sys; print(r1desk.engine.__file__)"],
                              cwd=venv["cwd"], env=venv["env"], capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in imported and "site-packages" in imported


def test_a_one_shot_chat_from_the_installed_package(venv, smollm2) -> None:
    out = run(venv, "chat", str(smollm2), "-p", PARIS, "--temperature", "0", "--max-tokens", "20", "--ctx", "1024",
              "--json")
    assert out.returncode == 0, out.stderr
    assert "Paris" in json.loads(out.stdout)["answer"]
    # With HOME empty, the database lands in the platform's data folder under it.
    assert list(venv["home"].rglob("r1desk.db"))


def test_a_child_module_runs_through_the_entry_point(venv) -> None:
    """What a frozen bundle does: the app's own executable starts r1desk's child processes."""
    out = run(venv, "--r1desk-child", "r1desk.engine.hardware.probe", "--build")
    assert out.returncode == 0, out.stderr
    assert "CPU" in json.loads(out.stdout)["backends"]
    refused = run(venv, "--r1desk-child", "os", "x")
    assert refused.returncode != 0


def test_the_installed_app_starts(venv) -> None:
    proc = subprocess.Popen([str(venv["bin"] / "r1desk")], cwd=venv["cwd"], env=venv["env"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        log = None
        while time.monotonic() < deadline:
            logs = list(venv["home"].rglob("r1desk.log"))
            if logs and "r1desk started" in logs[0].read_text():
                log = logs[0]
                break
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        assert log is not None, "the app did not start"
        time.sleep(3)
        assert proc.poll() is None, proc.stdout.read()
        # The window asked llama.cpp about its build (first start) without loading it itself.
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libllama" not in maps and "libggml" not in maps
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "Traceback" not in output and "Traceback" not in log.read_text(), output
