"""``r1desk chat``: the default reply limit, and how far a long prompt has been read."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from r1desk.cli import chat as chat_cli
from r1desk.cli import cli
from r1desk.engine.chat.service import DEFAULT_MAX_TOKENS

from tests.engine.inference.test_runner import long_prompt

DRAGON = "Write a very long story about a dragon."


def test_help_shows_the_default_reply_limit_and_how_to_lift_it() -> None:
    out = CliRunner().invoke(cli, ["chat", "--help"], terminal_width=200)
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "--max-tokens" in text and f"[default: {DEFAULT_MAX_TOKENS};" in text
    assert "0: no limit" in text and "thinking is not counted" in text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smollm2_without_max_tokens_stops_at_the_default_with_a_note(smollm2: Path) -> None:
    """At temperature 0 SmolLM2 tells this story until the context is full; the default stops it."""
    proc = subprocess.run(
        [sys.executable, "-m", "r1desk.cli", "chat", str(smollm2), "-p", DRAGON, "--temperature", "0",
         "--ctx", "4096", "--json"], capture_output=True, text=True, timeout=840,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)["stats"]
    assert stats["completion_tokens"] == DEFAULT_MAX_TOKENS and stats["finish_reason"] == "length"
    assert stats["context_used"] < stats["n_ctx"]  # the limit stopped it, not the context
    note = f"the reply limit of {DEFAULT_MAX_TOKENS:,} tokens was reached"
    assert any(note in n for n in stats["notes"])
    assert any("--max-tokens" in n for n in stats["notes"])  # says how to raise it


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_long_prompt_says_how_long_it_took_to_read_when_stderr_is_not_a_terminal(
        smollm2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_cli, "PROMPT_PROGRESS_AFTER_SECONDS", 0.0)
    out = CliRunner().invoke(cli, ["chat", str(smollm2), "-p", long_prompt(60), "--temperature", "0",
                                   "--ctx", "4096", "--max-tokens", "4", "--json"])
    assert out.exit_code == 0, out.output
    stats = json.loads(out.stdout)["stats"]
    lines = [line for line in out.stderr.splitlines() if line.startswith("Read the prompt")]
    assert lines == [lines[0]] and f"{stats['prompt_tokens']:,} tokens in " in lines[0], out.stderr
    assert "\r" not in out.stderr  # no updating line when stderr is a file


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_progress_is_one_line_that_updates_then_goes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_cli, "PROMPT_PROGRESS_AFTER_SECONDS", 0.0)
    term = Terminal()
    line = chat_cli.PromptProgressLine(term)
    line.start()
    line.update(512, 5678)
    line.update(1024, 5678)
    line.end()
    shown = term.getvalue()
    assert shown.count("\r\033[K") == 3  # two updates in place, then the line is cleared
    assert "Reading the prompt… 512 / 5,678 tokens" in shown and "1,024 / 5,678" in shown
    assert shown.endswith("\r\033[K") and "\n" not in shown


def test_a_quick_prompt_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_cli, "PROMPT_PROGRESS_AFTER_SECONDS", 60.0)
    for stream in (Terminal(), io.StringIO()):
        line = chat_cli.PromptProgressLine(stream)
        line.start()
        line.update(512, 700)
        line.end()
        assert stream.getvalue() == ""


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_json_schema_constrains_the_answer_and_a_bad_schema_is_one_line(smollm2: Path, tmp_path: Path) -> None:
    import jsonschema

    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "population": {"type": "integer"},
                                               "capital": {"type": "boolean"}},
              "required": ["city", "population", "capital"], "additionalProperties": False}
    path = tmp_path / "city.schema.json"
    path.write_text(json.dumps(schema))
    proc = subprocess.run(
        [sys.executable, "-m", "r1desk.cli", "chat", str(smollm2), "-p", "Tell me about Paris.", "--temperature", "0",
         "--json-schema", str(path), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    jsonschema.validate(json.loads(json.loads(proc.stdout)["answer"]), schema)

    path.write_text(json.dumps({"type": "object", "not": {"required": ["x"]}}))
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", "chat", str(smollm2), "-p", "hi", "--json-schema", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "'not'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_reasoning_seconds_closes_the_thinking(tiny_r1: Path) -> None:
    from tests.support.models import tiny_r1_expected

    full, _ = tiny_r1_expected()
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", "chat", str(tiny_r1), "-p", "hi", "--json",
                           "--reasoning-seconds", "0.000001", "--max-tokens", "30", "--temperature", "0"],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["reasoning"] and len(out["reasoning"]) < len(full) and out["answer"]
    assert any("reasoning time budget" in n for n in out["stats"]["notes"])
