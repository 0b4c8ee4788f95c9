"""A model on another machine behind an OpenAI-compatible API, in the model host's place.

vLLM, llama.cpp's llama-server, Ollama, LM Studio or another r1desk: anything that speaks
``/v1/models`` and streaming ``/v1/chat/completions``. ``RemoteHost`` offers what the chat
service asks of a model host (load, chat as a stream of the same events, count, close), so
conversations, history, the reasoning display and structured output work the same. The
thinking arrives as ``reasoning_content`` (DeepSeek, r1desk, vLLM) or ``reasoning`` (Ollama,
OpenRouter), or inside the content as ``<think>`` tags, which are split off here.

What a remote server cannot be made to do is said, not faked: r1desk cannot read its tokens
(prompt sizes are estimates until the server's usage figures arrive), apply LoRA adapters or
keep KV state, and it may ignore a reasoning budget.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

from r1desk.engine.errors import ModelLoadFailed, Offline, R1deskError
from r1desk.engine.events import CancelToken
from r1desk.engine.inference.host import ModelInfo
from r1desk.engine.inference.reasoning import ThinkSplitter

CONNECT_SECONDS = 10.0
READ_SECONDS = 600.0  # a long prompt on a slow server may take this long before its first token
DEFAULT_CONTEXT = 32768  # what the server does not say; its own limit applies


def normalise_url(url: str) -> str:
    """The API's base URL, ending in /v1 (``http://host:1234`` -> ``http://host:1234/v1``)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ModelLoadFailed(f"{url!r} is not an http:// or https:// address", facts={"code": "remote-bad-url"})
    for tail in ("/chat/completions", "/models"):
        if url.endswith(tail):
            url = url[: -len(tail)]
    return url if url.endswith("/v1") else url + "/v1"


