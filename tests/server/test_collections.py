"""The API's ``collections`` field on loopback with the official openai client: answers from documents, sources back."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from r1desk.engine.chat.history import History
from r1desk.engine.chat.service import ChatService
from r1desk.engine.db.database import open_db
from r1desk.engine.docs import index
from r1desk.engine.docs.embedder import HostEmbedder, remember
from r1desk.engine.inference.host import LoadOptions
from r1desk.server.api import create_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

QUESTION = "When was the coolant pump of the Aurora reactor replaced?"


@pytest.fixture
def served(tmp_path: Path, smollm2: Path, minilm_gguf: Path):
    import uvicorn

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "reactor.md").write_text(
        "# Maintenance log\n\nThe coolant pump of the Aurora reactor was replaced on 14 March 2019.\n\n"
        "## Staff\n\nThe night shift has four engineers.\n", encoding="utf-8")
    (docs / "recipe.txt").write_text("Knead the dough for ten minutes and let it rise overnight.\n", encoding="utf-8")
    db = open_db()
    embedder = HostEmbedder.load(minilm_gguf, n_threads=2)
    try:
        remember(db, embedder)
        list(index.index_collection(db, "notes", [docs], embedder=embedder))
    finally:
        embedder.close()
    chat = ChatService(History(db))
    chat.load_model(smollm2, LoadOptions(n_ctx=1024, n_threads=2))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(chat), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    from openai import OpenAI

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=300)
    yield client, docs, chat
    server.should_exit = True
    thread.join(10)
    chat.close()


def ask(client, **kw):
    return client.chat.completions.create(model="any", temperature=0, max_tokens=8,
                                          messages=[{"role": "user", "content": QUESTION}], **kw)


def test_collections_answer_from_documents_and_return_their_sources(served) -> None:
    client, docs, chat = served
    plain = ask(client)
    assert plain.model_extra.get("sources") is None  # no collections, no sources field

    out = ask(client, extra_body={"collections": ["notes"]})
    sources = out.model_extra["sources"]
    assert out.model_extra["source_notes"] == []  # full-text and the collection's vectors both searched
    top = sources[0]
    assert (top["n"], top["path"], top["file"], top["line_start"]) == (1, str(docs / "reactor.md"), "reactor.md", 3)
    assert "14 March 2019" in top["excerpt"] and top["headings"] == ["Maintenance log"] and top["score"] > 0
    assert all(isinstance(s["cited"], bool) for s in sources)
    # The passages were in the prompt: it grew by at least the excerpt's words.
    assert out.usage.prompt_tokens > plain.usage.prompt_tokens + len(top["excerpt"].split())

    chunks = list(ask(client, stream=True, stream_options={"include_usage": True},
                      extra_body={"collections": ["notes"]}))
    carrying = [i for i, c in enumerate(chunks) if (c.model_extra or {}).get("sources") is not None]
    assert len(carrying) == 1
    at = carrying[0]
    assert chunks[at].choices == [] and chunks[at - 1].choices[0].finish_reason in ("stop", "length")
    streamed = chunks[at].model_extra["sources"]
    # The question is embedded afresh for each request; float sums may differ in the last digits.
    assert [s["similarity"] for s in streamed] == pytest.approx([s["similarity"] for s in sources], abs=1e-4)
    assert [dict(s, similarity=None) for s in streamed] == [dict(s, similarity=None) for s in sources]
    assert chunks[-1].usage is not None
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == out.choices[0].message.content

    assert chat.history.list_conversations() == []  # the API writes no history


def test_bad_collections_are_refused_with_openai_errors(served) -> None:
    import openai

    client, _, _ = served
    for bad in ("notes", [""], [3], ["a"] * 17):
        with pytest.raises(openai.BadRequestError) as refused:
            ask(client, extra_body={"collections": bad})
        assert refused.value.body["param"] == "collections"
    with pytest.raises(openai.BadRequestError) as missing:
        ask(client, extra_body={"collections": ["nope"]})
    assert missing.value.body["code"] == "collection_not_found" and "no collection named 'nope'" in str(missing.value)
    assert ask(client, extra_body={"collections": []}).model_extra.get("sources") is None
