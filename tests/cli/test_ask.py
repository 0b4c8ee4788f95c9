"""``r1desk ask`` and ``r1desk chat --collection`` as a user runs them: real processes, MiniLM and SmolLM2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1desk.engine.chat.history import History
from r1desk.engine.chat.service import ChatService
from r1desk.engine.db.database import open_db
from r1desk.engine.docs.answers import citations
from r1desk.engine.inference.host import ModelHost
from r1desk.engine.models.library import Library

from tests.cli.test_docs_cli import folder as docs_folder
from tests.cli.test_docs_cli import r1desk as run_cli

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

QUESTION = "When was the coolant pump of the Aurora reactor replaced?"
FAST = ["--max-tokens", "8", "--ctx", "1024", "--temperature", "0"]


def r1desk(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_cli(*args, check=check, stdin=stdin, timeout=400)


def folder(tmp_path: Path) -> Path:
    return docs_folder(tmp_path, with_program=False)


def test_ask_answers_with_its_sources_and_keeps_them(tmp_path: Path, smollm2: Path, minilm_gguf: Path) -> None:
    docs = folder(tmp_path)
    r1desk("index", str(docs), "-c", "notes", "--embedding-model", str(minilm_gguf))
    library = Library(open_db())
    library.register(smollm2)
    library.register(minilm_gguf)  # an embedding model is never the one that answers

    out = json.loads(r1desk("ask", "-c", "notes", QUESTION, "--json", *FAST).stdout)
    assert set(out) >= {"conversation_id", "message_id", "answer", "reasoning", "sources", "notes", "stats"}
    assert out["answer"].strip() and out["notes"] == []  # the collection's vectors were searched too
    top = out["sources"][0]
    assert (top["n"], top["path"], top["file"], top["line_start"]) == (1, str(docs / "reactor.md"), "reactor.md", 3)
    assert top["place"].startswith("line")
    assert "14 March 2019" in top["excerpt"] and top["headings"][0] == "Maintenance log" and top["score"] > 0
    cited = {n for n, _ in citations(out["answer"], [SimpleNamespace(n=s["n"]) for s in out["sources"]])}
    assert all(s["cited"] == (s["n"] in cited) for s in out["sources"])

    # Kept in the history like any conversation, with the reply's sources.
    db = open_db()
    service = ChatService(History(db), host=ModelHost())
    try:
        assert service.history.messages(out["conversation_id"])[-2].content == QUESTION
        assert service.collections(out["conversation_id"]) == ["notes"]
        assert [(s.n, s.path, s.text) for s in service.sources(out["message_id"])] == \
               [(s["n"], s["path"], s["excerpt"]) for s in out["sources"]]
    finally:
        service.close()

    text = r1desk("ask", "--collection", "notes", QUESTION, "--hide-reasoning", *FAST)
    assert "Sources" in text.stdout and f"[1] {docs / 'reactor.md'}, line" in text.stdout
    assert "14 March 2019" in text.stdout  # the excerpt


def test_ask_refuses_in_one_line(tmp_path: Path, minilm_gguf: Path) -> None:
    docs = folder(tmp_path)
    r1desk("index", str(docs), "-c", "notes", "--no-embedding")
    missing = r1desk("ask", "-c", "nope", QUESTION, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: no collection named 'nope'")
    assert missing.stderr.count("\n") == 1
    Library(open_db()).register(minilm_gguf)
    none = r1desk("ask", "-c", "notes", QUESTION, check=False)
    assert none.returncode == 1 and none.stderr.count("\n") == 1
    assert none.stderr.startswith("Error: there is no chat model in the library to answer with")
    assert "r1desk pull" in none.stderr
    empty = r1desk("ask", "-c", "notes", "  ", check=False)
    assert empty.returncode == 2 and "the question is empty" in empty.stderr


def test_chat_with_a_collection_one_prompt_then_on_and_off(tmp_path: Path, smollm2: Path) -> None:
    docs = folder(tmp_path)
    r1desk("index", str(docs), "-c", "notes", "--no-embedding")
    first = json.loads(r1desk("chat", str(smollm2), "--collection", "notes", "-p", QUESTION, "--json", *FAST).stdout)
    assert first["sources"][0]["path"] == str(docs / "reactor.md")
    assert any("full-text" in note for note in first["notes"])
    # The conversation keeps its collections; --collection none takes them off.
    again = json.loads(r1desk("chat", str(smollm2), "--conversation", str(first["conversation_id"]), "-p",
                              "手机的电池能用多久？", "--json", *FAST).stdout)
    assert again["sources"][0]["path"] == str(docs / "手机.txt")
    off = json.loads(r1desk("chat", str(smollm2), "--conversation", str(first["conversation_id"]), "--collection",
                            "none", "-p", "Thanks.", "--json", *FAST).stdout)
    assert "sources" not in off


def test_interactive_chat_lists_the_sources_after_each_answer(tmp_path: Path, smollm2: Path) -> None:
    docs = folder(tmp_path)
    r1desk("index", str(docs), "-c", "notes", "--no-embedding")
    out = r1desk("chat", str(smollm2), "--collection", "notes", *FAST,
                 stdin=f"{QUESTION}\nHow long should the dough be kneaded?\n/exit\n").stdout
    assert out.count("Sources") == 2
    assert f"[1] {docs / 'reactor.md'}" in out and f"[1] {docs / 'recipe.txt'}, line 1" in out
