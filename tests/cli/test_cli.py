"""The ``r1desk`` command line as a user runs it: real processes, real models, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.models import tiny_r1_expected
from tests.support.terminal import SIGINT_AS_IN_A_TERMINAL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def r1desk(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "r1desk.cli", *args], capture_output=True, text=True, input=input, timeout=240,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"r1desk {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def test_chat_json_with_tiny_r1(tiny_r1: Path) -> None:
    out = json.loads(r1desk("chat", str(tiny_r1), "-p", "hi", "--ctx", "512", "--json").stdout)
    reasoning, answer = tiny_r1_expected()
    assert out["reasoning"] == reasoning and out["answer"] == answer
    assert out["stats"]["finish_reason"] == "stop" and out["conversation_id"] == 1
    # Continue the same conversation; then the history commands see both turns.
    out2 = json.loads(r1desk("chat", str(tiny_r1), "-p", "again", "--conversation", "1", "--json",
                             "--reasoning-budget", "3", "--ctx", "512").stdout)
    assert out2["conversation_id"] == 1 and out2["answer"] == answer and len(out2["reasoning"]) < len(reasoning)
    listed = json.loads(r1desk("history", "list", "--json").stdout)
    assert [(c["id"], c["message_count"], c["title"]) for c in listed] == [(1, 4, "hi")]
    shown = json.loads(r1desk("history", "show", "1", "--json").stdout)
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant", "user", "assistant"]
    hits = json.loads(r1desk("history", "search", "你好", "--json").stdout)
    assert {h["conversation_id"] for h in hits} == {1} and len(hits) == 2
    md = r1desk("history", "export", "1", "--format", "md").stdout
    assert md.startswith("# hi") and "<details><summary>Thinking</summary>" in md


def test_chat_text_output_shows_reasoning_apart(tiny_r1: Path) -> None:
    proc = r1desk("chat", str(tiny_r1), "-p", "hi", "--ctx", "512")
    reasoning, answer = tiny_r1_expected()
    assert "Thinking..." in proc.stdout and reasoning in proc.stdout
    assert proc.stdout.rstrip().endswith(answer)
    assert "tok/s" in proc.stderr


def test_chat_interactive_loop(smollm2: Path) -> None:
    proc = r1desk("chat", str(smollm2), "--temperature", "0", "--max-tokens", "20", "--ctx", "1024", "--json",
                  input="What is the capital of France? Answer in one word.\nAnd of Italy? Answer in one word.\n\n")
    replies = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(replies) == 2
    assert "Paris" in replies[0]["answer"]
    assert replies[0]["conversation_id"] == replies[1]["conversation_id"]
    assert replies[1]["stats"]["cached_tokens"] > 0


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["chat", "/no/such/model.gguf", "-p", "hi"], "no such"),
        (["history", "show", "42"], "conversation 42 does not exist"),
    ],
)
def test_errors_are_one_line_without_traceback(args: list[str], fragment: str) -> None:
    proc = r1desk(*args, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0]
    assert "Traceback" not in proc.stderr


def test_corrupt_model_error(tmp_path: Path, smollm2: Path) -> None:
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(smollm2.read_bytes()[:1_000_000])
    proc = r1desk("chat", str(bad), "-p", "hi", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "truncated" in proc.stderr and str(bad) in proc.stderr
    debug = r1desk("--debug", "chat", str(bad), "-p", "hi", check=False)
    assert "Traceback" in debug.stderr


def test_kill_9_during_generation_keeps_partial_reply(smollm2: Path, r1desk_home: Path) -> None:
    """SIGKILL the whole CLI mid-reply: earlier messages survive, the partial reply is marked interrupted."""
    first = json.loads(r1desk("chat", str(smollm2), "-p", "What is the capital of France? Answer in one word.",
                              "--temperature", "0", "--max-tokens", "20", "--ctx", "2048", "--json").stdout)
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1desk.cli", "chat", str(smollm2), "--conversation", str(first["conversation_id"]),
         "-p", "Write a very long story about a dragon.", "--temperature", "0", "--max-tokens", "1500",
         "--ctx", "2048"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    db_path = r1desk_home / "r1desk.db"
    deadline = time.monotonic() + 180
    partial = ""
    try:
        while time.monotonic() < deadline and len(partial) < 200:
            time.sleep(0.2)
            conn = sqlite3.connect(db_path)
            row = conn.execute("SELECT content, status FROM messages WHERE id = 4").fetchone()
            conn.close()
            if row:
                assert row[1] == "streaming"
                partial = row[0]
        assert len(partial) >= 200, "the reply was not saved while streaming"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)  # the model process dies with its parent
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    shown = json.loads(r1desk("history", "show", str(first["conversation_id"]), "--json").stdout)
    msgs = shown["messages"]
    assert [m["status"] for m in msgs] == ["complete", "complete", "complete", "interrupted"]
    assert msgs[1]["content"] == first["answer"]
    assert msgs[3]["content"].startswith(partial[:200])
    # No orphaned model process is left behind.
    out = subprocess.run(["pgrep", "-f", "r1desk.engine.inference.runner"], capture_output=True, text=True).stdout.split()
    leftovers = [pid for pid in out if int(pid) != os.getpid()]
    for pid in leftovers:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            assert str(r1desk_home).encode() not in fh.read()


def test_chat_says_when_it_reloads_the_model_and_why(tiny_r1: Path) -> None:
    """Kill the model process between two turns of the interactive loop: the second turn says so."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1desk.cli", "chat", str(tiny_r1), "--ctx", "512", "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        proc.stdin.write("hi\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())
        assert first["answer"] == tiny_r1_expected()[1]
        child = psutil.Process(proc.pid).children()
        assert len(child) == 1
        child[0].kill()  # the CLI reaps it; until then it is a zombie
        time.sleep(0.5)
        proc.stdin.write("again\n\n")
        proc.stdin.flush()
        second = json.loads(proc.stdout.readline())
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert second["answer"] == tiny_r1_expected()[1]
    assert "Reloading" in err and "the model process stopped" in err and "SIGKILL" in err, err


