"""``r1desk adapters`` and ``r1desk chat --adapter`` as a user runs them: real processes, real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.adapters.lora_files import write_lora

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def r1desk(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", *args], capture_output=True, text=True, timeout=240)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1desk {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_import_list_show_export_rm(tmp_path: Path, tiny_r1: Path) -> None:
    src = write_lora(tmp_path / "support-style.gguf")
    out = r1desk("adapters", "import", str(src), "--base", str(tiny_r1), "--notes", "tone for replies").stdout
    assert "Imported support-style (qwen2, rank 4" in out
    listed = json.loads(r1desk("adapters", "list", "--json").stdout)
    assert [(a["name"], a["n_layer"], a["notes"]) for a in listed] == [("support-style", 2, "tone for replies")]
    shown = r1desk("adapters", "show", "support-style").stdout
    assert "Rank, alpha:    4, 8" in shown and "attn_q" in shown and listed[0]["sha256"] in shown
    r1desk("adapters", "export", "support-style", "-o", str(tmp_path / "back.gguf"))
    assert (tmp_path / "back.gguf").read_bytes() == src.read_bytes()
    # A refusal is one line, and the database keeps only what it had.
    bad = r1desk("adapters", "import", str(write_lora(tmp_path / "l.gguf", arch="llama")), "--base", str(tiny_r1),
                 check=False)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("Error:")]
    assert bad.returncode == 1 and len(errors) == 1 and "is for llama models" in errors[0]
    assert len(json.loads(r1desk("adapters", "list", "--json").stdout)) == 1
    assert "Removed support-style" in r1desk("adapters", "rm", "support-style").stdout
    missing = r1desk("adapters", "show", "support-style", check=False)
    assert missing.returncode == 1 and "no adapter named 'support-style'" in missing.stderr


def test_chat_with_an_adapter_records_it_and_a_bad_scale_is_refused(tmp_path: Path, tiny_r1: Path) -> None:
    r1desk("adapters", "import", str(write_lora(tmp_path / "style.gguf")), "--name", "style")
    base = json.loads(r1desk("chat", str(tiny_r1), "-p", "hi", "--ctx", "512", "--json").stdout)
    styled = json.loads(r1desk("chat", str(tiny_r1), "-p", "hi", "--ctx", "512", "--json", "--adapter",
                               "style:1.5").stdout)
    assert styled["answer"] != base["answer"]
    shown = json.loads(r1desk("history", "show", str(styled["conversation_id"]), "--json").stdout)
    reply = [m for m in shown["messages"] if m["role"] == "assistant"][-1]
    assert [(a["name"], a["scale"]) for a in reply["adapters"]] == [("style", 1.5)]
    assert shown["settings"]["adapters"] == [{"name": "style", "scale": 1.5}]
    # The conversation keeps its adapter on the next turn; "none" takes it off.
    again = json.loads(r1desk("chat", str(tiny_r1), "-p", "hi", "--ctx", "512", "--json", "--conversation",
                              str(styled["conversation_id"]), "--adapter", "none").stdout)
    assert again["answer"] == base["answer"]
    bad = r1desk("chat", str(tiny_r1), "-p", "hi", "--ctx", "512", "--adapter", "style:3", check=False)
    assert bad.returncode == 1 and "from 0 to 2" in bad.stderr
