"""The engine stays free of the GUI: the import-linter contract in pyproject.toml holds."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_never_imports_qt_or_app() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 broken" in proc.stdout


def test_engine_imports_without_qt_installed_paths() -> None:
    """Importing the CLI (what `r1desk chat` does) loads no Qt module."""
    code = "import sys, r1desk.cli, r1desk.engine.chat.service; print([m for m in sys.modules if m.startswith('PySide6')])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
