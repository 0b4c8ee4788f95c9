"""``r1desk index``, ``r1desk collections`` and ``r1desk search``: the user's documents, indexed and searched without a chat model."""

from __future__ import annotations

import json
import time
from datetime import datetime

import click

from r1desk.cli import cli
from r1desk.cli.models import run_job
from r1desk.engine.db.database import open_db
from r1desk.engine.docs import store
from r1desk.engine.docs.embedder import HostEmbedder, model_file, remember
from r1desk.engine.docs.index import IndexProgress, index_collection
from r1desk.engine.docs.retrieval import MODES, retrieve
from r1desk.engine.events import CancelToken
from r1desk.engine.units import human_bytes

PROBLEMS_SHOWN = 20


class _Job:
    """An indexing run as run_job takes it: its events, and ``cancel``."""

    def __init__(self, events, token: CancelToken):
        self.events = events
        self.token = token
        self.last: IndexProgress | None = None

    def __iter__(self):
        for event in self.events:
            self.last = event
            yield event

    def cancel(self) -> None:
        self.token.cancel()


def _embedder(db, name: str | None, collection_name: str | None, no_embedding: bool):
    if no_embedding:
        return None
    collection = store.find_collection(db, collection_name) if collection_name else None
    path = model_file(db, name, collection)
    if path is None:
        return None
    click.echo(f"Embedding model: {path.name}", err=True)
    embedder = HostEmbedder.load(path)
    remember(db, embedder)
    return embedder


def _print_summary(summary, db, name: str) -> None:
    collection = store.get_collection(db, name)
    stats = store.stats(db, collection)
    click.echo(f"{summary.collection}: {stats.indexed} files indexed ({stats.chunks} chunks, "
               f"{stats.vectors} with vectors), {stats.problems} with problems; this run: {summary.added} added, "
               f"{summary.updated} updated, {summary.removed} removed, {summary.unchanged} unchanged, "
               f"{summary.chunks} chunks written, {summary.embedded} embedded in {summary.seconds:.1f} s")
    for problem in summary.new_problems[:PROBLEMS_SHOWN]:
        click.echo(f"  problem: {problem.path}: {problem.reason} [{problem.code}]")
    if len(summary.new_problems) > PROBLEMS_SHOWN:
        click.echo(f"  ... and {len(summary.new_problems) - PROBLEMS_SHOWN} more: r1desk collections status {name}")
    for note in summary.notes:
        click.echo(f"Note: {note}")


@cli.command("index")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--collection", "-c", "name", required=True, help="The collection to add them to (made if new).")
@click.option("--embedding-model", "model", help="Embedding model: a library name or a GGUF file "
              "(default: the one the collection was made with, else the default setting).")
