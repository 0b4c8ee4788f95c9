"""The model process: the only code that touches ``llama_cpp.Llama``.

It runs in a child process started by ``engine.host.ModelHost`` and talks over a pipe: the
parent sends requests (load, chat, count), the child streams back small tuples. A llama.cpp
abort or an out-of-memory kill ends this process only; the parent reports it and starts anew.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import random
import signal
import sys
import time
from typing import Any

from r1desk.engine.errors import ContextOverflow, ModelLoadFailed, R1deskError
from r1desk.engine.inference.reasoning import ThinkSplitter
from r1desk.engine.inference.templates import CHATML, ChatTemplate

OPEN_THINKING = "<think>\n"
CLOSE_THINKING = "\n</think>\n\n"
SLOW_TOKEN_SECONDS = 0.05  # above this per token, keep the abort check on during decoding too
PROMPT_PROGRESS_SECONDS = 0.25  # at most this often, a ("prompt", done, total) while a long prompt is read


class Runner:
    def __init__(self, conn, cancel_event):
        self.conn = conn
        self.cancel = cancel_event
        self.llm = None
        self.template: ChatTemplate | None = None
        self.info: dict[str, Any] = {}
        # Per-token facts asked on every generated token, looked up once per model.
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self._abort_cb = None
        self._quiet_log = None  # kept referenced: llama.cpp calls it for every log line
        # The last prompt + reply as text and as the tokens the model really saw; see _tokenize_prompt.
        self._last_text = ""
        self._last_tokens: list[int] = []

    # Loading ------------------------------------------------------------------------------
    def load(self, path: str, opts: dict[str, Any]) -> dict[str, Any]:
        import llama_cpp
        from llama_cpp import llama as llama_module

        # r1desk renders chat templates itself (sandboxed, with a fallback); keep the bindings
        # from compiling them during load, where a broken template would refuse the model.
        llama_module.llama_chat_format.Jinja2ChatFormatter = _UnusedFormatter
        # llama.cpp's own log lines would reach the user's terminal raw; r1desk says what matters
        # in its own words (the warnings below), and --verbose-style debugging can turn them on.
        if not opts.get("verbose") and self._quiet_log is None:
            self._quiet_log = llama_cpp.llama_log_callback(lambda _level, _text, _data: None)
            llama_cpp.llama_log_set(self._quiet_log, ctypes.c_void_p(0))

        kv_types = {"f16": 1, "f32": 0, "q8_0": 8, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7}
        kv = kv_types.get(str(opts.get("kv_type") or "f16").lower())
        if kv is None:
            raise ModelLoadFailed(f"unknown KV cache type {opts.get('kv_type')!r} (use f16, q8_0 or q4_0)")
        if kv not in (0, 1) and not opts.get("flash_attn"):
            raise ModelLoadFailed("a quantised KV cache needs flash attention turned on")
        self.unload()
        opts, plan_notes = _plan_load(path, opts)
        t0 = time.perf_counter()
        try:
            self.llm = llama_cpp.Llama(
                model_path=path,
                # Model Params
                n_gpu_layers=int(opts.get("n_gpu_layers", 0)),
                use_mmap=bool(opts.get("use_mmap", True)),
                # Context Params
                n_ctx=int(opts["n_ctx"]),
                n_batch=int(opts.get("n_batch", 512)),
                n_ubatch=int(opts.get("n_batch", 512)),
                n_threads=int(opts["n_threads"]),
                n_threads_batch=int(opts.get("n_threads_batch") or opts["n_threads"]),
                flash_attn=bool(opts.get("flash_attn", False)),
                type_k=kv,
                type_v=kv,
                verbose=bool(opts.get("verbose", False)),
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadFailed(f"{path}: llama.cpp could not load the model ({exc})") from None
        llm = self.llm
        self._pieces.clear()
        self._eog.clear()
        self._last_text, self._last_tokens = "", []
        # llama.cpp may round the context up; the bindings' buffers keep the requested size.
        self.n_ctx = min(llm.n_ctx(), len(llm.input_ids))
        bos_id, eos_id = llm.token_bos(), llm.token_eos()
        bos = llm._model.token_get_text(bos_id) if bos_id >= 0 else ""
        eos = llm._model.token_get_text(eos_id) if eos_id >= 0 else ""
        source = llm.metadata.get("tokenizer.chat_template")
        warnings: list[str] = list(plan_notes)
        n_ctx_train = llm._model.n_ctx_train()
        if n_ctx_train and self.n_ctx > n_ctx_train:
            warnings.append(f"the context ({self.n_ctx:,} tokens) is longer than the {n_ctx_train:,} tokens this "
                            "model was trained for; replies may lose track beyond that")
        if not source:
            warnings.append("the model has no chat template; using ChatML")
        self.template = ChatTemplate(source or CHATML, bos_token=bos, eos_token=eos)
        if self.template.fallback_reason:
            warnings.append(self.template.fallback_reason)
        md = llm.metadata
        self.info = {
            "path": path,
            "n_ctx": self.n_ctx,
            "n_ctx_train": n_ctx_train,
            "n_vocab": llm.n_vocab(),
            "architecture": md.get("general.architecture", "unknown"),
            "name": md.get("general.name") or os.path.basename(path),
            "chat_template_sha256": self.template.sha256,
            "is_reasoning": self.template.is_reasoning,
            "sampling": {k.split(".")[-1]: v for k, v in md.items() if k.startswith("general.sampling.")},
            "n_gpu_layers": int(opts.get("n_gpu_layers", 0)),
            "load_seconds": time.perf_counter() - t0,
            "warnings": warnings,
        }
        return self.info

    def unload(self) -> None:
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    # Tokens -------------------------------------------------------------------------------
    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            import llama_cpp

            buf = ctypes.create_string_buffer(256)
            n = llama_cpp.llama_token_to_piece(self.llm._model.vocab, token, buf, 256, 0, False)
            piece = buf.raw[: max(n, 0)]
            self._pieces[token] = piece
        return piece

    def _tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def _tokenize_prompt(self, prompt: str) -> list[int]:
        """Tokens for a rendered prompt, re-using the tokens of the previous turn where they fit.

        Re-tokenising a reply often gives other tokens than the model generated (BPE merges
        differ), which would make llama.cpp re-evaluate the whole reply on the next turn. When
        the new prompt starts with the previous prompt and reply, keep the tokens as generated.
        """
        if self._last_text and prompt.startswith(self._last_text):
            return self._last_tokens + self._tokenize(prompt[len(self._last_text):])
        return self._tokenize(prompt)

    def _is_eog(self, token: int) -> bool:
        eog = self._eog.get(token)
        if eog is None:
            import llama_cpp

            eog = self._eog[token] = bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))
        return eog

    # Chat ---------------------------------------------------------------------------------
    def _fit(self, messages: list[dict[str, Any]], reserve: int, variables: dict[str, Any]):
        """Render the prompt, dropping the oldest turns until it fits with room to answer."""
        n_ctx = self.n_ctx
        system = [m for m in messages if m["role"] == "system"][:1]
        turns = [m for m in messages if m["role"] != "system"]
        dropped = 0
        while True:
            prompt = self.template.render(system + turns, **variables)
            tokens = self._tokenize_prompt(prompt)
            if len(tokens) + reserve <= n_ctx:
                return prompt, tokens, dropped
            # Drop the oldest turn, never the latest user message.
            if len(turns) > 1:
                turns = turns[1:]
                while len(turns) > 1 and turns[0]["role"] != "user":
                    turns = turns[1:]
                dropped += 1
                continue
            if len(tokens) + 16 <= n_ctx:  # fits with a smaller reply
                return prompt, tokens, dropped
            trained = self.llm._model.n_ctx_train()
            advice = ("shorten it or load the model with a longer context (it was trained for "
                      f"{trained:,} tokens)" if trained > n_ctx else
                      "shorten it: this is already the longest context the model was trained for")
            raise ContextOverflow(f"the message is {len(tokens):,} tokens but the context holds {n_ctx:,}; {advice}",
                                  facts={"code": "too-long", "tokens": len(tokens), "n_ctx": n_ctx,
                                         "n_ctx_train": trained})

    def _set_abort(self, on: bool) -> None:
        import llama_cpp

        ctx = self.llm._ctx.ctx
        if on:
            if self._abort_cb is None:
                cancel = self.cancel
                self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: bool(cancel.is_set()))
            llama_cpp.llama_set_abort_callback(ctx, self._abort_cb, None)
        else:
            llama_cpp.llama_set_abort_callback(ctx, llama_cpp.ggml_abort_callback(0), None)

    def chat(self, req: dict[str, Any]) -> None:
        send = self.conn.send
        llm = self.llm
        if llm is None:
            raise ModelLoadFailed("no model is loaded")
        t_start = time.perf_counter()
        p = req["params"]
        budget = p.get("reasoning_budget")
        max_tokens = p.get("max_tokens")
        n_ctx = self.n_ctx
        reserve = min(max_tokens or 1024, n_ctx // 4)
        variables = dict(req.get("template_vars") or {})
        prompt, tokens, dropped = self._fit(req["messages"], reserve, variables)
        opened = prompt.rstrip().endswith("<think>")
        if p.get("open_thinking") and not opened and budget != 0:
            # DeepSeek's advice for R1: start the reply with "<think>\n", or it may skip thinking.
            prompt += OPEN_THINKING
            tokens = tokens + self._tokenize(OPEN_THINKING)
            opened = True
        splitter = ThinkSplitter(in_reasoning=opened, detect_open=self.template.is_reasoning or opened)
        cached = _common_prefix(llm._input_ids[: llm.n_tokens].tolist(), tokens) if llm.n_tokens else 0
        send(("rendered", len(tokens), dropped, cached))
        if budget == 0 and self.template.is_reasoning:
            tokens = tokens + self._tokenize(("" if opened else "<think>") + CLOSE_THINKING)
            splitter.close_reasoning()

        seed = p.get("seed")
        llm.set_seed(int(seed) if seed is not None else random.randrange(2**31))
        sample = dict(
            temp=float(p["temperature"]), top_p=float(p["top_p"]), top_k=int(p["top_k"]),
            min_p=float(p["min_p"]), repeat_penalty=float(p["repeat_penalty"]),
        )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        raw_text: list[str] = []
        spliced = True  # the generated text follows the prompt directly
        generated: list[int] = []
        n_reasoning = 0
        t_first = t_last = None
        t_think_end = None
        finish = "stop"
        notes: list[str] = []
        # The context bounds reasoning and answer together; max_tokens counts answer tokens only,
        # so a reasoning model gets room to think (its thinking has its own reasoning_budget).
        room = n_ctx - len(tokens)
        answer_limit = int(max_tokens) if max_tokens else None
        context = tokens
        progress_shown = False
        self._set_abort(True)
        abort_on = True

        def emit(parts: list[tuple[str, str]]) -> None:
            for kind, text in parts:
                send(("r" if kind == "reasoning" else "c", text))

        try:
            while True:
                restart = False
                progress_shown = self._read_prompt(context, len(tokens), t_start) or progress_shown
                if self.cancel.is_set():
                    finish = "cancelled"
                    break
                gen = llm.generate(context, reset=True, **sample)
                try:
                    for tok in gen:
                        now = time.perf_counter()
                        if t_first is None:
                            t_first = now
                            if progress_shown:
                                send(("prompt", len(tokens), len(tokens)))
                        elif abort_on and len(generated) >= 3:
                            per_token = (now - t_first) / len(generated)
                            if per_token < SLOW_TOKEN_SECONDS:
                                self._set_abort(False)
                                abort_on = False
                        t_last = now
                        if self.cancel.is_set():
                            finish = "cancelled"
                            break
                        if self._is_eog(tok):
                            break
                        generated.append(tok)
                        was_reasoning = splitter.in_reasoning
                        text = decoder.decode(self._piece(tok))
                        if text:
                            raw_text.append(text)
                            emit(splitter.feed(text))
                        if was_reasoning:
                            n_reasoning += 1
                            if not splitter.in_reasoning and t_think_end is None:
                                t_think_end = now
                        if len(generated) >= room:
                            finish = "length"
                            notes.append("the context is full")
                            break
                        if answer_limit is not None and len(generated) - n_reasoning >= answer_limit:
                            finish = "length"
                            notes.append(f"the reply limit of {answer_limit:,} tokens was reached (thinking not "
                                         "counted); raise it with --max-tokens or Longest reply in Settings, "
                                         "0 for no limit")
                            break
                        if (budget is not None and budget > 0 and splitter.in_reasoning
                                and n_reasoning >= budget):
                            # Close the thinking ourselves and let the model answer.
                            emit(splitter.flush())
                            splitter.close_reasoning()
                            t_think_end = now
                            notes.append(f"reasoning budget of {budget} tokens reached")
                            context = tokens + generated + self._tokenize(CLOSE_THINKING)
                            spliced = False
                            restart = True
                            break
                finally:
                    gen.close()
                if not restart:
                    break
        except RuntimeError as exc:
            if self.cancel.is_set():
                finish = "cancelled"
            else:
                raise ModelLoadFailed(f"llama.cpp failed while generating ({exc})") from None
        finally:
            if abort_on:
                self._set_abort(False)
        tail = decoder.decode(b"", final=True)
        if tail:
            raw_text.append(tail)
            emit(splitter.feed(tail))
        if spliced and budget != 0:
            self._last_text, self._last_tokens = prompt + "".join(raw_text), tokens + generated
        else:
            self._last_text, self._last_tokens = "", []
        emit(splitter.flush())
        if splitter.in_reasoning and not splitter.closed and finish == "stop":
            notes.append("the model ended without closing its reasoning")
        if dropped:
            notes.append(f"{dropped} older turn(s) left out to fit the context")
        t_end = time.perf_counter()
        n = len(generated)
        stats = {
            "prompt_tokens": len(tokens),
            "completion_tokens": n,
            "reasoning_tokens": n_reasoning,
            "ttft_ms": (t_first - t_start) * 1000 if t_first else None,
            "tokens_per_second": (n - 1) / (t_last - t_first) if n > 1 and t_last > t_first else None,
            "reasoning_seconds": ((t_think_end or t_end) - t_first) if splitter.opened and t_first else None,
            "total_seconds": t_end - t_start,
            "dropped_turns": dropped,
            "finish_reason": finish,
            "n_ctx": n_ctx,
            "context_used": min(n_ctx, len(tokens) + n),
            "cached_tokens": cached,
            "notes": notes,
        }
        send(("done", stats))

    def _read_prompt(self, context: list[int], total: int, started: float) -> bool:
        """Evaluate the new part of a long prompt batch by batch, saying how far it got.

        ``Llama.generate()`` would read it in one silent call that only an abort stops. These are
        the batches it would make (n_batch tokens each from the first uncached one); the last,
        partial batch is left to generate(), which finds everything before it cached, so the
        reply comes out the same and the KV prefix stays reusable. Returns whether progress was
        sent; stops early, leaving a valid cache, when the reply is cancelled.
        """
        llm = self.llm
        n_batch = llm.n_batch
        keep = _common_prefix(llm._input_ids.tolist(), context) if llm.n_tokens else 0
        if len(context) - keep <= n_batch:
            return False  # one batch: generate() reads it as quickly, there is nothing to show
        if keep < llm.n_tokens:
            if not llm._ctx.kv_cache_seq_rm(-1, keep, -1):
                llm.reset()  # a recurrent model cannot drop the tail of its state: read it all
                keep = 0
            llm.n_tokens = keep
        end = keep + (len(context) - keep - 1) // n_batch * n_batch
        send = self.conn.send
        last = started
        for start in range(keep, end, n_batch):
            if self.cancel.is_set():
                break
            llm.eval(context[start:start + n_batch])
            now = time.perf_counter()
            if start == keep or now - last >= PROMPT_PROGRESS_SECONDS:
                send(("prompt", start + n_batch, total))
                last = now
        return True

    def count(self, messages: list[dict[str, Any]]) -> int:
        return len(self._tokenize(self.template.render(messages)))

    # Loop ---------------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            try:
                req = self.conn.recv()
            except (EOFError, OSError):
                return
            op = req.get("op")
            try:
                if op == "load":
                    self.conn.send(("loaded", self.load(req["path"], req["options"])))
                elif op == "chat":
                    self.chat(req)
                elif op == "count":
                    self.conn.send(("count", self.count(req["messages"])))
                elif op == "ping":
                    self.conn.send(("pong", os.getpid()))
                elif op == "shutdown":
                    self.unload()
                    return
                else:
                    self.conn.send(("error", "bug", f"unknown request {op!r}"))
            except (BrokenPipeError, EOFError):
                return
            except R1deskError as exc:
                self.conn.send(("error", type(exc).__name__, str(exc), exc.facts))
            except MemoryError:
                self.conn.send(("error", "NotEnoughMemory", "out of memory in the model process"))
            except Exception as exc:  # a bug: report it, keep serving
                self.conn.send(("error", "bug", f"{type(exc).__name__}: {exc}"))


def _plan_load(path: str, opts: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Settle "auto" GPU layers and check the memory estimate before llama.cpp allocates anything.

    A context chosen by default shrinks (not below 2048) until the model fits; a context the
    user asked for is kept, and a load that would not fit is refused with the numbers.
    """
    from r1desk.engine.errors import NotEnoughMemory
    from r1desk.engine.gguf.header import read_header
    from r1desk.engine.hardware import fit
    from r1desk.engine.hardware import probe as hardware

    hw = hardware.detect()
    info = read_header(path)
    kv_type, flash = str(opts.get("kv_type", "f16")), bool(opts.get("flash_attn"))
    n_ctx = int(opts["n_ctx"])
    notes: list[str] = []
    while True:
        ngl = opts.get("n_gpu_layers", "auto")
        if ngl == "auto":
            ngl = fit.default_gpu_layers(info, hw, n_ctx, kv_type, flash) if hw.build.gpu_offload else 0
        plan = fit.estimate(info, n_ctx=n_ctx, hardware=hw, n_gpu_layers=int(ngl), kv_type=kv_type, flash_attn=flash)
        if plan.fits:
            break
        if opts.get("n_ctx_auto") and n_ctx > 2048:
            n_ctx = max(2048, n_ctx // 2)
            continue
        short = [d for d in plan.devices if not d.fits] or plan.devices
        raise NotEnoughMemory(f"{path}: does not fit this machine: {plan.describe()}",
                              facts={"code": "too-big", "need": sum(d.total for d in short),
                                     "have": sum(d.budget or 0 for d in short), "n_ctx": n_ctx})
    if n_ctx != int(opts["n_ctx"]):
        notes.append(f"context reduced to {n_ctx} tokens to fit the memory available")
    return dict(opts, n_ctx=n_ctx, n_gpu_layers=int(ngl)), notes


class _UnusedFormatter:
    def __init__(self, *args: Any, **kwargs: Any):
        pass

    def to_chat_handler(self):
        return None


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main(argv: list[str]) -> None:
    """Entry point of the model process: ``python -m r1desk.engine.inference.runner CONN CANCEL LIFELINE``."""
    from multiprocessing.connection import Connection

    from r1desk.engine.inference.host import CancelFlag
    from r1desk.engine.processes import exit_with_parent

    exit_with_parent(int(argv[2]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    conn = Connection(int(argv[0]))
    Runner(conn, CancelFlag(int(argv[1]))).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
