"""Byte sizes in words: one way, everywhere (binary units, named as Windows names them: 1 GB = 1024³ bytes)."""

from __future__ import annotations

_UNITS = ("B", "KB", "MB", "GB", "TB")


def human_bytes(n: float | None) -> str:
    """``1536`` -> ``"1.5 KB"``; ``None`` -> ``"-"``."""
    if n is None:
        return "-"
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