@click.option("--no-embedding", is_flag=True, help="Full-text index only (vectors can be added by a later run).")
@click.option("--watch", is_flag=True, help="Keep watching the folders and index changes as they happen (Ctrl+C ends).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
def index_cmd(paths, name, model, no_embedding, watch, as_json):
    """Add folders or files (PATH...) to a collection and index them for chat and search.

    Run it again to pick up changes: only files whose size or time changed are read, and only
    changed content is embedded again. Without PATH, the collection's folders are scanned.
    """
    db = open_db()
    embedder = _embedder(db, model, name, no_embedding)
    try:
        token = CancelToken()
        job = _Job(index_collection(db, name, list(paths), embedder=embedder, token=token,
                                    watch=True if watch else None), token)
        run_job(job)
        summary = job.last.summary
        if as_json:
            click.echo(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
        else:
            _print_summary(summary, db, name)
        if watch:
            _watch(db, embedder)
    finally:
        if embedder is not None:
            embedder.close()
        db.close()


def _watch(db, embedder) -> None:
    from r1desk.engine.docs.watch import Watcher

    def on_event(collection: str, event: IndexProgress) -> None:
        if event.problem is not None:
            click.echo(f"{collection}: problem: {event.problem.path}: {event.problem.reason}")
        elif event.phase == "done":
            click.echo(f"{datetime.now():%H:%M:%S} {event.message}")

    def on_error(collection: str, exc: BaseException) -> None:
        click.echo(f"{collection}: Error: {exc}", err=True)

    watcher = Watcher(db, embedder=embedder, on_event=on_event, on_error=on_error).start()
    try:
        for collection, roots in watcher.watching.items():
            click.echo(f"Watching {', '.join(roots)} for {collection} (Ctrl+C to stop)", err=True)
        while True:
            time.sleep(1)
    finally:
        # Ctrl+C: a run under way stops at its next file; what it stored stays, and the next
        # run goes on from there, so the command need not wait long for it.
        watcher.stop(timeout=5)


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def collections(ctx, as_json):
    """The collections of documents (and 'status NAME', 'rm NAME')."""
    if ctx.invoked_subcommand is not None:
        return
    db = open_db()
    rows = [(c, store.stats(db, c)) for c in store.list_collections(db)]
    if as_json:
        click.echo(json.dumps([_collection_dict(c, s) for c, s in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("No collections yet; make one with: r1desk index FOLDER --collection NAME")
        return
    width = max(len(c.name) for c, _ in rows)
    for c, s in rows:
        vectors = f"{s.vectors} vectors" if c.embedding_model else "full-text only"
        problems = f", {s.problems} with problems" if s.problems else ""
        click.echo(f"{c.name:<{width}}  {s.indexed:>6} files{problems}  {s.chunks:>7} chunks  {vectors}  "
                   f"{human_bytes(s.bytes):>9}  {', '.join(r.path for r in c.roots)}")


def _collection_dict(c: store.Collection, s: store.CollectionStats) -> dict:
    return {"name": c.name, "embedding_model": c.embedding_model, "embedding_dim": c.embedding_dim,
            "roots": [r.__dict__ for r in c.roots], "created_at": c.created_at, "updated_at": c.updated_at,
            **s.to_dict()}


@collections.command("status")
@click.argument("name")
@click.option("--all", "show_all", is_flag=True, help="List every file, not only those with problems.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (every file).")
def status(name, show_all, as_json):
    """What NAME holds, and each file that could not be indexed, with the reason."""
    db = open_db()
    c = store.get_collection(db, name)
    s = store.stats(db, c)
    docs = store.documents(db, c)
    if as_json:
        click.echo(json.dumps({**_collection_dict(c, s), "documents": [d.to_dict() for d in docs]},
                              ensure_ascii=False, indent=2))
        return
    click.echo(f"Collection:      {c.name}")
    for root in c.roots:
        click.echo(f"  {root.kind + ':':<14} {root.path}{' (watched)' if root.watched else ''}")
    click.echo(f"Files:           {s.indexed} indexed, {s.problems} with problems ({human_bytes(s.bytes)})")
    click.echo(f"Chunks:          {s.chunks}")
    if c.embedding_model:
        missing = f"; {s.without_vectors} files still without vectors" if s.without_vectors else ""
        click.echo(f"Vectors:         {s.vectors}, by {c.embedding_model}{missing}")
    else:
        click.echo("Vectors:         none (full-text search only; index again with --embedding-model to add them)")
    if c.updated_at:
        click.echo(f"Updated:         {datetime.fromtimestamp(c.updated_at):%Y-%m-%d %H:%M}")
    problems = [d for d in docs if d.status == "problem"]
    if problems:
        click.echo("Problems:")
        for d in problems:
            click.echo(f"  {d.path}: {d.reason} [{d.problem}]")
    notes = [d for d in docs if d.note]
    for d in notes:
        click.echo(f"Note: {d.path}: {d.note}")
    if show_all:
        click.echo("Files:")
        for d in docs:
            if d.status == "indexed":
                vectors = "" if d.embedding_model else " (no vectors)"
                click.echo(f"  {d.path}: {d.chunks} chunks{vectors}")


@collections.command("rm")
@click.argument("name")
def rm(name):
    """Delete collection NAME from the index (the files themselves are not touched)."""
    db = open_db()
    gone = store.delete_collection(db, name)
    click.echo(f"Deleted collection {name}: {gone.documents} files, {gone.chunks} chunks, {gone.vectors} vectors "
               "(your files are untouched)")


@cli.command()
@click.argument("query")
@click.option("--collection", "-c", "names", multiple=True, required=True, help="Collection to search (repeatable).")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True,
              help="Full-text, vectors, or both fused.")
@click.option("-k", "k", type=click.IntRange(1, 100), default=5, show_default=True, help="How many passages.")
@click.option("--budget", type=click.IntRange(64, None), default=None,
              help="Fit the passages into this many tokens (as for a chat model's context).")
@click.option("--embedding-model", "model", help="Embedding model for the question (default: the collection's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search(query, names, mode, k, budget, model, as_json):
    """The passages of the collections that best answer QUERY (no chat model involved)."""
    db = open_db()
    collections_ = [store.get_collection(db, n) for n in names]
    embedder = None
    if mode != "fts":
        made = next((c for c in collections_ if c.embedding_model), None)
        path = model_file(db, model, made) if (model or made) else None
        if path is not None:
            embedder = HostEmbedder.load(path)
    try:
        notes: list[str] = []
        sources = retrieve(db, collections_, query, budget, embedder, mode=mode, k=k, notes=notes)
    finally:
        if embedder is not None:
            embedder.close()
    if as_json:
        click.echo(json.dumps({"query": query, "mode": mode, "notes": notes,
                               "sources": [s.to_dict() for s in sources]}, ensure_ascii=False, indent=2))
        return
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    if not sources:
        click.echo("Nothing found.")
        return
    for s in sources:
        where = f", {s.place}" if s.place else ""
        heading = f" — {' > '.join(s.headings)}" if s.headings else ""
        click.echo(f"[{s.n}] {s.path}{where}{heading}  (score {s.score:.4f})")
        text = " ".join(s.text.split())
        click.echo(f"    {text[:400]}{'…' if len(text) > 400 else ''}")
