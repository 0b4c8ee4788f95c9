"""llama.cpp's CPU kernels: load the ones this CPU can run, and say which were chosen.

A bundle runs on other people's CPUs, so its llama.cpp is built with ggml's dynamic backends
(``GGML_BACKEND_DL``, ``GGML_CPU_ALL_VARIANTS``): one CPU backend library per instruction-set
level (x64, sse42, sandybridge, haswell, skylakex, icelake, zen4, sapphirerapids, ...), each with
a score function that says whether this CPU can run it. ggml loads the best one, so an old CPU
gets kernels it can execute instead of an illegal-instruction crash, and a new one gets AVX-512.

Such a build registers no backend until one is loaded, and by default ggml looks for the
libraries next to the executable and in the current folder: for Python that is the
interpreter's folder, and the current folder is wherever the user happens to be. So the
process that loads llama.cpp calls ``load_backends()`` first, which loads them from the folder
that holds them: ``llama_cpp/lib`` inside a bundle, the wheel's top-level ``bin`` folder in an
installed wheel. A build with one fixed CPU backend (the development build) has it registered
already, and this does nothing.

A wheel holds ``libggml.so`` and ``libggml.so.0`` as two files: libllama uses the second (its
soname), llama-cpp-python's ``_ggml`` module loads the first, and each copy keeps its own list
of backends. So the backends are loaded into every copy in the process (the bundle keeps one
file, so one copy).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1desk.engine.errors import ModelLoadFailed
from r1desk.engine.hardware import ggml

_loaded = False


@dataclass
class CpuKernels:
    """The CPU backend llama.cpp uses in this process."""

    variant: str  # "haswell", "skylakex", ...; "" for a build with one fixed CPU backend
    features: list[str] = field(default_factory=list)  # what its kernels were compiled for: AVX2, FMA, ...
    library: str = ""  # the file they came from
    choices: list[str] = field(default_factory=list)  # every variant the build ships

    @property
    def dynamic(self) -> bool:
        return bool(self.choices)


def _prototypes(lib: Any) -> Any:
    return ggml.bind(lib, ("ggml_backend_reg_count", "ggml_backend_reg_by_name", "ggml_backend_reg_get_proc_address",
                           "ggml_backend_load_all_from_path"))


def _ggml_copies() -> list[Any]:
    """Every copy of libggml in this process: libllama's own first, then ``_ggml``'s if it is another file.

    libllama's is reached through libllama itself: a symbol looked up in its handle resolves in
    the libraries it links to (not on Windows, where a wheel holds one ggml.dll anyway).
    """
    import llama_cpp  # noqa: F401 - loads libllama and, through it, libggml and libggml-base
    from llama_cpp import _ggml
    from llama_cpp import llama_cpp as bindings

    copies = []
    for lib in (bindings._lib, _ggml.libggml):
        try:
            address = ctypes.cast(lib.ggml_backend_reg_by_name, ctypes.c_void_p).value
        except AttributeError:
            continue
        if all(ctypes.cast(c.ggml_backend_reg_by_name, ctypes.c_void_p).value != address for c in copies):
            copies.append(lib)
    return [_prototypes(lib) for lib in copies]


def library_dir() -> Path:
    """The folder of llama.cpp's libraries."""
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def backends_dir() -> Path:
    """The folder of a dynamic-backend build's backends: llama.cpp's own folder in a bundle, the
    top-level ``bin`` folder an installed wheel puts them in, else llama.cpp's own folder."""
    own = library_dir()
    for folder in (own, own.parent.parent / "bin"):
        if variants_in(folder):
            return folder
    return own


def _prefix() -> str:
    return "ggml-cpu-" if sys.platform == "win32" else "libggml-cpu-"


def _suffix() -> str:
    return ".dll" if sys.platform == "win32" else ".so"


def variants_in(folder: Path) -> list[str]:
    """The CPU variants whose libraries are in ``folder``, by name."""
    prefix, suffix = _prefix(), _suffix()
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return []
    return [n[len(prefix):-len(suffix)] for n in names if n.startswith(prefix) and n.endswith(suffix)]


def load_backends() -> None:
    """Load llama.cpp's dynamic backends from their folder, once, before any model loads.

    Raises ModelLoadFailed when the build has dynamic backends but none of its CPU variants
    loads on this machine (a damaged install, or a CPU older than every variant).
    """
    global _loaded
    if _loaded:
        return
    folder = backends_dir()
    for lib in _ggml_copies():
        if lib.ggml_backend_reg_by_name(b"CPU"):
            continue  # one fixed CPU backend, built in, or loaded already
        lib.ggml_backend_load_all_from_path(os.fsencode(folder))
        if not lib.ggml_backend_reg_by_name(b"CPU"):
            found = variants_in(folder)
            what = f"none of its CPU kernels ({', '.join(found)})" if found else "no CPU kernels"
            raise ModelLoadFailed(f"llama.cpp found {what} in {folder} that this CPU can run; "
                                  "reinstall r1desk", facts={"code": "no-cpu-kernels", "folder": str(folder)})
    _loaded = True


class _Feature(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]


def cpu_kernels() -> CpuKernels:
    """Which CPU backend this process uses (after ``load_backends()``), from the library itself.

    The variant is named by the file its code was loaded from: ggml gives no other name for it.
    """
    load_backends()
    lib = _ggml_copies()[0]  # libllama's own
    reg = lib.ggml_backend_reg_by_name(b"CPU")
    get_features = lib.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_get_features")
    features: list[str] = []
    library = ""
    if get_features:
        read = ctypes.CFUNCTYPE(ctypes.POINTER(_Feature), ctypes.c_void_p)(get_features)
        table = read(reg)
        i = 0
        while table and table[i].name:
            name, value = table[i].name.decode(errors="replace"), (table[i].value or b"").decode(errors="replace")
            features.append(name if value == "1" else f"{name}={value}")
            i += 1
        library = _file_of(get_features)
    choices = variants_in(backends_dir())
    variant = ""
    stem = Path(library).name
    if choices and stem.startswith(_prefix()) and stem.endswith(_suffix()):
        variant = stem[len(_prefix()):-len(_suffix())]
    return CpuKernels(variant=variant, features=features, library=library, choices=choices)


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _file_of(address: int) -> str:
    """The shared library that holds the code at ``address``."""
    if sys.platform == "win32":
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        module = ctypes.c_void_p()
        from_address, unchanged_refcount = 0x4, 0x2
        if not kernel32.GetModuleHandleExW(from_address | unchanged_refcount, ctypes.c_void_p(address),
                                           ctypes.byref(module)):
            return ""
        buffer = ctypes.create_unicode_buffer(32768)
        n = kernel32.GetModuleFileNameW(module, buffer, len(buffer))
        return buffer.value[:n] if n else ""
    libc = ctypes.CDLL(None)
    libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not libc.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return ""
    return os.fsdecode(info.dli_fname)
