"""llama.cpp's CPU kernels: which are loaded and from where, with the real libraries of this install.

The development build has one fixed CPU backend; the bundle's build (every variant, chosen at run
time) is checked where it runs, in tests/installer/test_bundle.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from r1desk.engine.hardware import kernels


def test_the_fixed_build_names_what_its_kernels_use() -> None:
    import llama_cpp

    cpu = kernels.cpu_kernels()
    assert cpu.variant == "" and cpu.choices == [] and not cpu.dynamic
    # The features come from the CPU backend itself: the same list llama.cpp prints.
    info = llama_cpp.llama_print_system_info().decode()
    assert cpu.features and all(f"{name.split('=')[0]} = " in info for name in cpu.features)
    assert Path(cpu.library).name.startswith("libggml-cpu") and Path(cpu.library).is_file()


def test_every_copy_of_libggml_has_the_cpu_backend() -> None:
    kernels.load_backends()
    kernels.load_backends()  # once is enough; again changes nothing
    copies = kernels._ggml_copies()
    if sys.platform.startswith("linux"):
        assert len(copies) == 2  # the wheel's libggml.so (llama-cpp-python's _ggml) and libllama's libggml.so.0
    assert all(lib.ggml_backend_reg_by_name(b"CPU") for lib in copies)


def test_variants_are_named_from_their_files(tmp_path: Path) -> None:
    prefix, suffix = ("ggml-cpu-", ".dll") if sys.platform == "win32" else ("libggml-cpu-", ".so")
    for name in ("haswell", "x64", "skylakex"):
        (tmp_path / f"{prefix}{name}{suffix}").write_bytes(b"")
    (tmp_path / f"{prefix.replace('cpu-', '')}rpc{suffix}").write_bytes(b"")  # another backend
    (tmp_path / "README").write_text("not a library")
    assert kernels.variants_in(tmp_path) == ["haswell", "skylakex", "x64"]
    assert kernels.variants_in(tmp_path / "missing") == []


def test_the_build_probe_reports_the_kernels() -> None:
    # What 'r1desk hw' shows: asked of a child process, as the app asks it.
    out = subprocess.run([sys.executable, "-m", "r1desk.engine.hardware.probe", "--build"], capture_output=True,
                         text=True, timeout=120, check=True)
    build = json.loads(out.stdout)
    assert build["cpu_variant"] == "" and build["cpu_variants"] == []
    assert build["cpu_features"] == kernels.cpu_kernels().features
