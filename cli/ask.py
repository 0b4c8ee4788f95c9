"""``r1desk ask``: one question answered from collections of documents, with the passages it cites.

The answer streams as in ``r1desk chat`` (reasoning dimmed), then the sources follow: file,
page or lines, section, score and excerpt, the ones the answer cites marked. ``--json`` prints
one object with the answer, the reasoning and the sources. The question and its answer are kept
in the history like any conversation, so ``r1desk chat MODEL --conversation N`` can go on.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import click

from r1desk.cli import cli
from r1desk.engine.chat.service import DEFAULT_MAX_TOKENS, ChatService, SamplingParams
from r1desk.engine.docs import store
from r1desk.engine.docs.answers import citations, sources_json
from r1desk.engine.errors import ModelNotFound
from r1desk.engine.inference.host import LoadOptions

EXCERPT_CHARS = 300
# Architectures that only embed; a model of one of these is never the default chat model.
EMBEDDING_ARCHITECTURES = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3",
                                     "modern-bert", "neo-bert", "t5encoder"})


def default_chat_model(db: Any) -> str:
    """The library's chat model to answer with when none is named: the one used last, or the only one."""
    from r1desk.engine.db.database import get_setting
    from r1desk.engine.docs.embedder import DEFAULT_SETTING, FILES_SETTING
    from r1desk.engine.models.library import Library

    embedding_files = {str(p) for p in (get_setting(db, FILES_SETTING) or {}).values()}
    default_embedder = get_setting(db, DEFAULT_SETTING)
    if default_embedder:
        embedding_files.add(str(default_embedder))

    def embeds(m) -> bool:
        arch = m.architecture or ""
        return (arch in EMBEDDING_ARCHITECTURES or f"{arch}.pooling_type" in m.metadata
                or m.path in embedding_files or m.name in embedding_files)

    chat = [m for m in Library(db).list() if m.status == "ready" and not embeds(m)]
    if not chat:
        raise ModelNotFound("there is no chat model in the library to answer with",
                            hint="pull one with 'r1desk pull REPO', or give --model FILE.gguf",
                            facts={"code": "no-chat-model"})
    used = [m for m in chat if m.last_used_at]
    if used:
        return max(used, key=lambda m: m.last_used_at).name
    if len(chat) == 1:
        return chat[0].name
    raise ModelNotFound(f"the library has {len(chat)} chat models and none has been used yet: choose one with --model",
                        hint="'r1desk models' lists them", facts={"code": "choose-chat-model"})


def source_dicts(sources: Sequence[Any], answer: str) -> list[dict[str, Any]]:
    """The sources as JSON objects, each saying whether the answer cites it."""
    return sources_json(sources, answer)


def print_sources(sources: Sequence[Any], notes: Sequence[str], answer: str, *, excerpts: bool = True) -> None:
    """The sources after an answer, the cited ones marked with *; the search's notes on stderr."""
    for note in notes:
        click.echo(click.style(f"Note: {note}", dim=True), err=True)
    if not sources:
        click.echo(click.style("No passage of the collections matched the question.", dim=True))
        return
    cited = {n for n, _ in citations(answer, sources)}
    click.echo(click.style("Sources" + (" (* cited in the answer):" if cited else ":"), bold=True))
    for s in sources:
        where = f", {s.place}" if s.place else ""
        heading = f" — {' > '.join(s.headings)}" if s.headings else ""
        mark = "*" if s.n in cited else " "
        click.echo(f"{mark}[{s.n}] {s.path}{where}{heading}  (score {s.score:.4f})")
        if excerpts:
            text = " ".join(s.text.split())
            click.echo(click.style(f"     {text[:EXCERPT_CHARS]}{'…' if len(text) > EXCERPT_CHARS else ''}", dim=True))


@cli.command()
@click.argument("question")
@click.option("--collection", "-c", "names", multiple=True, required=True,
              help="A collection to answer from (see 'r1desk index'); repeat for several.")
@click.option("--model", "-m", help="The chat model: a library name or a .gguf file (default: the library's "
              "chat model used last, or its only one).")
@click.option("--ctx", type=click.IntRange(min=256),
              help="Context length in tokens (default: from the model, at most 8192).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: physical cores).")
@click.option("--max-tokens", type=click.IntRange(min=0), default=DEFAULT_MAX_TOKENS, show_default=True,
              help="Most tokens in the answer (an R1 model's thinking is not counted).")
@click.option("--temperature", type=float)
@click.option("--seed", type=int)
@click.option("--reasoning-budget", type=click.IntRange(min=0),
              help="Most thinking tokens before the model must answer.")
@click.option("--hide-reasoning", is_flag=True, help="Do not print the model's reasoning.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: answer, reasoning, sources (the cited ones marked).")
def ask(question, names, model, ctx, threads, max_tokens, temperature, seed, reasoning_budget, hide_reasoning, as_json):
    """Answer QUESTION from the collections' documents, citing the passages used as [n].

    The passages that best match the question (full-text and, when the collection has vectors,
    by meaning) are given to the model as quoted material, as many as its context has room for;
    the sources are listed after the answer. '-' reads the question from standard input.
    """
    from r1desk.cli.chat import _reply

    if question == "-":
        question = sys.stdin.read()
    if not question.strip():
        raise click.UsageError("the question is empty")
    service = ChatService()
    try:
        db = service.history.db
        for name in names:  # refused before a model is loaded
            store.get_collection(db, name)
        model = model or default_chat_model(db)
        info = service.load_model(model, LoadOptions(n_ctx=ctx, n_threads=threads))
        conversation_id = service.history.create_conversation(model=info.name)
        service.set_collections(conversation_id, list(names))
        params = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed,
                                reasoning_budget=reasoning_budget)
        _reply(service, conversation_id, question, params, as_json, hide_reasoning, one_shot=True)
    finally:
        service.close()
