"""``r1desk adapters``: LoRA adapters kept in the database (import, list, show, export, rm)."""

from __future__ import annotations

import json
from datetime import datetime

import click

from r1desk.cli import cli
from r1desk.cli.models import run_job
from r1desk.engine.adapters.store import Adapter, Adapters
from r1desk.engine.db.database import open_db
from r1desk.engine.units import human_bytes


def parse_adapter(text: str) -> tuple[str, float]:
    """``NAME`` or ``NAME:SCALE`` (scale 0 to 2, 1 by default) -> (name, scale)."""
    name, sep, scale = text.rpartition(":")
    if not sep:
        return text, 1.0
    try:
        value = float(scale)
    except ValueError:
        raise click.BadParameter(f"{text!r}: the scale after ':' must be a number from 0 to 2") from None
    if not name:
        raise click.BadParameter(f"{text!r}: give the adapter's name before ':'")
    return name, value


@cli.group()
def adapters() -> None:
    """LoRA adapters: fine-tunes applied on top of a model, kept in r1desk's database."""


@adapters.command("import")
@click.argument("path", type=click.Path(exists=True))
@click.option("--name", help="Name to call it by (default: the file or folder name).")
@click.option("--base", "base", help="The model it was trained on: a GGUF file, a Hugging Face folder or a library "
              "name. Needed for a PEFT folder; for a GGUF adapter it is checked to fit.")
@click.option("--notes", default="", help="A note kept with it.")
def import_(path, name, base, notes):
    """Import PATH: a PEFT adapter folder (adapter_config.json + adapter_model.safetensors),
    converted to GGUF on the way, or a GGUF LoRA adapter file."""
    from r1desk.converters.lora import import_adapter

    db = open_db()
    job = import_adapter(path, name=name, base=base, notes=notes, db=db)
    try:
        seconds = run_job(job)
    finally:
        db.conn.close()
    a = job.adapter
    click.echo(f"Imported {a.name} ({a.architecture}, rank {a.rank}, {human_bytes(a.size)}) in "
               f"{seconds:.1f} s; use it with: r1desk chat MODEL --adapter {a.name}")


@adapters.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json):
    """List the imported adapters."""
    rows = Adapters(open_db()).list()
    if as_json:
        click.echo(json.dumps([a.to_dict() for a in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("No adapters yet; import one with: r1desk adapters import PATH [--base MODEL]")
        return
    width = max(len(a.name) for a in rows)
    for a in rows:
        click.echo(f"{a.name:<{width}}  {a.architecture:<8} rank {a.rank:<4} {human_bytes(a.size):>9}  "
                   f"{a.base_model or ''}")


def _describe(a: Adapter) -> list[str]:
    lines = [
        f"Name:           {a.name}",
        f"Architecture:   {a.architecture}"
        + (f", {a.n_embd} wide" if a.n_embd else "") + (f", {a.n_layer} layers" if a.n_layer else ""),
        f"Trained on:     {a.base_model or 'not recorded'}",
        f"Rank, alpha:    {a.rank}, {a.alpha:g}",
        f"Changes:        {', '.join(a.target_modules)} ({len(a.tensors)} weights)",
        f"Size:           {human_bytes(a.size)}",
        f"SHA-256:        {a.sha256}",
        f"Imported:       {datetime.fromtimestamp(a.created_at):%Y-%m-%d %H:%M} from {a.source}",
    ]
    if a.notes:
        lines.append(f"Notes:          {a.notes}")
    return lines


@adapters.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every adapted weight's shape.")
def show(name, as_json):
    """Show what adapter NAME is."""
    a = Adapters(open_db()).get(name)
    if as_json:
        click.echo(json.dumps(a.to_dict(with_tensors=True), ensure_ascii=False, indent=2))
        return
    click.echo("\n".join(_describe(a)))


@adapters.command("export")
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The GGUF file to write.")
def export(name, output):
    """Write adapter NAME out as a GGUF LoRA file (llama.cpp's --lora takes it)."""
    out = Adapters(open_db()).export(name, output)
    click.echo(f"Wrote {out}")


@adapters.command("rm")
@click.argument("name")
def rm(name):
    """Remove adapter NAME (replies made with it still say so)."""
    Adapters(open_db()).remove(name)
    click.echo(f"Removed {name}")
