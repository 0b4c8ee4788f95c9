"""``r1desk convert hf`` as a user runs it: a real folder in, a library entry out, refusals in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.models import minilm_path

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def r1desk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r1desk.cli", *args], capture_output=True, text=True, timeout=240)


def test_convert_hf_adds_the_model_to_the_library(tmp_path: Path) -> None:
    out = tmp_path / "minilm.gguf"
    proc = r1desk("convert", "hf", str(minilm_path()), "-o", str(out), "--type", "q8_0")
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and f"Wrote {out}" in proc.stdout and "r1desk chat minilm" in proc.stdout
    assert "Converting all-MiniLM-L6-v2 to Q8_0" in proc.stderr  # the progress line
    models = json.loads(r1desk("models", "--json").stdout)
    [entry] = [m for m in models if m["path"] == str(out)]
    assert entry["origin"] == "converted" and entry["architecture"] == "bert" and entry["quant"] == "Q8_0"


def test_convert_hf_refuses_a_pickle_folder_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    proc = r1desk("convert", "hf", str(folder), "-o", str(tmp_path / "x.gguf"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1 and "pickle" in proc.stderr
    assert not (tmp_path / "x.gguf").exists()
