"""``r1desk history``: list, show, search and export saved conversations."""

from __future__ import annotations

import datetime
import json

import click

from r1desk.cli import cli
from r1desk.engine.chat.history import History


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


@cli.group()
def history():
    """Saved conversations."""


@history.command("list")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_(limit, as_json):
    """Conversations, newest first."""
    convs = History().list_conversations(limit=limit)
    if as_json:
        click.echo(json.dumps([c.to_dict(with_messages=False) for c in convs], ensure_ascii=False, indent=2))
        return
    for c in convs:
        click.echo(f"{c.id:>5}  {_when(c.updated_at)}  {c.message_count:>3} msgs  {c.title or '(untitled)'}")


@history.command()
@click.argument("conversation_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def show(conversation_id, as_json):
    """One conversation, with its messages."""
    h = History()
    if as_json:
        click.echo(h.export_json(conversation_id))
    else:
        click.echo(h.export_markdown(conversation_id), nl=False)


@history.command()
@click.argument("text")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def search(text, limit, as_json):
    """Messages containing TEXT, in any language; the match is in bold."""
    hits = History().search(text, limit=limit)
    if as_json:
        click.echo(json.dumps(hits, ensure_ascii=False, indent=2))
        return
    for hit in hits:
        where = [f"conversation {hit['conversation_id']}", f"message {hit['id']}", hit["role"],
                 hit["title"] or "(untitled)"]
        if hit["field"] == "reasoning":
            where.append("in the reasoning")
        if hit["count"] > 1:
            where.append(f"{hit['count']} matches")
        click.echo(" · ".join(where))
        click.echo("    " + marked(hit["snippet"], hit["matches"]))
    found = len(hits)
    click.echo(f"{found} message{'' if found == 1 else 's'} found"
               + (" (the newest; --limit shows more)" if found == limit else ""), err=True)


def marked(snippet: str, matches: list[list[int]]) -> str:
    """The snippet with its matches in bold (click drops the styling when not on a terminal)."""
    out, at = [], 0
    for start, end in matches:
        out += [snippet[at:start], click.style(snippet[start:end], bold=True, fg="yellow")]
        at = end
    out.append(snippet[at:])
    return "".join(out)


@history.command()
@click.argument("conversation_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to a file.")
def export(conversation_id, fmt, output):
    """Export a conversation as Markdown or JSON."""
    h = History()
    text = h.export_markdown(conversation_id) if fmt == "md" else h.export_json(conversation_id) + "\n"
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)


@history.command()
@click.argument("conversation_ids", type=int, nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every conversation in the history.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .jsonl file to write.")
@click.option("--no-reasoning", is_flag=True, help="Leave R1's thinking out of the replies.")
def dataset(conversation_ids, everything, output, no_reasoning):
    """Export conversations as a fine-tuning dataset (JSONL, chat messages).

    One line per conversation, {"messages": [...]}, as TRL's SFTTrainer, Unsloth and axolotl
    (type: chat_template, field_messages: messages) read it.
    """
    from r1desk.engine.chat.dataset import write_dataset

    h = History()
    ids = list(conversation_ids)
    if everything:
        ids = [c.id for c in h.list_conversations(limit=1_000_000)]
    if not ids:
        raise click.UsageError("give conversation ids, or --all")
    summary = write_dataset(h, ids, output, reasoning=not no_reasoning)
    click.echo(f"Wrote {summary.conversations} conversation(s), {summary.replies} repl(ies) to {summary.path}"
               + (f"; {summary.skipped} without a finished reply left out" if summary.skipped else ""))


@history.command()
@click.argument("conversation_id", type=int)
def delete(conversation_id):
    """Delete a conversation."""
    History().delete(conversation_id, permanent=True)
