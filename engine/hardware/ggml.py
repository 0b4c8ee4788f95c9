"""ggml's backend registry as C functions: one table of their prototypes for every caller.

The bindings expose only part of ggml's registry, so hardware detection (which backends and
devices there are), CPU kernel selection (which variant loaded) and RPC (remote devices) call
it through ctypes, on whichever copy of libggml they need (``_ggml.libggml``, or libllama's,
through which its own libggml resolves). ``bind(lib, names)`` gives those functions their
prototypes on that library object.
"""

from __future__ import annotations

import ctypes
from typing import Any

_VOID, _SIZE, _TEXT = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p

# name: (return type, argument types), from ggml-backend.h
PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "ggml_backend_load_all": (None, []),
    "ggml_backend_load_all_from_path": (None, [_TEXT]),
    "ggml_backend_register": (None, [_VOID]),
    "ggml_backend_reg_count": (_SIZE, []),
    "ggml_backend_reg_get": (_VOID, [_SIZE]),
    "ggml_backend_reg_by_name": (_VOID, [_TEXT]),
    "ggml_backend_reg_name": (_TEXT, [_VOID]),
    "ggml_backend_reg_get_proc_address": (_VOID, [_VOID, _TEXT]),
    "ggml_backend_reg_dev_count": (_SIZE, [_VOID]),
    "ggml_backend_reg_dev_get": (_VOID, [_VOID, _SIZE]),
    "ggml_backend_dev_count": (_SIZE, []),
    "ggml_backend_dev_get": (_VOID, [_SIZE]),
    "ggml_backend_dev_by_type": (_VOID, [ctypes.c_int]),
    "ggml_backend_dev_name": (_TEXT, [_VOID]),
    "ggml_backend_dev_description": (_TEXT, [_VOID]),
    "ggml_backend_dev_type": (ctypes.c_int, [_VOID]),
    "ggml_backend_dev_memory": (None, [_VOID, ctypes.POINTER(_SIZE), ctypes.POINTER(_SIZE)]),
}

# ggml_backend_dev_type
DEVICE_TYPES = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}
DEVICE_CPU, DEVICE_GPU = 0, 1


def bind(lib: Any, names: list[str] | tuple[str, ...]) -> Any:
    """``lib`` with the named registry functions given their prototypes (AttributeError: one is missing)."""
    for name in names:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = PROTOTYPES[name]
    return lib
