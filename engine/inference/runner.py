"""The model process: the only code that touches ``llama_cpp.Llama``.

It runs in a child process started by ``engine.host.ModelHost`` and talks over a pipe: the
parent sends requests (load, chat, count), the child streams back small tuples. A llama.cpp
abort or an out-of-memory kill ends this process only; the parent reports it and starts anew.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from typing import Any

from r1desk.engine.errors import AdapterError, ContextOverflow, ModelLoadFailed, R1deskError
from r1desk.engine.hardware.kernels import load_backends
from r1desk.engine.inference.reasoning import ThinkSplitter
from r1desk.engine.inference.snapshots import RamSnapshots, Snapshot, SnapshotStore
from r1desk.engine.inference.structured import arguments_as_objects, tool_style
from r1desk.engine.inference.templates import CHATML, ChatTemplate

OPEN_THINKING = "<think>\n"
CLOSE_THINKING = "\n</think>\n\n"
SLOW_TOKEN_SECONDS = 0.05  # above this per token, keep the abort check on during decoding too
PROMPT_PROGRESS_SECONDS = 0.25  # at most this often, a ("prompt", done, total) while a long prompt is read
# Reply text goes to the parent at most this often (the first piece at once): a token per message
# would wake the app for every token, taking CPU time from the model on a machine with few cores.
OUTBOX_SECONDS = 0.04
MIN_RESTORE_TOKENS = 16  # a saved state is restored only when it spares reading at least this many
DISK_READ_BYTES_PER_SECOND = 300e6  # a cautious figure for reading a snapshot back
DECODE_BATCH = 64  # tokens read at once while generating (a token, or the closing of the thinking)


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
        self._log_tail: deque[bytes] = deque(maxlen=32)  # its last lines, for saying why it refused something
        # The last prompt + reply as text and as the tokens the model really saw, and the points
        # (characters, tokens) where the two line up; see _tokenize_prompt.
        self._last_text = ""
        self._last_tokens: list[int] = []
        self._marks: list[tuple[int, int]] = []
        self._used_mark: tuple[int, int] | None = None
        # Conversations' saved KV state (see engine.inference.snapshots).
        self._session: str | None = None  # whose state the cache holds now
        self._identity: dict[str, Any] = {}
        self._base_identity: dict[str, Any] = {}  # the identity without adapters
        # LoRA adapters loaded on this model, by sha256 (each once per model; the model frees them
        # with itself), and the set applied to the context now: sorted (sha256, scale) pairs.
        self._adapters: dict[str, Any] = {}
        self._adapter_set: tuple[tuple[str, float], ...] = ()
        self._ram = RamSnapshots(0)
        self._store: SnapshotStore | None = None
        self._writer: _Writer | None = None
        self._read_rate: float | None = None  # prompt tokens per second, as last measured
        self._state_bytes_per_token: float | None = None  # of a saved state, as last made
        self._batch = None

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
            tail = self._log_tail
            self._quiet_log = llama_cpp.llama_log_callback(lambda _level, text, _data: tail.append(text or b""))
            llama_cpp.llama_log_set(self._quiet_log, ctypes.c_void_p(0))
        # A bundle's llama.cpp chooses its CPU kernels at run time, from its own folder.
        load_backends()

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
                n_batch=int(opts["n_batch"]),
                n_ubatch=int(opts["n_ubatch"]),
                n_threads=int(opts["n_threads"]),
                n_threads_batch=int(opts.get("n_threads_batch") or opts["n_threads"]),
                flash_attn=bool(opts.get("flash_attn", False)),
                type_k=kv,
                type_v=kv,
                embedding=bool(opts.get("embedding")),
                verbose=bool(opts.get("verbose", False)),
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadFailed(f"{path}: llama.cpp could not load the model ({exc})") from None
        llm = self.llm
        self._pieces.clear()
        self._eog.clear()
        self._adapters.clear()
        self._adapter_set = ()
        self._forget_context()
        self._batch = llama_cpp.llama_batch_init(DECODE_BATCH, 0, 1)
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
        embedding = bool(opts.get("embedding"))
        if not source and not embedding:
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
            "snapshot_ram_budget": opts["snapshot_ram_budget"],
            "is_embedding": embedding,
            "remote_devices": opts.get("remote_devices") or [],
            "tool_style": (style.name if (style := tool_style(self.template.source)) else None),
            "tool_args_as_objects": arguments_as_objects(self.template.source),
            "embedding_length": llm.n_embd(),
            "pooling": llm.pooling_type() if embedding else None,
        }
        st = os.stat(path)
        # What a saved state depends on: the weights, the KV layout, the template, llama.cpp's build.
        self._identity = {"model": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                          "kv_type": str(opts.get("kv_type") or "f16").lower(),
                          "flash_attn": bool(opts.get("flash_attn")), "template": self.template.sha256,
                          "llama_cpp": getattr(llama_cpp, "__version__", "")}
        self._base_identity = dict(self._identity)
        self._ram = RamSnapshots(opts["snapshot_ram_budget"])
        snaps = opts.get("snapshots") or {}
        self._store = SnapshotStore(snaps["dir"], snaps.get("disk_budget", 0)) if snaps.get("dir") else None
        self._writer = _Writer(self._store) if self._store is not None and self._store.budget > 0 else None
        return self.info

    def unload(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer = None
        if self._batch is not None:
            import llama_cpp

            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self.llm is not None:
            # Freeing the model frees the adapters loaded on it (llama_model's destructor deletes
            # them); freeing them here as well would free them twice.
            self.llm.close()
            self.llm = None
        self._adapters.clear()
        self._adapter_set = ()
        self._ram = RamSnapshots(0)

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
        differ), which would make llama.cpp read the whole reply again on the next turn. Where
        the new prompt starts with the text up to a point where text and tokens line up (the end
        of the last prompt, the end of the reply), the tokens up to there are kept as they were.
        """
        last = self._last_text
        for chars, n in reversed(self._marks):
            if chars and prompt[:chars] == last[:chars]:
                self._used_mark = (chars, n)
                return self._last_tokens[:n] + self._tokenize(prompt[chars:])
        self._used_mark = None
        return self._tokenize(prompt)

    def _remember(self, text: str, seen: list[int], *, prompt_marks: tuple[int, int]) -> None:
        """What the cache holds now, as text and tokens, for the next turn's _tokenize_prompt."""
        used = self._used_mark
        marks = [m for m in self._marks if used is not None and m[0] <= used[0]]
        marks += [prompt_marks, (len(text), len(seen))]
        self._marks = sorted(set(marks))
        self._last_text, self._last_tokens = text, seen

    def _forget_context(self) -> None:
        if self.llm is not None:
            self.llm.reset()
            self.llm._ctx.kv_cache_clear()  # (also where a non-causal embedding model has no cache)
        self._last_text, self._last_tokens, self._marks, self._used_mark = "", [], [], None
        self._session = None

    # Adapters -------------------------------------------------------------------------------
    def _use_adapters(self, wanted: list) -> None:
        """Apply exactly these LoRA adapters, ``[(path, scale, sha256[, name]), ...]``, to the context.

        Each is loaded once per model and kept; a change of set or scales is one call to
        llama.cpp, no reload. What the KV cache holds was computed under the previous set, so on
        any change it is dropped, and saved states carry the set in their identity.
        """
        import llama_cpp

        chosen: list[tuple[str, float]] = []
        for item in wanted:
            path, scale, sha = item[0], float(item[1]), str(item[2])
            name = item[3] if len(item) > 3 else os.path.basename(path)
            if scale == 0.0:
                continue  # llama.cpp leaves zero-scale adapters out; so does the identity
            if sha not in self._adapters:
                self._log_tail.clear()
                ptr = llama_cpp.llama_adapter_lora_init(self.llm._model.model, os.fsencode(path))
                # A failed init returns a NULL pointer object, not None: test its truth.
                if not ptr:
                    reason = self._llama_said()
                    raise AdapterError(f"llama.cpp refused adapter {name}" + (f": {reason}" if reason else ""),
                                       facts={"code": "rejected", "adapter": name, "reason": reason})
                self._adapters[sha] = ptr
            chosen.append((sha, scale))
        key = tuple(sorted(chosen))
        if key == self._adapter_set:
            return
        ctx = self.llm._ctx.ctx
        if key:
            n = len(key)
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * n)(*[self._adapters[sha] for sha, _ in key])
            scales = (ctypes.c_float * n)(*[scale for _, scale in key])
            rc = llama_cpp.llama_set_adapters_lora(ctx, arr, n, scales)
        else:
            rc = llama_cpp.llama_set_adapters_lora(ctx, None, 0, None)
        if rc != 0:
            raise AdapterError(f"llama.cpp could not apply the adapters (code {rc})", facts={"code": "rejected"})
        self._forget_context()
        self._adapter_set = key
        self._identity = dict(self._base_identity)
        if key:
            self._identity["adapters"] = [[sha, scale] for sha, scale in key]

    def _llama_said(self) -> str:
        """llama.cpp's last error line, from its log (what it says when it refuses something)."""
        for raw in reversed(self._log_tail):
            line = raw.decode("utf-8", "replace").strip()
            low = line.lower()
            if "error" in low or "failed" in low or "mismatch" in low or "incorrect" in low:
                return line[:300]
        return ""

    # Saved state ----------------------------------------------------------------------------
    def _prepare(self, session: str | None, messages: list[dict[str, Any]], reserve: int,
                 variables: dict[str, Any]) -> tuple[str, list[int], int, str | None]:
        """The prompt and its tokens, with the cache holding as much of them as can be had.

        The cache holds the conversation answered last; going back to another one restores its
        saved state (from RAM, else disk) when that spares reading enough of the prompt. Returns
        (prompt, tokens, dropped turns, where the reused tokens came from: "context", "memory",
        "disk").
        """
        llm = self.llm
        if session and session != self._session:
            snap, source = self._ram.get(session), "memory"
            if snap is not None and snap.identity != self._identity:
                snap = None  # kept under other adapters: its KV means nothing now
            if snap is None and self._store is not None and self._disk_worth_it(session):
                snap, source = self._store.load(session, self._identity), "disk"
            if snap is not None and snap.kv_tokens < self.n_ctx:
                current = (self._last_text, self._last_tokens, self._marks)
                self._last_text, self._last_tokens, self._marks = snap.text, snap.tokens, snap.marks
                prompt, tokens, dropped = self._fit(messages, reserve, variables)
                gain = _common_prefix(snap.tokens[:snap.kv_tokens], tokens)
                have = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens) if llm.n_tokens else 0
                if gain - have >= MIN_RESTORE_TOKENS and self._restore(snap):
                    self._session = session
                    return prompt, tokens, dropped, source
                self._last_text, self._last_tokens, self._marks = current
        prompt, tokens, dropped = self._fit(messages, reserve, variables)
        if session:
            self._session = session
        return prompt, tokens, dropped, "context"

    def _disk_worth_it(self, session: str) -> bool:
        """Reading the snapshot back is quicker than reading its tokens again (as last measured)."""
        try:
            size = self._store.path(session).stat().st_size
        except (OSError, ValueError):
            return False
        if self._read_rate is None or self._state_bytes_per_token is None:
            return True
        return size / DISK_READ_BYTES_PER_SECOND < (size / self._state_bytes_per_token) / self._read_rate

    def _restore(self, snap: Snapshot) -> bool:
        import llama_cpp

        llm = self.llm
        llm.reset()
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        state = snap.state
        if isinstance(state, bytes):
            src = ctypes.cast(ctypes.c_char_p(state), ctypes.POINTER(ctypes.c_uint8))
        else:  # a bytearray, or a view into the file as read: no copy
            src = (ctypes.c_uint8 * len(state)).from_buffer(state)
        if not llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, src, len(state), 0):
            self._forget_context()
            return False
        k = snap.kv_tokens
        llm.input_ids[:k] = snap.tokens[:k]
        llm.n_tokens = k
        return True

    def _snapshot(self, session: str) -> None:
        """Keep the cache's state for this conversation, in RAM and (written in the background) on disk."""
        import llama_cpp

        llm = self.llm
        k = llm.n_tokens
        if k <= 0 or (self._ram.budget <= 0 and self._writer is None):
            return
        ctx = llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = bytearray(size)
        n = llama_cpp.llama_state_seq_get_data(ctx, (ctypes.c_uint8 * size).from_buffer(buf), size, 0)
        if not n:
            return
        del buf[n:]
        self._state_bytes_per_token = n / k
        tokens = self._last_tokens if self._last_tokens[:k] == llm.input_ids[:k].tolist() else llm.input_ids[:k].tolist()
        text, marks = (self._last_text, self._marks) if tokens is self._last_tokens else ("", [])
        snap = Snapshot(identity=self._identity, text=text, tokens=list(tokens), kv_tokens=k,
                        state=buf, marks=list(marks))
        self._ram.put(session, snap)
        if self._writer is not None:
            self._writer.submit(session, snap)

    def forget(self, session: str) -> None:
        self._ram.forget(session)
        if self._writer is not None:
            self._writer.forget(session)
        if self._store is not None:
            self._store.forget(session)

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
        if self.info.get("is_embedding"):
            raise ModelLoadFailed(f"{self.info.get('name')}: loaded for embeddings, not for chat")
        t_start = time.perf_counter()
        p = req["params"]
        budget = p.get("reasoning_budget")
        seconds = p.get("reasoning_seconds")
        seconds = float(seconds) if seconds else None
        max_tokens = p.get("max_tokens")
        n_ctx = self.n_ctx
        reserve = min(max_tokens or 1024, n_ctx // 4)
        variables = dict(req.get("template_vars") or {})
        session = req.get("session")
        self._use_adapters(req.get("adapters") or [])
        raw = req.get("prompt")
        if raw is not None:
            # A plain completion: the text as given, no chat template, no thinking of its own.
            prompt, tokens, dropped, reused_from = raw, self._raw_tokens(raw, reserve), 0, "context"
            self._session = None
        else:
            prompt, tokens, dropped, reused_from = self._prepare(session, req["messages"], reserve, variables)
        opened = raw is None and prompt.rstrip().endswith("<think>")
        reasoning_model = raw is None and self.template.is_reasoning
        if p.get("open_thinking") and not opened and budget != 0 and raw is None:
            # DeepSeek's advice for R1: start the reply with "<think>\n", or it may skip thinking.
            prompt += OPEN_THINKING
            tokens = tokens + self._tokenize(OPEN_THINKING)
            opened = True
        splitter = ThinkSplitter(in_reasoning=opened, detect_open=reasoning_model or opened)
        # What the cache already holds of this prompt; at least the last token is read again,
        # for the logits the first reply token is sampled from.
        cached = min(_common_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens), len(tokens) - 1)
        send(("rendered", len(tokens), dropped, cached, reused_from))
        text = prompt  # the text the tokens below spell, for the next turn's re-use
        seen = list(tokens)  # every token the model has been given or has generated, in order
        if budget == 0 and reasoning_model:
            closing = ("" if opened else "<think>") + CLOSE_THINKING
            seen += self._tokenize(closing)
            text += closing
            splitter.close_reasoning()

        sampler = _Sampler(self.llm, p, seen)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out = _Outbox(send)
        generated = 0
        n_reasoning = 0
        t_first = t_last = None
        t_think_end = None
        finish = "stop"
        notes: list[str] = []
        # The context bounds reasoning and answer together; max_tokens counts answer tokens only,
        # so a reasoning model gets room to think (its thinking has its own reasoning_budget).
        room = n_ctx - len(seen)
        answer_limit = int(max_tokens) if max_tokens else None
        progress_shown = False
        self._set_abort(True)
        abort_on = True
        pending: list[int] = []  # given to the model but not yet read into the cache
        try:
            progress_shown = self._read_prompt(seen, cached, len(tokens), t_start)
            while not self.cancel.is_set():
                if pending:
                    self._decode(pending)
                    pending = []
                tok = sampler.free() if splitter.in_reasoning else sampler.sample()
                now = time.perf_counter()
                if t_first is None:
                    t_first = now
                    if progress_shown:
                        send(("prompt", len(tokens), len(tokens)))
                elif abort_on and generated >= 3 and (now - t_first) / generated < SLOW_TOKEN_SECONDS:
                    # Fast tokens: the per-token cancel check below is soon enough.
                    self._set_abort(False)
                    abort_on = False
                t_last = now
                if self._is_eog(tok):
                    break
                generated += 1
                seen.append(tok)
                pending.append(tok)
                was_reasoning = splitter.in_reasoning
                out.tokens += 1
                piece = decoder.decode(self._piece(tok))
                if piece:
                    text += piece
                    out.emit(splitter.feed(piece))
                if was_reasoning:
                    n_reasoning += 1
                    if not splitter.in_reasoning and t_think_end is None:
                        t_think_end = now
                if generated >= room:
                    finish = "length"
                    notes.append("the context is full")
                    break
                if answer_limit is not None and generated - n_reasoning >= answer_limit:
                    finish = "length"
                    notes.append(f"the reply limit of {answer_limit:,} tokens was reached (thinking not "
                                 "counted); raise it with --max-tokens or Longest reply in Settings, "
                                 "0 for no limit")
                    break
                over_tokens = budget is not None and budget > 0 and n_reasoning >= budget
                over_time = seconds is not None and now - t_first >= seconds
                if splitter.in_reasoning and (over_tokens or over_time):
                    # Close the thinking ourselves and let the model answer.
                    out.emit(splitter.flush())
                    splitter.close_reasoning()
                    t_think_end = now
                    notes.append(f"reasoning budget of {budget} tokens reached" if over_tokens else
                                 f"reasoning time budget of {seconds:g} seconds reached")
                    closing = self._tokenize(CLOSE_THINKING)
                    tail = decoder.decode(b"", final=True)
                    text += tail + CLOSE_THINKING
                    seen += closing
                    pending += closing
                out.flush_if_due(now)
            else:
                finish = "cancelled"
        except RuntimeError as exc:
            if self.cancel.is_set():
                finish = "cancelled"
            else:
                self._forget_context()
                raise ModelLoadFailed(f"llama.cpp failed while generating ({exc})") from None
        finally:
            sampler.close()
            if abort_on:
                self._set_abort(False)
        tail = decoder.decode(b"", final=True)
        if tail:
            text += tail
            out.emit(splitter.feed(tail))
        out.emit(splitter.flush())
        out.flush()
        # The KV cache now holds seen minus what is still pending; text spells all of seen.
        if raw is None:
            self._remember(text, seen, prompt_marks=(len(prompt), len(tokens)))
        else:  # the cache's tokens start with a BOS the text does not spell: no marks to reuse
            self._last_text, self._last_tokens, self._marks, self._used_mark = "", [], [], None
        if splitter.in_reasoning and not splitter.closed and finish == "stop":
            notes.append("the model ended without closing its reasoning")
        if dropped:
            notes.append(f"{dropped} older turn(s) left out to fit the context")
        t_end = time.perf_counter()
        n = generated
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
            "prompt_tokens_read": len(tokens) - cached,
            "reused_from": reused_from if cached else None,
            "notes": notes,
        }
        send(("done", stats))
        if session and raw is None:
            self._snapshot(session)

    def _raw_tokens(self, text: str, reserve: int) -> list[int]:
        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if not tokens:
            raise ContextOverflow("the prompt is empty", facts={"code": "empty-prompt"})
        if len(tokens) + min(reserve, 16) > self.n_ctx:
            raise ContextOverflow(f"the prompt is {len(tokens):,} tokens but the context holds {self.n_ctx:,}",
                                  facts={"code": "too-long", "tokens": len(tokens), "n_ctx": self.n_ctx,
                                         "n_ctx_train": self.llm._model.n_ctx_train()})
        return tokens

    def _decode(self, tokens: list[int]) -> None:
        """Read generated tokens into the cache, one preallocated batch, logits for the last only."""
        import llama_cpp

        llm = self.llm
        batch = self._batch
        n = llm.n_tokens
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = n + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 0
        batch.logits[len(tokens) - 1] = 1
        batch.n_tokens = len(tokens)
        rc = llama_cpp.llama_decode(llm._ctx.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        llm.input_ids[n:n + len(tokens)] = tokens
        llm.n_tokens = n + len(tokens)

    def _read_prompt(self, context: list[int], keep: int, total: int, started: float) -> bool:
        """Read the part of the prompt not yet in the cache, batch by batch, saying how far it got.

        Returns whether progress was sent (the prompt took more than one batch); stops early,
        leaving a valid cache, when the reply is cancelled.
        """
        llm = self.llm
        if keep < llm.n_tokens and not llm._ctx.kv_cache_seq_rm(-1, keep, -1):
            llm.reset()  # a recurrent model cannot drop the tail of its state: read it all
            keep = 0
        llm.n_tokens = keep
        n_batch = llm.n_batch
        many = len(context) - keep > n_batch
        send = self.conn.send
        last = started
        t0 = time.perf_counter()
        for start in range(keep, len(context), n_batch):
            if self.cancel.is_set():
                break
            llm.eval(context[start:start + n_batch])
            now = time.perf_counter()
            if many and start + n_batch < len(context) and (start == keep or now - last >= PROMPT_PROGRESS_SECONDS):
                send(("prompt", start + n_batch, total))
                last = now
        done = llm.n_tokens - keep
        if done >= 64:
            self._read_rate = done / max(time.perf_counter() - t0, 1e-6)
        return many

    def count(self, messages: list[dict[str, Any]]) -> int:
        return len(self._tokenize(self.template.render(messages)))

    # Embeddings ---------------------------------------------------------------------------
    def _embedding_tokens(self, text: str) -> list[int]:
        # The model's special tokens around the text ([CLS] ... [SEP] for BERT), and no more than
        # one batch, which is also no more than the positions the model was trained for.
        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        limit = self.llm.n_batch
        if len(tokens) > limit:
            tokens = tokens[: limit - 1] + tokens[-1:]
        return tokens

    def token_counts(self, texts: list[str]) -> list[int]:
        if self.llm is None:
            raise ModelLoadFailed("no model is loaded")
        return [len(self.llm.tokenize(t.encode("utf-8"), add_bos=True, special=False)) for t in texts]

    def embed(self, texts: list[str]):
        """One pooled, L2-normalised vector per text, many texts per batch (a float32 array)."""
        import llama_cpp
        import numpy as np

        llm = self.llm
        if llm is None:
            raise ModelLoadFailed("no model is loaded")
        if not self.info.get("is_embedding"):
            raise ModelLoadFailed(f"{self.info.get('name')}: loaded for chat, not for embeddings")
        if llm.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            raise ModelLoadFailed(f"{self.info.get('name')}: the model gives no pooled embedding "
                                  "(it is not an embedding model)")
        ctx = llm._ctx.ctx
        n_embd, n_batch = llm.n_embd(), llm.n_batch
        n_seq_max = max(1, int(llm.context_params.n_seq_max))
        out = np.empty((len(texts), n_embd), dtype=np.float32)
        batch = llm._batch
        pending: list[int] = []  # rows of out in the batch being filled
        used = 0

        def run() -> None:
            llm._ctx.kv_cache_clear()
            rc = llama_cpp.llama_decode(ctx, batch.batch)
            if rc != 0:
                raise ModelLoadFailed(f"llama.cpp failed while embedding (llama_decode returned {rc})")
            for seq, row in enumerate(pending):
                ptr = llama_cpp.llama_get_embeddings_seq(ctx, seq)
                if not ptr:
                    raise ModelLoadFailed("llama.cpp gave no embedding for a text")
                out[row] = np.ctypeslib.as_array(ptr, shape=(n_embd,))
            batch.reset()
            pending.clear()

        batch.reset()
        for row, text in enumerate(texts):
            tokens = self._embedding_tokens(text)
            if not tokens:
                tokens = self._embedding_tokens(" ")
            if pending and (used + len(tokens) > n_batch or len(pending) >= n_seq_max):
                run()
                used = 0
            batch.add_sequence(tokens, len(pending), True)
            pending.append(row)
            used += len(tokens)
        if pending:
            run()
        llm._ctx.kv_cache_clear()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

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
                elif op == "embed":
                    self.conn.send(("embedded", self.embed(req["texts"])))
                elif op == "token_counts":
                    self.conn.send(("token_counts", self.token_counts(req["texts"])))
                elif op == "forget":
                    self.forget(req["session"])
                elif op == "snapshots":
                    if self._store is not None:
                        self._store.budget = int(req["disk_budget"])
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
    user asked for is kept, and a load that would not fit is refused with the numbers. Recent
    conversations' saved state may use at most half of the RAM the plan leaves free.
    """
    from r1desk.engine.errors import NotEnoughMemory
    from r1desk.engine.gguf.header import read_header
    from r1desk.engine.hardware import fit
    from r1desk.engine.hardware import probe as hardware
    from r1desk.engine.inference import rpc

    # Other machines' llama.cpp RPC workers join as devices before anything is estimated or loaded.
    remote = rpc.add_servers(list(opts.get("rpc_servers") or []))
    hw = rpc.with_remote_devices(hardware.detect(), remote)
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
    cpu = plan.cpu
    spare = max(0, (cpu.budget - cpu.total) // 2) if cpu.budget is not None else 0
    ram_budget = min(int((opts.get("snapshots") or {}).get("ram_budget", 0)), spare)
    # Unless the user chose: llama.cpp's own defaults, 2048 where the weights sit on a GPU.
    n_batch = int(opts.get("n_batch") or (2048 if int(ngl) > 0 else 512))
    n_ubatch = min(n_batch, 512)
    if opts.get("embedding"):
        # A BERT-style (non-causal) model must see each text in one micro-batch, or llama.cpp
        # aborts; a text is cut to the batch, which may not pass the positions it was trained for.
        n_batch = n_ubatch = min(n_ctx, max(512, n_batch))
    if remote:
        where = ", ".join(f"{d.name} at {d.endpoint}" for d in remote)
        notes.append(f"{int(ngl)} of {info_layers(info)} layers offloaded to the GPUs and RPC servers ({where})")
    return dict(opts, n_ctx=n_ctx, n_gpu_layers=int(ngl), n_batch=n_batch, n_ubatch=n_ubatch,
                remote_devices=[d.to_dict() for d in remote],
                snapshot_ram_budget=ram_budget), notes


def info_layers(info) -> int:
    """Layers llama.cpp can offload: the blocks and the output layer."""
    try:
        return int(info.block_count) + 1
    except (AttributeError, TypeError, ValueError):
        return 0


class _Sampler:
    """llama.cpp's native sampler chain for one reply, sampling from the last logits of the context.

    The same chain as the bindings' (penalties, top-k, top-p, min-p, temperature, seeded draw;
    greedy at temperature 0), built once per reply; the repeat penalty sees the last 64 tokens
    of the prompt too, as in llama.cpp's own tools.
    """

    def __init__(self, llm, p: dict[str, Any], history: list[int]):
        import llama_cpp

        self._lib = llama_cpp
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = self.chain = llama_cpp.llama_sampler_chain_init(params)
        add = functools.partial(llama_cpp.llama_sampler_chain_add, chain)
        penalty = float(p.get("repeat_penalty", 1.0))
        if penalty != 1.0:
            add(llama_cpp.llama_sampler_init_penalties(64, penalty, 0.0, 0.0))
        temp = float(p["temperature"])
        seed = p.get("seed")
        seed = int(seed) if seed is not None else random.randrange(2**31)
        for sampler in _plain_samplers(llama_cpp, temp, p, seed):
            add(sampler)
        if penalty != 1.0:
            for tok in history[-64:]:
                llama_cpp.llama_sampler_accept(chain, tok)
        self.free = functools.partial(llama_cpp.llama_sampler_sample, chain, llm._ctx.ctx, -1)
        self.sample = self.free
        # A grammar (structured output, a forced tool call) rules the answer only, not R1's
        # thinking: its own chain, the grammar first, used once the answer begins.
        self.constrained_chain = None
        grammar = p.get("grammar")
        if grammar:
            g = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, grammar.encode("utf-8"), b"root")
            if not g:
                self.close()
                raise ModelLoadFailed("llama.cpp could not read the output grammar")
            self.constrained_chain = cc = llama_cpp.llama_sampler_chain_init(params)
            llama_cpp.llama_sampler_chain_add(cc, g)
            for s in _plain_samplers(llama_cpp, temp, p, seed):
                llama_cpp.llama_sampler_chain_add(cc, s)
            self.sample = functools.partial(llama_cpp.llama_sampler_sample, cc, llm._ctx.ctx, -1)

    def close(self) -> None:
        for name in ("chain", "constrained_chain"):
            chain = getattr(self, name, None)
            if chain is not None:
                self._lib.llama_sampler_free(chain)
                setattr(self, name, None)


def _plain_samplers(llama_cpp, temp: float, p: dict[str, Any], seed: int) -> list:
    """The cut-offs and the draw (greedy at temperature 0), after the penalties in the free chain
    and after the grammar in the constrained one (no penalty there: JSON repeats its punctuation
    by nature)."""
    if temp == 0:
        return [llama_cpp.llama_sampler_init_greedy()]
    out = []
    if temp > 0:
        if int(p["top_k"]) > 0:
            out.append(llama_cpp.llama_sampler_init_top_k(int(p["top_k"])))
        if float(p["top_p"]) < 1.0:
            out.append(llama_cpp.llama_sampler_init_top_p(float(p["top_p"]), 1))
        if float(p["min_p"]) > 0.0:
            out.append(llama_cpp.llama_sampler_init_min_p(float(p["min_p"]), 1))
        out.append(llama_cpp.llama_sampler_init_temp(temp))
    out.append(llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return out


class _Outbox:
    """Reply text on its way to the parent: the first piece at once, then at most every OUTBOX_SECONDS.

    Each message is (kind, text, tokens): how many generated tokens it carries, so the app's
    count of the context stays right while pieces are gathered.
    """

    def __init__(self, send):
        self._send = send
        self._kind: str | None = None
        self._parts: list[str] = []
        self._last: float | None = None
        self.tokens = 0  # generated since the last message

    def emit(self, parts: list[tuple[str, str]]) -> None:
        for kind, text in parts:
            k = "r" if kind == "reasoning" else "c"
            if k != self._kind and self._parts:
                self.flush()
            self._kind = k
            self._parts.append(text)

    def flush_if_due(self, now: float) -> None:
        if self._parts and (self._last is None or now - self._last >= OUTBOX_SECONDS):
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._parts:
            self._send((self._kind, "".join(self._parts), self.tokens))
            self.tokens = 0
            self._parts = []
            self._last = now if now is not None else time.perf_counter()


class _Writer:
    """Writes snapshots to disk on its own thread, so a reply's end never waits for the disk.

    Only the newest snapshot of each conversation is written; ``flush`` waits for the rest.
    """

    def __init__(self, store: SnapshotStore):
        self.store = store
        self._pending: dict[str, Snapshot] = {}
        self._writing: str | None = None
        self._cv = threading.Condition()
        threading.Thread(target=self._run, name="r1desk-snapshot-writer", daemon=True).start()

    def submit(self, key: str, snap: Snapshot) -> None:
        with self._cv:
            self._pending[key] = snap
            self._cv.notify_all()

    def forget(self, key: str) -> None:
        with self._cv:
            self._pending.pop(key, None)
            while self._writing == key:
                self._cv.wait(1.0)

    def flush(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while (self._pending or self._writing) and time.monotonic() < deadline:
                self._cv.wait(0.1)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending:
                    self._cv.wait()
                key = next(iter(self._pending))
                snap = self._pending.pop(key)
                self._writing = key
            try:
                self.store.save(key, snap)
            except Exception:  # noqa: BLE001 - a snapshot is only a time saver; never end the process for it
                pass
            finally:
                with self._cv:
                    self._writing = None
                    self._cv.notify_all()


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
    from r1desk.engine.inference.host import CancelFlag
    from r1desk.engine.processes import connection_from_parent, exit_with_parent, fd_from_parent

    exit_with_parent(fd_from_parent(argv[2]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    conn = connection_from_parent(argv[0])
    Runner(conn, CancelFlag(fd_from_parent(argv[1]))).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
