"""``r1desk remote``: models on other machines behind an OpenAI-compatible API, as model sources."""

from __future__ import annotations

import json

import click

from r1desk.cli import cli


@cli.group()
def remote():
    """Models served elsewhere (vLLM, llama-server, Ollama, LM Studio, another r1desk).

    An added remote is used by name like a local model: r1desk chat NAME.
    """


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--api-key", envvar="R1DESK_REMOTE_API_KEY", help="Sent as 'Authorization: Bearer KEY'.")
@click.option("--model", "model_id", help="The server's model id (default: the first it lists).")
@click.option("--no-check", is_flag=True, help="Add it without asking the server first.")
def remote_add(name, url, api_key, model_id, no_check):
    """Add the server at URL (e.g. http://gpu-box:8000/v1) as the model NAME."""
    from r1desk.engine.chat import remotes
    from r1desk.engine.inference.remote import RemoteHost

    if not no_check:
        info = RemoteHost(url, api_key, model_id).load()
        model_id = model_id or info.internal_name
    added = remotes.add(name, url, api_key=api_key, model=model_id)
    click.echo(f"Added {added.name}: {added.model or 'its first model'} at {added.url}")


@remote.command("list")
@click.option("--json", "as_json", is_flag=True)
def remote_list(as_json):
    """The remote models added."""
    from r1desk.engine.chat import remotes

    items = remotes.remotes()
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in items], ensure_ascii=False, indent=2))
        return
    if not items:
        click.echo("No remote models; add one with: r1desk remote add NAME URL [--api-key KEY]")
    for r in items:
        click.echo(f"{r.name}\t{r.model or '(first listed)'}\t{r.url}" + ("\t(key)" if r.api_key else ""))


@remote.command("rm")
@click.argument("name")
def remote_rm(name):
    """Forget the remote model NAME (nothing on the server changes)."""
    from r1desk.engine.chat import remotes

    remotes.remove(name)
    click.echo(f"Removed {name}")