def estimate_tokens(text: str) -> int:
    """A rough token count without the remote tokenizer: CJK characters one each, else ~4 characters."""
    cjk = sum(1 for ch in text if "\u3000" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af")
    return cjk + (len(text) - cjk + 3) // 4


class RemoteHost:
    """The model host's interface over an OpenAI-compatible server. Thread-safe: each request is
    its own HTTP stream; the server queues them."""

    snapshots = None

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None, *, name: str | None = None):
        self.url = normalise_url(url)
        self.api_key = api_key
        self.model = model
        self.display_name = name
        self.info: ModelInfo | None = None
        self._busy = 0
        self._lock = threading.Lock()

    # The model host's interface ------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return None

    @property
    def alive(self) -> bool:
        return self.info is not None

    @property
    def busy(self) -> int:
        return self._busy

    def set_snapshots(self, store, ram_budget: int | None = None) -> None:
        pass  # the server keeps (or not) its own cache

    def forget(self, session: str) -> None:
        pass

    def unload(self) -> None:
        self.info = None

    def close(self) -> None:
        self.info = None

    def _client(self, read: float = READ_SECONDS):
        import httpx2 as httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(headers=headers, timeout=httpx.Timeout(read, connect=CONNECT_SECONDS))

    def _refusal(self, response) -> R1deskError:
        try:
            detail = response.json().get("error") or {}
            message = detail.get("message") if isinstance(detail, dict) else str(detail)
        except (ValueError, AttributeError):
            message = response.text[:200]
        status = response.status_code
        if status in (401, 403):
            return ModelLoadFailed(f"{self.url}: the server refused the API key ({message})",
                                   facts={"code": "remote-key", "url": self.url, "status": status})
        return ModelLoadFailed(f"{self.url}: the server answered HTTP {status}: {message}",
                               facts={"code": "remote-refused", "url": self.url, "status": status,
                                      "detail": (message or "")[:200]})

    def _unreachable(self, exc: Exception) -> Offline:
        return Offline(f"cannot reach the remote model at {self.url} ({type(exc).__name__}); is the server running?",
                       facts={"code": "remote-unreachable", "url": self.url})

    def load(self, path: Any = None, options: Any = None) -> ModelInfo:
        import httpx2 as httpx

        try:
            with self._client(read=CONNECT_SECONDS) as client:
                response = client.get(self.url + "/models")
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code != 200:
            raise self._refusal(response)
        try:
            ids = [m["id"] for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ModelLoadFailed(f"{self.url}: not an OpenAI-compatible API (its /models list is not the usual shape)",
                                  facts={"code": "remote-not-openai", "url": self.url}) from None
        model = self.model or (ids[0] if ids else None)
        if model is None:
            raise ModelLoadFailed(f"{self.url}: the server has no model loaded", facts={"code": "remote-no-model"})
        if self.model and ids and self.model not in ids:
            raise ModelLoadFailed(f"{self.url}: has no model {self.model!r} (it has: {', '.join(ids[:8])})",
                                  facts={"code": "remote-no-model", "model": self.model})
        self.model = model
        lowered = model.lower()
        self.info = ModelInfo(
            path=self.url, name=self.display_name or model, architecture="remote", n_ctx=DEFAULT_CONTEXT,
            n_ctx_train=0, n_vocab=0, is_reasoning="r1" in lowered or "reason" in lowered or "think" in lowered,
            chat_template_sha256="", internal_name=model,
            warnings=[f"a remote model at {self.url}: prompt sizes are estimated, and LoRA adapters and saved "
                      "conversation state are not available"],
        )
        return self.info

    def count_tokens(self, messages: list[dict[str, Any]]) -> int:
        return sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in messages) + 2

    def chat(self, messages: list[dict[str, Any]], params: dict[str, Any], template_vars: dict[str, Any] | None = None,
             *, cancel: CancelToken | None = None, session: str | None = None, adapters: list | None = None) -> Iterator[tuple]:
        if self.info is None:
            raise ModelLoadFailed("no model is loaded")
        if adapters:
            raise ModelLoadFailed("LoRA adapters cannot be applied to a remote model",
                                  facts={"code": "remote-no-adapters"})
        return self._stream(messages, params, template_vars or {}, cancel or CancelToken())

    def complete(self, prompt: str, params: dict[str, Any], *, cancel: CancelToken | None = None):
        raise ModelLoadFailed("plain completions need a model loaded here; a remote model takes chats only",
                              facts={"code": "remote-no-completions"})

    def _body(self, messages: list[dict[str, Any]], params: dict[str, Any], template_vars: dict[str, Any]) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                                "stream_options": {"include_usage": True}}
        for key in ("temperature", "top_p", "seed"):
            if params.get(key) is not None:
                body[key] = params[key]
        if params.get("max_tokens"):
            body["max_tokens"] = int(params["max_tokens"])
        if params.get("reasoning_budget") is not None:
            body["reasoning_budget"] = int(params["reasoning_budget"])  # r1desk's field; others ignore it
        if params.get("reasoning_seconds"):
            body["reasoning_seconds"] = float(params["reasoning_seconds"])
        if params.get("json_schema") is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": params["json_schema"], "strict": True}}
        elif params.get("grammar"):
            raise ModelLoadFailed("a remote model takes a JSON schema, not a llama.cpp grammar",
                                  facts={"code": "remote-no-grammar"})
        if template_vars.get("tools"):
            body["tools"] = template_vars["tools"]
        return body

    def _stream(self, messages, params, template_vars, token: CancelToken) -> Iterator[tuple]:
        import httpx2 as httpx

        body = self._body(messages, params, template_vars)
        splitter = ThinkSplitter(detect_open=True)
        stats: dict[str, Any] = {"finish_reason": "stop", "notes": []}
        t0 = time.perf_counter()
        t_first = t_last = t_think_end = None
        pieces = reasoning_pieces = 0
        usage: dict[str, Any] = {}
        with self._lock:
            self._busy += 1
        client = self._client()
        unhook = token.on_cancel(client.close)  # a cancel from any thread ends the read at once
        try:
            if not token.cancelled:
                yield ("rendered", self.count_tokens(messages), 0, 0, None)
            try:
                with client.stream("POST", self.url + "/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        response.read()
                        raise self._refusal(response)
                    for line in response.iter_lines():
                        if token.cancelled:
                            break
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        try:
                            chunk = json.loads(data)
                        except json.JSONDecodeError:
                            continue
                        if chunk.get("error"):
                            err = chunk["error"]
                            raise ModelLoadFailed(f"{self.url}: {err.get('message') if isinstance(err, dict) else err}",
                                                  facts={"code": "remote-refused", "url": self.url})
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices") or []:
                            delta = choice.get("delta") or {}
                            if choice.get("finish_reason"):
                                stats["finish_reason"] = "length" if choice["finish_reason"] == "length" else "stop"
                            parts: list[tuple[str, str]] = []
                            thinking = delta.get("reasoning_content") or delta.get("reasoning")
                            if thinking:
                                parts.append(("reasoning", thinking))
                            if delta.get("content"):
                                parts += splitter.feed(delta["content"])
                            for kind, text in parts:
                                now = time.perf_counter()
                                t_first = t_first or now
                                t_last = now
                                pieces += 1
                                if kind == "reasoning":
                                    reasoning_pieces += 1
                                    yield ("r", text, 1)
                                else:
                                    if t_think_end is None and reasoning_pieces:
                                        t_think_end = now
                                    yield ("c", text, 1)
            except httpx.HTTPError as exc:
                if not token.cancelled:
                    raise self._unreachable(exc) from None
            except (RuntimeError, OSError, ValueError):
                if not token.cancelled:  # the client closed under the reader is how a cancel ends it
                    raise
            for kind, text in splitter.flush():
                yield ("r" if kind == "reasoning" else "c", text, 1)
        finally:
            unhook()
            client.close()
            with self._lock:
                self._busy -= 1
        t_end = time.perf_counter()
        if token.cancelled:
            stats["finish_reason"] = "cancelled"
        completion = int(usage.get("completion_tokens") or pieces)
        details = usage.get("completion_tokens_details") or {}
        stats.update(
            prompt_tokens=int(usage.get("prompt_tokens") or self.count_tokens(messages)),
            completion_tokens=completion,
            reasoning_tokens=int(details.get("reasoning_tokens") or reasoning_pieces),
            ttft_ms=(t_first - t0) * 1000 if t_first else None,
            tokens_per_second=(completion - 1) / (t_last - t_first) if t_first and t_last and t_last > t_first and completion > 1 else None,
            reasoning_seconds=((t_think_end or t_end) - t_first) if reasoning_pieces and t_first else None,
            total_seconds=t_end - t0, n_ctx=DEFAULT_CONTEXT,
            cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
        )
        stats["prompt_tokens_read"] = stats["prompt_tokens"] - stats["cached_tokens"]
        stats["context_used"] = stats["prompt_tokens"] + completion
        if not usage:
            stats["notes"].append("the remote server gave no token counts; these are estimates")
        yield ("done", stats)
