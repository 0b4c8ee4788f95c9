"""``r1desk index``, ``r1desk collections`` and ``r1desk search`` as a user runs them: real processes, real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.terminal import SIGINT_AS_IN_A_TERMINAL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def r1desk(*args: str, check: bool = True, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "r1desk.cli", *args], capture_output=True, text=True, timeout=timeout,
                          input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1desk {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def folder(tmp_path: Path, *, with_program: bool = True) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "reactor.md").write_text(
        "# Maintenance log\n\nThe coolant pump of the Aurora reactor was replaced on 14 March 2019.\n\n"
        "## Staff\n\nThe night shift has four engineers.\n", encoding="utf-8")
    (docs / "手机.txt").write_text("这款手机的电池续航时间是十二个小时。\n充电需要两个小时。\n", encoding="utf-8")
    (docs / "recipe.txt").write_text("Knead the dough for ten minutes and let it rise overnight.\n", encoding="utf-8")
    if with_program:
        (docs / "program.txt").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(64))
    return docs


def test_full_text_index_status_search_and_rm(tmp_path: Path) -> None:
    docs = folder(tmp_path)
    out = r1desk("index", str(docs), "--collection", "notes", "--no-embedding").stdout
    assert "3 files indexed" in out and "1 with problems" in out
    assert f"problem: {docs / 'program.txt'}: " in out and "[binary]" in out
    assert "full-text search only" in out

    (listed,) = json.loads(r1desk("collections", "--json").stdout)
    assert (listed["name"], listed["indexed"], listed["problems"], listed["vectors"]) == ("notes", 3, 1, 0)
    status = r1desk("collections", "status", "notes").stdout
    assert "Problems:" in status and f"{docs / 'program.txt'}: not text" in status
    assert "Vectors:         none" in status

    found = json.loads(r1desk("search", "-c", "notes", "When was the pump replaced?", "--json").stdout)
    top = found["sources"][0]
    assert top["path"] == str(docs / "reactor.md") and top["line_start"] == 3 and top["headings"] == ["Maintenance log"]
    assert "14 March 2019" in top["text"] and top["char_start"] is not None
    assert any("full-text" in n for n in found["notes"])
    # Two Chinese characters: too short for trigram search, found all the same.
    short = json.loads(r1desk("search", "-c", "notes", "电池", "--json", "-k", "1").stdout)
    assert [s["path"] for s in short["sources"]] == [str(docs / "手机.txt")]
    text = r1desk("search", "-c", "notes", "dough", "--mode", "fts").stdout
    assert text.startswith(f"[1] {docs / 'recipe.txt'}, line 1") and "Knead the dough" in text

    refused = r1desk("search", "-c", "notes", "pump", "--mode", "vector", check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("Error: vector search is not possible")

    gone = r1desk("collections", "rm", "notes").stdout
    assert "Deleted collection notes: 4 files" in gone and "untouched" in gone and (docs / "reactor.md").exists()
    missing = r1desk("collections", "status", "notes", check=False)
    assert missing.returncode == 1 and "no collection named 'notes'" in missing.stderr
    assert json.loads(r1desk("collections", "--json").stdout) == []


def test_with_the_embedding_model_questions_find_passages_by_meaning(tmp_path: Path, minilm_gguf: Path) -> None:
    docs = folder(tmp_path)
    out = r1desk("index", str(docs), "-c", "notes", "--embedding-model", str(minilm_gguf), "--json")
    summary = json.loads(out.stdout)
    assert summary["added"] == 3 and summary["embedded"] == summary["chunks"] > 0 and summary["notes"] == []
    assert "Embedding model: all-MiniLM-L6-v2-F16.gguf" in out.stderr
    # No shared word with the passage that answers it.
    found = json.loads(r1desk("search", "-c", "notes", "When did they swap out the cooling equipment?", "--mode",
                              "vector", "--json", "-k", "1").stdout)
    assert [s["path"] for s in found["sources"]] == [str(docs / "reactor.md")] and found["notes"] == []
    assert 0 < found["sources"][0]["similarity"] <= 1

    # A later run finds the collection's model by itself and has nothing to do.
    (docs / "recipe.txt").touch()
    again = json.loads(r1desk("index", "-c", "notes", "--json").stdout)
    assert (again["unchanged"], again["embedded"], again["notes"]) == (4, 0, [])
    status = r1desk("collections", "status", "notes").stdout
    assert "Vectors:         " in status and "by all-MiniLM-L6-v2-F16.gguf" in status


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    missing = r1desk("index", str(tmp_path / "nope"), "-c", "notes", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    unnamed = r1desk("index", str(tmp_path), "-c", "  ", check=False)
    assert unnamed.returncode == 1 and "Error: a collection needs a name" in unnamed.stderr
    nothing = r1desk("search", "-c", "nope", "x", check=False)
    assert nothing.returncode == 1 and "Error: no collection named 'nope'" in nothing.stderr
    assert json.loads(r1desk("collections", "--json").stdout) == []  # nothing was made on the way


def test_index_watch_picks_up_a_new_file_until_interrupted(tmp_path: Path) -> None:
    docs = folder(tmp_path)
    # -X faulthandler: should Ctrl+C not stop it, SIGABRT makes it print where each thread is.
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "r1desk.cli", "index", str(docs), "-c",
                             "notes", "--no-embedding", "--watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **SIGINT_AS_IN_A_TERMINAL)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "indexed" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        said = ""
        while "Watching" not in said and time.monotonic() < deadline:  # the watcher starts after the first run
            said = proc.stderr.readline()
        assert "Watching" in said
        (docs / "zeppelin.md").write_text("# Airships\n\nThe zeppelin had a hydrogen lift gas.\n", encoding="utf-8")
        while "1 added" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert "1 added" in line
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            try:
                _, err = proc.communicate(timeout=60)
            finally:
                proc.kill()
            pytest.fail(f"Ctrl+C did not stop `index --watch` in 120 s; where its threads were:\n{err[-8000:]}")
    assert proc.returncode == 130
    found = json.loads(r1desk("search", "-c", "notes", "hydrogen airship", "--json", "-k", "1").stdout)
    assert [s["path"] for s in found["sources"]] == [str(docs / "zeppelin.md")]
    assert os.path.exists(docs / "zeppelin.md")


def test_the_catalog_offers_an_embedding_model_for_documents_and_not_for_chat() -> None:
    from r1desk.cli.models import recommended_quant
    from r1desk.engine.docs.embedder import prefixes_for
    from r1desk.engine.hardware import probe
    from r1desk.engine.models import catalog, recommend
    from r1desk.engine.models.download import parse_spec

    cat = catalog.load(catalog.CATALOG_PATH)
    (entry,) = cat.embedding_models
    assert (entry.id, entry.repo, entry.role) == ("qwen3-embedding-0.6b", "Qwen/Qwen3-Embedding-0.6B-GGUF", "embedding")
    assert entry.id not in {m.id for m in cat.models} and cat.get(entry.id) is entry
    q8 = entry.quant("Q8_0")
    assert not q8.estimated and q8.names == ["Qwen3-Embedding-0.6B-Q8_0.gguf"]
    # Its shape reproduces the real file's size (the same numbers give its memory estimate).
    assert abs(catalog.estimated_size(entry.arch, "Q8_0") - q8.size) < 0.0001 * q8.size
    assert catalog.parameter_count(entry.arch) == entry.params
    # Pulled by its id like any catalog model, at its own quant; never recommended for chat.
    assert parse_spec("qwen3-embedding-0.6b") == (entry.repo, None)
    quant, filename, note = recommended_quant(entry.repo)
    assert (quant, filename) == ("Q8_0", "Qwen3-Embedding-0.6B-Q8_0.gguf") and "embedding model" in note
    assert entry.repo not in {c.repo for c in recommend.recommend(probe.detect(), 8192, cat)}
    # Questions get the instruction Qwen3-Embedding expects; passages go in as they are.
    query, document = prefixes_for("/models/Qwen3-Embedding-0.6B-Q8_0.gguf")
    assert query.startswith("Instruct: ") and query.endswith("\nQuery:") and document == ""
