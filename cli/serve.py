"""``r1desk serve``: the loaded model over an OpenAI-compatible HTTP API (see server/api.py)."""

from __future__ import annotations

import ipaddress
import logging
import os

import click

from r1desk.cli import cli

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cli.command()
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=1337, show_default=True, type=click.IntRange(1, 65535))
@click.option("--api-key", envvar="R1DESK_API_KEY", help="Required as 'Authorization: Bearer KEY' (or R1DESK_API_KEY). "
              "Needed to listen anywhere but this machine.")
@click.option("--allow-host", "allowed_hosts", multiple=True,
              help="A host name clients may use besides localhost (the Host header is checked).")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="A web page origin (https://example.com) allowed to call the API; none by default.")
@click.option("--ctx", type=click.IntRange(min=256), help="Context length (default: the model's, at most 8,192).")
def serve(model, host, port, api_key, allowed_hosts, cors_origins, ctx):
    """Serve MODEL (a .gguf file or a library name) at http://HOST:PORT/v1, as OpenAI's API.

    /v1/models, /v1/chat/completions (streaming or not; R1's thinking in reasoning_content;
    extra field reasoning_budget) and /metrics (Prometheus). Nothing is saved to the history.
    """
    import uvicorn

    from r1desk.engine.chat.service import ChatService
    from r1desk.engine.inference.host import LoadOptions
    from r1desk.server.api import create_app

    if not is_loopback(host) and not api_key:
        raise click.UsageError(f"listening on {host} lets other machines in: give --api-key (or R1DESK_API_KEY)")
    service = ChatService()
    info = service.load_model(model, LoadOptions(n_ctx=ctx))
    extra = tuple(allowed_hosts) + (() if is_loopback(host) or host in ("0.0.0.0", "::") else (host,))
    app = create_app(service, api_key=api_key, allowed_hosts=extra, cors_origins=tuple(cors_origins))
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving {info.name} at http://{shown}:{port}/v1"
               + (" (API key required)" if api_key else "") + "; Ctrl+C stops.", err=True)
    if not is_loopback(host):
        click.echo(f"Listening beyond this machine on {host}: every request needs the API key.", err=True)
    logging.basicConfig(level=logging.INFO if os.environ.get("R1DESK_SERVER_LOG") else logging.WARNING)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        service.close()