@pytest.mark.parametrize("args, message", [
    (["--ctx", "0"], "Invalid value for '--ctx'"),
    (["--ctx", "-5"], "Invalid value for '--ctx'"),
    (["--max-tokens", "-1"], "Invalid value for '--max-tokens'"),  # 0 is allowed: no limit
    (["--threads", "0"], "Invalid value for '--threads'"),
    (["-p", ""], "the message is empty"),
    (["-p", "   "], "the message is empty"),
])
def test_input_is_checked_at_the_door(tiny_r1: Path, r1desk_home: Path, args, message) -> None:
    out = r1desk("chat", str(tiny_r1), *(args if "-p" in args else [*args, "-p", "hi"]), check=False)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (r1desk_home / "r1desk.db").exists() or json.loads(r1desk("history", "list", "--json").stdout) == []


def test_a_folder_is_named_as_a_folder(tmp_path: Path) -> None:
    out = r1desk("chat", str(tmp_path), "-p", "hi", check=False)
    assert out.returncode == 1 and out.stderr.strip() == f"Error: {tmp_path}: is a folder, not a GGUF file"


def test_a_prompt_from_standard_input(tiny_r1: Path) -> None:
    out = json.loads(r1desk("chat", str(tiny_r1), "-p", "-", "--ctx", "512", "--json", input="a long\nmultiline prompt\n").stdout)
    shown = json.loads(r1desk("history", "show", str(out["conversation_id"]), "--json").stdout)
    assert shown["messages"][0]["content"] == "a long\nmultiline prompt\n"


def test_a_context_beyond_training_is_r1desks_own_note(smollm2: Path) -> None:
    out = r1desk("chat", str(smollm2), "-p", "hi", "--ctx", "16384", "--max-tokens", "3")
    assert "Note: the context (16,384 tokens) is longer than the 8,192 tokens this model was trained for" in out.stderr
    assert "llama_context" not in out.stderr and "n_ctx_train" not in out.stderr


def test_ctrl_c_during_a_one_shot_reply_exits_130_and_keeps_it(smollm2: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "r1desk.cli", "chat", str(smollm2), "-p", "Write a very long story about a dragon.",
         "--temperature", "0", "--max-tokens", "1500", "--ctx", "2048"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **SIGINT_AS_IN_A_TERMINAL,
    )
    try:
        assert proc.stdout.read(40)  # the reply is streaming
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Interrupted." in err, err
    msgs = json.loads(r1desk("history", "show", "1", "--json").stdout)["messages"]
    assert msgs[-1]["status"] == "cancelled" and msgs[-1]["content"]


def test_the_interactive_loop_quits_on_exit_and_takes_several_lines(tiny_r1: Path) -> None:
    script = 'first\n\n"""line one\nline two"""\n/exit\nnever sent\n'
    out = subprocess.run([sys.executable, "-m", "r1desk.cli", "chat", str(tiny_r1), "--ctx", "512", "--json"],
                         input=script, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    replies = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(replies) == 2  # an empty line is skipped, /exit ends the session
    shown = json.loads(r1desk("history", "show", str(replies[0]["conversation_id"]), "--json").stdout)
    users = [m["content"] for m in shown["messages"] if m["role"] == "user"]
    assert users == ["first", "line one\nline two"]


def test_resuming_a_conversation_shows_its_last_turns(tiny_r1: Path) -> None:
    first = json.loads(r1desk("chat", str(tiny_r1), "-p", "the first question", "--ctx", "512", "--json").stdout)
    out = subprocess.run([sys.executable, "-m", "r1desk.cli", "chat", str(tiny_r1), "--ctx", "512",
                          "--conversation", str(first["conversation_id"])],
                         input="/exit\n", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert ">>> the first question" in out.stdout and first["answer"].strip()[:20] in out.stdout
