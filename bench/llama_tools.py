"""llama.cpp's own tools (``llama-bench``), built from the source of the installed bindings.

The benchmarks compare r1desk against llama.cpp through the same build, so the tool is compiled
from the llama-cpp-python sdist of the installed version, with the flags ``installer/setup.sh``
uses for the wheel (``R1DESK_CMAKE_ARGS`` replaces them, as there), and cached by version and
flags next to the wheel:

    .venv/bin/python bench/llama_tools.py          # build (once) and print the path
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DEFAULT_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"


def cmake_args() -> str:
    return os.environ.get("R1DESK_CMAKE_ARGS") or DEFAULT_CMAKE_ARGS


def build_key(version: str, args: str) -> str:
    return hashlib.sha256(f"{version}|{args}|{platform.machine()}".encode()).hexdigest()[:16]


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "r1desk-build" / "llama-bench"


def llama_bench(log=print) -> tuple[Path, dict]:
    """The path of llama-bench for the installed bindings, building it if needed, and its build facts."""
    version = importlib.metadata.version("llama-cpp-python")
    args = cmake_args()
    out = cache_dir() / build_key(version, args)
    exe = out / "llama-bench"
    facts = {"llama_cpp_python": version, "cmake_args": args}
    if exe.exists():
        facts.update(_vendor_commit(out))
        return exe, facts
    log(f"building llama-bench from llama-cpp-python {version} ({args}); this takes a few minutes once")
    with tempfile.TemporaryDirectory(prefix="r1desk-llama-bench-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={version}", "-d", tmp], check=True)
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        src = next(Path(tmp).glob("llama_cpp_python-*/vendor/llama.cpp"))
        build = Path(tmp) / "build"
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 2)
        subprocess.run(["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                        "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_SERVER=OFF",
                        *args.split()], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", str(build), "--target", "llama-bench", "-j", jobs], check=True,
                       stdout=subprocess.DEVNULL)
        out.mkdir(parents=True, exist_ok=True)
        changelog = Path(tmp).glob("llama_cpp_python-*/CHANGELOG.md")
        commit = ""
        for path in changelog:
            for line in path.read_text(errors="replace").splitlines()[:40]:
                if "llama.cpp" in line and "@" in line:
                    commit = line.split("@")[-1].strip(" )`")
                    break
        (out / "vendor-commit").write_text(commit)
        shutil.copy2(next(build.glob("bin/llama-bench")), exe)
    facts.update(_vendor_commit(out))
    return exe, facts


def _vendor_commit(out: Path) -> dict:
    path = out / "vendor-commit"
    return {"llama_cpp_commit": path.read_text().strip()} if path.exists() else {}


if __name__ == "__main__":
    exe, facts = llama_bench(log=lambda s: print(s, file=sys.stderr))
    print(exe)
    print(facts, file=sys.stderr)
