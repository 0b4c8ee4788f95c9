"""``r1desk chat``: talk to a model from the terminal, one prompt or an interactive loop."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import click

from r1desk.cli import cli
from r1desk.engine.chat.service import DEFAULT_MAX_TOKENS, ChatService, SamplingParams
from r1desk.engine.errors import R1deskError
from r1desk.engine.events import (
    ChatError,
    ContentDelta,
    Loading,
    PromptProgress,
    PromptRead,
    Queued,
    ReasoningDelta,
    Sources,
    Started,
    Stats,
)
from r1desk.engine.inference.host import LoadOptions

RELOAD_REASONS = {
    "crashed": "the model process stopped",
    "unresponsive": "it did not stop in time and was restarted",
    "template-timeout": "its chat template took too long and it was restarted",
}


def _gpu_layers(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("use a number of layers or 'auto'") from None


@cli.command()
@click.argument("model")
@click.option("-p", "--prompt", help="Send one message and exit (otherwise an interactive loop); '-' reads it "
              "from standard input.")
@click.option("--conversation", "conversation_id", type=int, help="Continue this conversation.")
@click.option("--system", help="System prompt (for R1 models it leads the first user turn).")
@click.option("--ctx", type=click.IntRange(min=256), help="Context length in tokens (default: from the model, at most 8192).")
@click.option("--gpu-layers", default="auto", show_default=True, help="Layers to offload to the GPU, or 'auto'.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: physical cores).")
@click.option("--flash-attn", is_flag=True, help="Use flash attention (needed for a quantised KV cache).")
@click.option("--kv-type", type=click.Choice(["f16", "q8_0", "q4_0"]), default="f16", show_default=True,
              help="KV cache type.")
@click.option("--no-mmap", is_flag=True, help="Read the whole model into memory instead of mapping it.")
@click.option("--max-tokens", type=click.IntRange(min=0), default=DEFAULT_MAX_TOKENS, show_default=True,
              help="Most tokens in a reply's answer; an R1 model's thinking is not counted (see "
              "--reasoning-budget). 0: no limit, the reply may run until the context is full.")
@click.option("--temperature", type=float)
@click.option("--top-p", type=float)
@click.option("--seed", type=int)
@click.option("--reasoning-budget", type=click.IntRange(min=0),
              help="Most thinking tokens before the model must answer (0: answer without thinking).")
@click.option("--reasoning-seconds", type=click.FloatRange(min=0, min_open=True),
              help="Most seconds of thinking before the model must answer.")
@click.option("--json-schema", "json_schema", type=click.File("r", encoding="utf-8"),
              help="Constrain the answer to JSON following this JSON Schema file ('-': standard input).")
@click.option("--rpc", "rpc_servers", multiple=True, metavar="HOST:PORT",
              help="Split the model over this llama.cpp RPC worker too (see 'r1desk rpc-server'); repeat for several.")
@click.option("--hide-reasoning", is_flag=True, help="Do not print the model's reasoning.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per reply.")
@click.option("--adapter", "adapter_specs", multiple=True, metavar="NAME[:SCALE]",
              help="Apply an imported LoRA adapter (see 'r1desk adapters'), at SCALE from 0 to 2 (default 1); "
              "repeat for several. The conversation keeps them; --adapter none takes them off.")
@click.option("--collection", "collection_names", multiple=True, metavar="NAME",
              help="Answer from this collection of documents (see 'r1desk index'), citing its passages as [n]; "
              "repeat for several. The conversation keeps them; --collection none takes them off.")
def chat(model, prompt, conversation_id, system, ctx, gpu_layers, threads, flash_attn, kv_type, no_mmap,
         max_tokens, temperature, top_p, seed, reasoning_budget, reasoning_seconds, json_schema, rpc_servers,
         hide_reasoning, as_json, adapter_specs, collection_names):
    """Chat with MODEL (a .gguf file or a library name)."""
    grammar = None
    if json_schema is not None:
        import json

        from r1desk.engine.inference.structured import schema_grammar

        try:
            schema = json.load(json_schema)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"{json_schema.name}: not valid JSON ({exc})", param_hint="--json-schema") from None
        grammar = schema_grammar(schema)
    else:
        schema = None
    params = SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                            reasoning_budget=reasoning_budget, reasoning_seconds=reasoning_seconds, grammar=grammar,
                            json_schema=schema)
    if prompt == "-":
        prompt = sys.stdin.read()
    if prompt is not None and not prompt.strip():
        raise click.UsageError("the message is empty")
    from r1desk.cli.adapters import parse_adapter

    chosen = [] if list(adapter_specs) == ["none"] else [parse_adapter(spec) for spec in adapter_specs]
    service = ChatService()
    try:
        options = LoadOptions(n_ctx=ctx, n_threads=threads, n_gpu_layers=_gpu_layers(gpu_layers),
                              flash_attn=flash_attn, kv_type=kv_type, use_mmap=not no_mmap,
                              rpc_servers=list(rpc_servers))
        show = sys.stderr.isatty()  # a line that goes away once loaded; errors stay one line
        if show:
            click.echo(click.style(f"Loading {model}…", dim=True), err=True, nl=False)
        try:
            info = service.load_model(model, options)
        finally:
            if show:
                click.echo("\r\033[K", err=True, nl=False)
        for warning in info.warnings:
            click.echo(click.style(f"Note: {warning}", dim=True), err=True)
        if conversation_id is not None:
            service.history.get_conversation(conversation_id)
        if system:
            if conversation_id is None:
                conversation_id = service.history.create_conversation(model=info.name)
            service.history.add_message(conversation_id, "system", system)
        if adapter_specs:
            if conversation_id is None:
                conversation_id = service.history.create_conversation(model=info.name)
            service.set_adapters(conversation_id, chosen)
        if collection_names:
            if conversation_id is None:
                conversation_id = service.history.create_conversation(model=info.name)
            service.set_collections(conversation_id, [] if list(collection_names) == ["none"] else collection_names)
        if prompt is not None:
            _reply(service, conversation_id, prompt, params, as_json, hide_reasoning, one_shot=True)
            return
        if not as_json:
            click.echo(click.style(f"{info.name} (context {info.n_ctx:,} tokens). Type /exit or press Ctrl+D "
                                   'to quit; start and end a message with """ to write several lines.',
                                   dim=True), err=True)
            if conversation_id is not None:
                _show_earlier(service, conversation_id)
        while True:
            text = _read_message()
            if text is None:
                break
            if not text.strip():
                continue
            conversation_id = _reply(service, conversation_id, text, params, as_json, hide_reasoning)
    finally:
        service.close()


