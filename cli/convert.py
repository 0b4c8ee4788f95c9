"""``r1desk convert``: bring models made elsewhere (Hugging Face folders) into r1desk as GGUF files."""

from __future__ import annotations

import os
from pathlib import Path

import click

from r1desk.cli import cli
from r1desk.cli.models import run_job
from r1desk.engine.events import CancelToken


@cli.group()
def convert() -> None:
    """Convert models from other formats to GGUF."""


@convert.command("hf")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file (default: r1desk's models folder).")
@click.option("--type", "outtype", type=click.Choice(["f16", "f32", "bf16", "q8_0"], case_sensitive=False),
              default="f16", show_default=True, help="Weight type of the GGUF file.")
def convert_hf(folder, output, outtype):
    """Convert a Hugging Face model FOLDER (config.json, safetensors, tokenizer) to GGUF.

    Llama, Qwen2 (the DeepSeek-R1 distills) and BERT embedding models; the result is added to
    the library. Pickle checkpoints (.bin, .pt) are refused: save the model as safetensors.
    """
    from r1desk.converters.hf import convert as convert_folder
    from r1desk.converters.hf import default_output
    from r1desk.engine.db.database import open_db
    from r1desk.engine.models.library import Library

    folder = Path(os.path.abspath(Path(folder).expanduser()))
    target = Path(os.path.abspath(Path(output).expanduser())) if output else default_output(folder, outtype)
    cancel = CancelToken()
    job = convert_folder(folder, target, outtype=outtype, cancel=cancel)

    def stop() -> None:
        cancel.cancel()
        job.close()  # its cleanup removes the partial file now, not whenever it is collected

    seconds = run_job(job, stop)
    db = open_db()
    try:
        model = Library(db).by_path(target)
    finally:
        db.conn.close()
    name = model.name if model is not None else target
    click.echo(f"Wrote {target} in {seconds:.1f} s; chat with it: r1desk chat {name}")


@convert.command("lora")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--base", required=True, help="The model it was trained on: a GGUF file, its Hugging Face folder or a "
              "library name.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The GGUF adapter to write.")
@click.option("--type", "outtype", type=click.Choice(["f32", "f16", "bf16", "q8_0"], case_sensitive=False),
              default="f32", show_default=True, help="Weight type of the adapter.")
def convert_lora(folder, base, output, outtype):
    """Convert a PEFT LoRA adapter FOLDER (adapter_config.json, adapter_model.safetensors) to a
    GGUF adapter llama.cpp loads (--lora); `r1desk adapters import` keeps one in the database."""
    from r1desk.converters.lora import convert as convert_adapter

    target = Path(os.path.abspath(Path(output).expanduser()))
    job = convert_adapter(folder, target, base=base, outtype=outtype)
    seconds = run_job(job)
    s = job.summary
    what = f" ({s.architecture}, rank {s.rank}, changes {', '.join(s.target_modules)})" if s is not None else ""
    click.echo(f"Wrote {target}{what} in {seconds:.1f} s")
