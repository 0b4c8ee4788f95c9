"""``r1desk serve``: the loaded model over an OpenAI-compatible HTTP API (see server/api.py)."""

from __future__ import annotations

import logging
import os

import click

from r1desk.cli import cli


def last_used_model() -> str:
    """The library's most recently used model (what ``serve`` loads when given none)."""
    from r1desk.engine.models.library import Library

    used = [m for m in Library().list(refresh=False) if m.last_used_at]
    if not used:
        raise click.UsageError("name the model to serve: none in the library has been used yet (see r1desk models)")
    return max(used, key=lambda m: m.last_used_at).name


@cli.command()
@click.argument("model", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=1337, show_default=True, type=click.IntRange(1, 65535))
@click.option("--api-key", envvar="R1DESK_API_KEY", help="Required as 'Authorization: Bearer KEY' (or R1DESK_API_KEY). "
              "Needed to listen anywhere but this machine.")
@click.option("--allow-host", "allowed_hosts", multiple=True,
              help="A host name clients may use besides localhost (the Host header is checked).")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="A web page origin (https://example.com) allowed to call the API; none by default.")
@click.option("--ctx", type=click.IntRange(min=256), help="Context length (default: the model's, at most 8,192).")
@click.option("--embedding-model", help="An embedding model (a .gguf file or a library name) for /v1/embeddings.")
@click.option("--rpc", "rpc_servers", multiple=True, metavar="HOST:PORT",
              help="Split the model over this llama.cpp RPC worker too (see 'r1desk rpc-server'); repeat for several.")
def serve(model, host, port, api_key, allowed_hosts, cors_origins, ctx, embedding_model, rpc_servers):
    """Serve MODEL (a .gguf file or a library name; by default the one used last) at
    http://HOST:PORT/v1, as OpenAI's API.

    /v1/models, /v1/chat/completions and /v1/completions (streaming or not; R1's thinking in
    reasoning_content; response_format json_object or json_schema; tools and tool_choice for
    models whose template takes tools; extra fields reasoning_budget in tokens,
    reasoning_seconds, and adapters: imported LoRA adapters as [{"name", "scale"}]), /v1/embeddings with --embedding-model, and /metrics (Prometheus).

    Answers from documents: the extra field "collections": ["NAME", ...] of
    /v1/chat/completions searches those collections (see 'r1desk index') for the last user
    message and gives the model the passages that fit its context, as quoted material; the
    reply carries them in a top-level "sources" field (file, place, excerpt, score, "cited"
    when the answer cites it) with "source_notes", and when streaming in a chunk with no
    choices after the last one. With the openai client: extra_body={"collections": ["notes"]}.

    Nothing is saved to the history.
    """
    import uvicorn

    from r1desk.engine.chat.service import ChatService
    from r1desk.engine.inference.host import LoadOptions
    from r1desk.server.api import create_app
    from r1desk.server.background import is_loopback

    if not is_loopback(host) and not api_key:
        raise click.UsageError(f"listening on {host} lets other machines in: give --api-key (or R1DESK_API_KEY)")
    from r1desk.engine.chat.service import resolve_model
    from r1desk.engine.inference.host import ModelHost

    model = model or last_used_model()
    service = ChatService()
    embedder = None
    try:
        info = service.load_model(model, LoadOptions(n_ctx=ctx, rpc_servers=list(rpc_servers)))
        if embedding_model:
            embedder = ModelHost()
            embedder.load(resolve_model(embedding_model), LoadOptions(embedding=True))
    except BaseException:
        service.close()
        if embedder is not None:
            embedder.close()
        raise
    extra = tuple(allowed_hosts) + (() if is_loopback(host) or host in ("0.0.0.0", "::") else (host,))
    app = create_app(service, api_key=api_key, allowed_hosts=extra, cors_origins=tuple(cors_origins),
                     embedder=embedder)
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
        if embedder is not None:
            embedder.close()


@cli.command("rpc-server")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --trust-network.")
@click.option("--port", default=50052, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: half the cores).")
@click.option("--trust-network", is_flag=True,
              help="Listen beyond this machine: llama.cpp's RPC has no password or encryption, so only on a "
              "network where every machine is yours.")
def rpc_server(host, port, threads, trust_network):
    """Lend this machine's memory and processor (or GPU) to a model loaded elsewhere.

    Runs llama.cpp's RPC worker from this install. On the machine with the model:
    r1desk chat MODEL --rpc THIS-HOST:PORT (or serve --rpc). Ctrl+C stops it.
    """
    import signal

    from r1desk.engine.inference import rpc
    from r1desk.server.background import is_loopback

    if not is_loopback(host) and not trust_network:
        raise click.UsageError(f"listening on {host} lets any machine on the network use this one (llama.cpp's RPC "
                               "has no password): add --trust-network if every machine there is yours")
    click.echo(f"RPC worker listening on {host}:{port}; on the machine with the model use --rpc {host}:{port}. "
               "Ctrl+C stops it.", err=True)
    # The worker runs inside llama.cpp and never returns to Python: Ctrl+C ends the process itself.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    rpc.serve(host, port, threads=threads)