EARLIER_TURNS = 6  # shown when a conversation is resumed
MULTILINE = '"""'  # a message between two of these may span several lines


def _show_earlier(service: ChatService, conversation_id: int) -> None:
    messages = [m for m in service.history.messages(conversation_id) if m.role in ("user", "assistant")]
    if len(messages) > EARLIER_TURNS:
        click.echo(click.style(f"… {len(messages) - EARLIER_TURNS} earlier message(s)", dim=True), err=True)
    for m in messages[-EARLIER_TURNS:]:
        if m.role == "user":
            click.echo(click.style(">>> ", bold=True) + m.content)
        else:
            click.echo(m.content + "\n")


def _read_message() -> str | None:
    """One message from the terminal: a line, or the lines between two \"\"\" marks; None to quit."""
    prompt = ">>> " if sys.stdin.isatty() else ""
    try:
        line = input(prompt)
    except EOFError:
        return None
    if line.strip() in ("/exit", "/quit", "/bye"):
        return None
    if not line.lstrip().startswith(MULTILINE):
        return line
    body = line.lstrip()[len(MULTILINE):]
    if body.rstrip().endswith(MULTILINE):
        return body.rstrip()[: -len(MULTILINE)]
    lines = [body] if body else []
    while True:
        try:
            more = input("... " if prompt else "")
        except EOFError:
            break
        if more.rstrip().endswith(MULTILINE):
            lines.append(more.rstrip()[: -len(MULTILINE)])
            break
        lines.append(more)
    return "\n".join(lines)


PROMPT_PROGRESS_AFTER_SECONDS = 1.0  # a prompt read quicker than this shows no progress


class PromptProgressLine:
    """How far a long prompt has been read, on stderr: a line that updates on a terminal, else one
    note once the reply starts. Nothing for a prompt read in under PROMPT_PROGRESS_AFTER_SECONDS."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started: float | None = None
        self.last: tuple[int, int] | None = None
        self.shown = False

    def start(self) -> None:
        self.started, self.last, self.shown = time.monotonic(), None, False

    def update(self, done: int, total: int) -> None:
        if self.started is None:
            self.start()
        self.last = (done, total)
        if self.tty and time.monotonic() - self.started >= PROMPT_PROGRESS_AFTER_SECONDS:
            text = click.style(f"Reading the prompt… {done:,} / {total:,} tokens", dim=True)
            click.echo("\r\033[K" + text, file=self.stream, nl=False)
            self.shown = True

    def end(self) -> None:
        """The reply has begun (or stopped): clear the line, or say how long the prompt took."""
        if self.started is None or self.last is None:
            self.started = None
            return
        elapsed = time.monotonic() - self.started
        if self.shown:
            click.echo("\r\033[K", file=self.stream, nl=False)
        elif not self.tty and elapsed >= PROMPT_PROGRESS_AFTER_SECONDS:
            done, total = self.last
            what = f"the prompt: {total:,} tokens" if done >= total else f"{done:,} of {total:,} prompt tokens"
            click.echo(click.style(f"Read {what} in {elapsed:.1f} s", dim=True), file=self.stream)
        self.started, self.last, self.shown = None, None, False


def _reply(service: ChatService, conversation_id, text, params, as_json, hide_reasoning, *, one_shot=False):
    reasoning: list[str] = []
    answer: list[str] = []
    stats: Stats | None = None
    sources: Sources | None = None
    in_reasoning = False
    prompt_line = PromptProgressLine()
    events = service.send(conversation_id, text, params)
    # Ctrl+C stops the reply (saved as cancelled) instead of breaking out of it wherever it lands.
    stopped = []

    def stop(_signum, _frame) -> None:
        stopped.append(True)
        events.cancel()

    previous = signal.signal(signal.SIGINT, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        for event in events:
            if isinstance(event, (ReasoningDelta, ContentDelta, Stats, ChatError)):
                prompt_line.end()
            if isinstance(event, Started):
                conversation_id, message_id = event.conversation_id, event.message_id
            elif isinstance(event, Sources):
                sources = event
            elif isinstance(event, PromptRead):
                prompt_line.start()
            elif isinstance(event, PromptProgress):
                prompt_line.update(event.done, event.total)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
                if not as_json and not hide_reasoning:
                    if not in_reasoning:
                        click.echo(click.style("Thinking...\n", dim=True, italic=True), nl=False)
                        in_reasoning = True
                    click.echo(click.style(event.text, dim=True), nl=False)
                    sys.stdout.flush()  # stream through a pipe too, not in 8 KB blocks
            elif isinstance(event, ContentDelta):
                answer.append(event.text)
                if not as_json:
                    if in_reasoning:
                        click.echo(click.style("\n...done thinking.\n\n", dim=True, italic=True), nl=False)
                        in_reasoning = False
                    click.echo(event.text, nl=False)
                    sys.stdout.flush()
            elif isinstance(event, Loading):
                click.echo(click.style(f"Reloading {event.model}: {RELOAD_REASONS.get(event.reason, event.reason)}"
                                       f"{' (' + event.detail + ')' if event.detail else ''}…", dim=True), err=True)
            elif isinstance(event, Queued):
                click.echo(click.style(f"Waiting for the model: {event.position} request(s) ahead…", dim=True),
                           err=True)
            elif isinstance(event, Stats):
                stats = event
            elif isinstance(event, ChatError):
                raise R1deskError(event.message)
    except KeyboardInterrupt:
        prompt_line.end()
        events.cancel()
        for event in events:  # let the reply finish as cancelled, saved
            if isinstance(event, Stats):
                stats = event
        interrupted = one_shot  # in the interactive loop the user stays, and may ask again
    else:
        interrupted = bool(stopped) and one_shot
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if as_json:
        from r1desk.cli.ask import source_dicts

        click.echo(json.dumps({
            "conversation_id": conversation_id,
            "reasoning": "".join(reasoning),
            "answer": "".join(answer),
            "stats": stats.to_dict() if stats else None,
            **({"message_id": message_id, "sources": source_dicts(sources.items, "".join(answer)),
                "notes": sources.notes} if sources is not None else {}),
        }, ensure_ascii=False))
    else:
        click.echo("")
        if sources is not None:
            from r1desk.cli.ask import print_sources

            print_sources(sources.items, sources.notes, "".join(answer))
        if stats is not None:
            line = f"[{stats.completion_tokens} tokens, {stats.tokens_per_second or 0:.1f} tok/s, " \
                   f"first token {stats.ttft_ms or 0:.0f} ms"
            if stats.prompt_tokens:
                source = {"memory": " restored from memory", "disk": " restored from disk"}.get(
                    stats.reused_from or "", " reused")
                line += f", prompt {stats.prompt_tokens_read:,} read"
                if stats.cached_tokens:
                    line += f", {stats.cached_tokens:,}{source}"
            if stats.reasoning_seconds:
                line += f", thought {stats.reasoning_seconds:.1f} s"
            line += f", conversation {conversation_id}]"
            click.echo(click.style(line, dim=True), err=True)
            for note in stats.notes:
                click.echo(click.style(f"Note: {note}", dim=True), err=True)
    if interrupted:
        raise KeyboardInterrupt  # the command line says "Interrupted." and exits 130
    return conversation_id
