"""OpenAI's API over the loaded model: ``/v1/models``, ``/v1/chat/completions`` and ``/v1/completions``
(streaming and not), ``/v1/embeddings`` with an embedding model, and ``/metrics``; secure by default.

Built on Starlette (served by uvicorn). R1's reasoning comes back in ``reasoning_content``, as
DeepSeek's own API returns it, never inside ``content``. ``response_format`` (JSON, or JSON
following a schema) and a forced tool call are enforced by llama.cpp grammars; tool calls are
parsed from the answer into ``tool_calls``. An extra field ``collections`` answers from
collections of the user's documents: the passages found go into the last user message as
quoted data, and come back in a top-level ``sources`` field (streaming: in a chunk of their own
after the last choice). Requests go to the model host's queue
like the window's: first come, first served; a client that goes away cancels its own request
only. Nothing is written to the history. Every refusal is JSON in OpenAI's error shape.

Guards, before any route: the Host header must name this machine (or a host given with
``allowed_hosts``), so a web page cannot reach the server through DNS rebinding; a browser
``Origin`` is refused unless listed in ``cors_origins``; with an API key every request but
``/metrics`` needs ``Authorization: Bearer KEY``; bodies over ``max_body`` bytes are refused.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from types import SimpleNamespace
from typing import Any, AsyncIterator, Iterator

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from r1desk.engine.chat.service import ChatService, SamplingParams, build_messages
from r1desk.engine.docs.answers import sources_json
from r1desk.engine.errors import ContextOverflow, HostCrashed, ModelLoadFailed, NotFound, R1deskError
from r1desk.engine.inference.host import ModelHost
from r1desk.engine.inference.reasoning import partial_suffix
from r1desk.engine.inference.structured import (
    InvalidSchema,
    ToolStyle,
    check_tools,
    json_object_grammar,
    parse_tool_calls,
    schema_grammar,
    tool_call_grammar,
    tool_messages,
)

log = logging.getLogger("r1desk.server")

MAX_BODY = 4 * 1024 * 1024  # a long conversation fits; a runaway upload does not
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
ROLES = ("system", "user", "assistant", "tool")
MAX_EMBEDDING_INPUTS = 2048
MAX_REPLY_TOKENS = 131_072
MAX_COLLECTIONS = 16


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def response(self) -> JSONResponse:
        return error_response(self.status, self.message, type_=self.type, param=self.param, code=self.code)


def error_response(status: int, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}},
                        status_code=status)


def _host_name(host: str) -> str:
    """The name part of a Host header: "[::1]:8080" -> "[::1]", "localhost:1234" -> "localhost"."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """Pure ASGI middleware: Host allow-list, Origin (CORS), API key, body size."""

    def __init__(self, app, *, api_key: str | None, allowed_hosts: tuple[str, ...], cors_origins: tuple[str, ...],
                 max_body: int, metrics):
        self.app = app
        self.api_key = api_key
        self.allowed_hosts = {h.lower() for h in (*LOOPBACK_HOSTS, *allowed_hosts)}
        self.cors_origins = set(cors_origins)
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        refusal = self._refusal(headers, path, scope.get("method", "GET"))
        if refusal is not None:
            self.metrics.requests.labels(endpoint=_endpoint(path), status=str(refusal.status)).inc()
            await refusal.response()(scope, receive, send)
            return
        origin = headers.get("origin")
        if scope.get("method") == "OPTIONS" and origin:
            await Response(status_code=204, headers=self._cors_headers(origin))(scope, receive, send)
            return

        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooBig()
            return message

        async def send_with_cors(message):
            if message["type"] == "http.response.start" and origin:
                message["headers"] = [*message.get("headers", []),
                                      *[(k.encode(), v.encode()) for k, v in self._cors_headers(origin).items()]]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_cors)
        except _TooBig:
            self.metrics.requests.labels(endpoint=_endpoint(path), status="413").inc()
            await error_response(413, f"the request body is over {self.max_body:,} bytes")(scope, receive, send)

    def _refusal(self, headers: dict[str, str], path: str, method: str) -> ApiError | None:
        host = headers.get("host", "").strip()
        if not host:
            return ApiError(400, "a Host header is required", code="host_required")
        if _host_name(host).lower() not in self.allowed_hosts:
            return ApiError(403, f"requests for host {host!r} are not served here (allowed: "
                                 f"{', '.join(sorted(self.allowed_hosts))}); start the server with that host "
                                 "allowed to serve it", type_="permission_error", code="host_not_allowed")
        origin = headers.get("origin")
        if origin and origin not in self.cors_origins:
            return ApiError(403, f"requests from web pages at {origin} are not allowed; start the server with "
                                 "--cors-origin to allow one", type_="permission_error", code="origin_not_allowed")
        length = headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return ApiError(400, "the Content-Length header is not a number")
            if too_big:
                return ApiError(413, f"the request body is over {self.max_body:,} bytes")
        if self.api_key is not None and path != "/metrics" and method != "OPTIONS":
            given = headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not secrets.compare_digest(token.encode(), self.api_key.encode()):
                return ApiError(401, "a valid API key is required (Authorization: Bearer KEY)",
                                type_="authentication_error", code="invalid_api_key")
        return None

    def _cors_headers(self, origin: str) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS"}


class _TooBig(Exception):
    pass


ENDPOINTS = ("/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/metrics")


def _endpoint(path: str) -> str:
    return path if path in ENDPOINTS else "other"


class Metrics:
    """What the server is doing, in Prometheus' text format (one registry per server)."""

    def __init__(self, chat: ChatService):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("r1desk_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.latency = Histogram("r1desk_request_seconds", "Time to the end of the response", ["endpoint"],
                                 registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.ttft = Histogram("r1desk_time_to_first_token_seconds", "Time to the first reply token", registry=r,
                              buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.tokens = Counter("r1desk_generated_tokens", "Tokens generated", registry=r)
        self.reasoning = Counter("r1desk_reasoning_tokens", "Reasoning tokens generated", registry=r)
        self.tps = Gauge("r1desk_tokens_per_second", "Generation speed of the last reply", registry=r)
        self.queue = Gauge("r1desk_queue_length", "Requests running or waiting for the model", registry=r)
        self.queue.set_function(lambda: chat.host.busy)
        self.loaded = Gauge("r1desk_model_loaded", "1 when a model is loaded", registry=r)
        self.loaded.set_function(lambda: 1 if chat.loaded is not None else 0)

    def finished(self, stats: dict[str, Any], ttft: float | None) -> None:
        self.tokens.inc(int(stats.get("completion_tokens") or 0))
        self.reasoning.inc(int(stats.get("reasoning_tokens") or 0))
        if stats.get("tokens_per_second"):
            self.tps.set(float(stats["tokens_per_second"]))
        if ttft is not None:
            self.ttft.observe(ttft)


# Requests ------------------------------------------------------------------------------------
def _number(body: dict, key: str, kind: type, low: float, high: float, *, default: Any = None,
            low_open: bool = False) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise ApiError(400, f"{key} must be a {'whole ' if kind is int else ''}number", param=key)
    if value < low or value > high or (low_open and value == low):
        raise ApiError(400, f"{key} must be {'above' if low_open else 'from'} {low:g} {'and at most' if low_open else 'to'} "
                            f"{high:g}, not {value:g}", param=key)
    return kind(value)


def _content(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, list):  # the parts form: text parts only
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value):
            raise ApiError(400, f"{where}.content: only text parts are supported", param=where)
        return "".join(p["text"] for p in value)
    if not isinstance(value, str):
        raise ApiError(400, f"{where}.content must be a string", param=where)
    return value


def parse_messages(messages: Any) -> tuple[list[SimpleNamespace], bool]:
    """The conversation, checked; and whether it carries tool calls or results."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    out = []
    tooling = False
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"{where} must have a role of {', '.join(ROLES)}", param=where)
        calls = m.get("tool_calls") if m["role"] == "assistant" else None
        if calls is not None:
            if not isinstance(calls, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("function"), dict)
                    and isinstance(c["function"].get("name"), str)
                    and isinstance(c["function"].get("arguments", "{}"), str) for c in calls):
                raise ApiError(400, f"{where}.tool_calls must be a list of {{function: {{name, arguments}}}}", param=where)
            tooling = True
        content = _content(m.get("content"), where, optional=calls is not None)
        extra = {}
        if m["role"] == "tool":
            tooling = True
            if not isinstance(m.get("tool_call_id", ""), str):
                raise ApiError(400, f"{where}.tool_call_id must be a string", param=where)
            extra = {"tool_call_id": m.get("tool_call_id", "")}
        out.append(SimpleNamespace(role=m["role"], content=content, status="complete", tool_calls=calls, **extra))
    if not any(m.role == "user" for m in out):
        raise ApiError(400, "messages must include a user message", param="messages")
    return out, tooling


def template_messages(history: list[SimpleNamespace], *, r1: bool, tooling: bool, as_objects: bool) -> list[dict]:
    """The messages for the chat template; with tool calls or results, each kept as it came."""
    if not tooling:
        return build_messages(history, r1=r1)
    out = []
    for m in history:
        d: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            d["tool_calls"] = m.tool_calls
        if m.role == "tool":
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return tool_messages(out, as_objects)


def _grammar(body: dict, model, tools: list | None) -> tuple[str | None, str | None]:
    """(grammar, forced function) from response_format and tool_choice."""
    fmt = body.get("response_format")
    grammar = None
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise ApiError(400, "response_format must be {type: text | json_object | json_schema}",
                           param="response_format")
        try:
            if fmt["type"] == "json_object":
                grammar = json_object_grammar()
            elif fmt["type"] == "json_schema":
                spec = fmt.get("json_schema")
                if not isinstance(spec, dict) or "schema" not in spec:
                    raise ApiError(400, "response_format.json_schema must be {name, schema}", param="response_format")
                grammar = schema_grammar(spec["schema"])
        except InvalidSchema as exc:
            raise ApiError(400, str(exc), param="response_format", code="unsupported_schema") from None
    choice = body.get("tool_choice")
    if choice is None or not tools:
        if choice not in (None, "none", "auto") and not tools:
            raise ApiError(400, "tool_choice needs tools", param="tool_choice")
        return grammar, None
    style = ToolStyle.named(model.tool_style)
    if choice == "auto" or choice == "none":
        return grammar, None
    if choice == "required":
        only = None
    elif isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict) \
            and isinstance(choice["function"].get("name"), str):
        only = choice["function"]["name"]
    else:
        raise ApiError(400, "tool_choice must be none, auto, required or {type: function, function: {name}}",
                       param="tool_choice")
    if grammar is not None:
        raise ApiError(400, "response_format and a forced tool call cannot be asked together", param="tool_choice")
    try:
        return tool_call_grammar(style, tools, only), only or "*"
    except InvalidSchema as exc:
        raise ApiError(400, str(exc), param="tool_choice") from None


def _sampling(body: dict, n_ctx: int, max_tokens: int | None, grammar: str | None) -> SamplingParams:
    return SamplingParams(
        temperature=_number(body, "temperature", float, 0.0, 2.0),
        top_p=_number(body, "top_p", float, 0.0, 1.0, low_open=True),
        top_k=_number(body, "top_k", int, 0, 1000),
        min_p=_number(body, "min_p", float, 0.0, 1.0),
        repeat_penalty=_number(body, "repeat_penalty", float, 0.5, 2.0),
        max_tokens=max_tokens,
        seed=_number(body, "seed", int, 0, 2**31 - 1),
        reasoning_budget=_number(body, "reasoning_budget", int, 0, max(n_ctx, MAX_REPLY_TOKENS)),
        reasoning_seconds=_number(body, "reasoning_seconds", float, 0.0, 3600.0, low_open=True),
        grammar=grammar,
    )


def _common(body: dict, n_ctx: int) -> dict[str, Any]:
    """The fields chat and plain completions share: n, stop, max_tokens, stream, model."""
    _number(body, "n", int, 1, 1, default=1)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4
                             or not all(isinstance(s, str) and s for s in stop)):
        raise ApiError(400, "stop must be a string or a list of up to 4 non-empty strings", param="stop")
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    # Beyond the context a reply just stops when the context is full (finish_reason "length"), as
    # llama.cpp's own server does; a client's generous default is no error.
    max_tokens = _number({key: body.get(key)}, key, int, 1, max(n_ctx, MAX_REPLY_TOKENS))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", param="stream_options")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "model must be a string", param="model")
    return {"stop": stop or [], "max_tokens": max_tokens, "stream": stream,
            "include_usage": bool(options.get("include_usage")), "model": model}


def parse_chat(body: Any, model) -> dict[str, Any]:
    """A chat request checked field by field against the loaded ``model``; ApiError(400) naming
    the first bad one."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    history, tooling = parse_messages(body.get("messages"))
    common = _common(body, model.n_ctx)
    tools = None
    if body.get("tools") is not None and body.get("tool_choice") != "none":
        if model.tool_style is None:
            raise ApiError(400, f"{model.name} cannot call tools: its chat template has no place for them "
                                "(choose a model made for function calling, such as Qwen 2.5 Instruct)",
                           param="tools", code="tools_not_supported")
        try:
            tools = check_tools(body["tools"])
        except InvalidSchema as exc:
            raise ApiError(400, str(exc), param="tools") from None
    if tooling and model.tool_style is None:
        raise ApiError(400, f"{model.name} cannot take tool calls or results: its chat template has no place for them",
                       param="messages", code="tools_not_supported")
    grammar, forced = _grammar(body, model, tools)
    adapters = parse_adapters(body.get("adapters"))
    collections = body.get("collections")
    if collections is not None and (not isinstance(collections, list) or len(collections) > MAX_COLLECTIONS
                                    or not all(isinstance(c, str) and c.strip() for c in collections)):
        raise ApiError(400, f"collections must be a list of up to {MAX_COLLECTIONS} collection names",
                       param="collections")

    def render(h: list[SimpleNamespace]) -> list[dict]:
        return template_messages(h, r1=model.is_r1, tooling=tooling or bool(tools), as_objects=model.tool_args_as_objects)

    return dict(common, messages=render(history), params=_sampling(body, model.n_ctx, common["max_tokens"], grammar),
                tools=tools, style=ToolStyle.named(model.tool_style) if tools else None, forced=forced,
                adapters=adapters, history=history, render=render, collections=list(collections or []))


def parse_adapters(value: Any) -> list[tuple[str, float]]:
    """The extra field ``adapters``: imported LoRA adapters as ``[{"name": N, "scale": 0-2}]`` or
    ``["N", "N:0.5"]`` (scale 1 when not given)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 8:
        raise ApiError(400, "adapters must be a list of at most 8 {name, scale} objects or \"name[:scale]\" strings",
                       param="adapters")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            name, _, scale_text = item.partition(":")
            try:
                scale = float(scale_text) if scale_text else 1.0
            except ValueError:
                raise ApiError(400, f"adapters[{i}]: {scale_text!r} is not a scale", param="adapters") from None
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            name = item["name"]
            scale = _number({"scale": item.get("scale", 1.0)}, "scale", float, 0.0, 2.0)
        else:
            raise ApiError(400, f"adapters[{i}] must be {{name, scale}} or \"name[:scale]\"", param="adapters")
        if not name or not 0.0 <= scale <= 2.0:
            raise ApiError(400, f"adapters[{i}]: a name and a scale from 0 to 2 are needed", param="adapters")
        out.append((name, scale))
    return out


def parse_completion(body: Any, model) -> dict[str, Any]:
    """A plain completion request (``/v1/completions``), checked."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(400, "prompt must be a non-empty string (or a list of one)", param="prompt")
    for key in ("suffix", "logprobs", "best_of"):
        if body.get(key) not in ((None, 1) if key == "best_of" else (None,)):
            raise ApiError(400, f"{key} is not supported", param=key)
    echo = body.get("echo", False)
    if not isinstance(echo, bool):
        raise ApiError(400, "echo must be true or false", param="echo")
    common = _common(body, model.n_ctx)
    if common["max_tokens"] is None:
        common["max_tokens"] = 16  # OpenAI's default for completions
    grammar, _ = _grammar({k: body[k] for k in ("response_format",) if k in body}, model, None)
    return dict(common, prompt=prompt, echo=echo, params=_sampling(body, model.n_ctx, common["max_tokens"], grammar),
                tools=None, style=None, forced=None)


def parse_embeddings(body: Any, width: int) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "input must be a string or a list of strings (token arrays are not supported)",
                       param="input")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise ApiError(400, f"input may hold at most {MAX_EMBEDDING_INPUTS} texts", param="input")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise ApiError(400, "encoding_format must be float or base64", param="encoding_format")
    dims = body.get("dimensions")
    if dims is not None and dims != width:
        raise ApiError(400, f"this model's vectors have {width} dimensions; it cannot give {dims!r}",
                       param="dimensions")
    return {"texts": texts, "format": fmt}


class _AnswerScan:
    """The answer as the client sees it: cut at the first stop string, and any tool call held
    back from the text and parsed at the end."""

    def __init__(self, stops: list[str], style: ToolStyle | None = None, tools: list | None = None):
        self.stop = _StopScan(stops)
        self.style, self.tools = style, tools
        self.markers = style.markers if style is not None else ()
        self.held = ""
        self.call: str | None = None  # text from the first call marker on
        self.started = False

    @property
    def stopped(self) -> bool:
        return self.stop.stopped

    def feed(self, text: str) -> str:
        return self._tools(self.stop.feed(text))

    def _tools(self, text: str) -> str:
        if not self.markers or not text:
            return text
        if self.call is not None:
            self.call += text
            return ""
        buf = self.held + text
        self.held = ""
        if not self.started:
            stripped = buf.lstrip()
            if not stripped:
                self.held = buf
                return ""
            self.started = True
            if self.style.name == "llama3" and stripped.startswith("{"):
                self.call = stripped  # Llama 3.1 answers a call with the bare JSON
                return ""
        hits = [i for i in (buf.find(m) for m in self.markers) if i >= 0]
        if hits:
            self.call = buf[min(hits):]
            return buf[: min(hits)]
        keep = max(partial_suffix(buf, m) for m in self.markers)
        self.held = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep]

    def finish(self) -> tuple[str, list]:
        """(the rest of the text, the calls made)."""
        tail = "" if self.stop.stopped else self._tools(self.stop.flush())
        tail += self.held
        self.held = ""
        if self.call is None:
            return tail, []
        content, calls = parse_tool_calls(self.call, self.style, self.tools)
        if not calls:
            return tail + self.call, []
        return tail + (content if content != self.call else ""), calls


class _StopScan:
    """Cuts the answer at the first stop string, holding back text that may be the start of one."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.keep = max((len(s) for s in stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if not self.stops:
            return text
        self.buffer += text
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            out, self.buffer = self.buffer[: min(hits)], ""
            return out
        if len(self.buffer) <= self.keep:
            return ""
        out, self.buffer = self.buffer[: len(self.buffer) - self.keep], self.buffer[len(self.buffer) - self.keep:]
        return out

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


def _finish_reason(stats: dict[str, Any], stopped: bool, calls: list) -> str:
    if calls:
        return "tool_calls"
    if stopped:
        return "stop"
    return "length" if stats.get("finish_reason") == "length" else "stop"


def _usage(stats: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = int(stats.get("prompt_tokens") or 0), int(stats.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": int(stats.get("cached_tokens") or 0)},
            "completion_tokens_details": {"reasoning_tokens": int(stats.get("reasoning_tokens") or 0)}}


def _engine_error(exc: R1deskError) -> ApiError:
    if isinstance(exc, ContextOverflow):
        return ApiError(400, str(exc), code="context_length_exceeded")
    if isinstance(exc, (ModelLoadFailed, HostCrashed)):
        return ApiError(503, str(exc), type_="server_error", code="model_unavailable")
    return ApiError(500, str(exc), type_="server_error")


class _Reply:
    """One request's answer as it is read from the model host: text, reasoning, calls, figures."""

    def __init__(self, req: dict[str, Any]):
        self.scan = _AnswerScan(req["stop"], req.get("style"), req.get("tools"))
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.stats: dict[str, Any] = {}
        self.calls: list = []
        self.ttft: float | None = None
        self.t0 = time.monotonic()

    def take(self, ev: tuple) -> tuple[str, str] | None:
        """(kind, text) for the client from one host event: ("content"|"reasoning", text), or None."""
        kind = ev[0]
        if kind in ("c", "r") and self.ttft is None:
            self.ttft = time.monotonic() - self.t0
        if kind == "c":
            text = self.scan.feed(ev[1])
            self.content.append(text)
            return ("content", text) if text else None
        if kind == "r":
            self.reasoning.append(ev[1])
            return "reasoning", ev[1]
        if kind == "done":
            self.stats = ev[1]
        return None

    def finish(self) -> str:
        """The answer's last text, once the stream has ended (the calls are parsed here)."""
        tail, self.calls = self.scan.finish()
        self.content.append(tail)
        return tail

    @property
    def finish_reason(self) -> str:
        return _finish_reason(self.stats, self.scan.stopped, self.calls)


def create_app(chat: ChatService, *, api_key: str | None = None, allowed_hosts: tuple[str, ...] = (),
               cors_origins: tuple[str, ...] = (), max_body: int = MAX_BODY, embedder: ModelHost | None = None):
    """The ASGI app serving ``chat``'s loaded model (load one first, or the routes answer 503), and
    ``embedder``'s embedding model on /v1/embeddings when given."""
    metrics = Metrics(chat)

    def model_or_503():
        model = chat.loaded
        if model is None:
            raise ApiError(503, "no model is loaded", type_="server_error", code="model_unavailable")
        return model

    def count(endpoint: str, status: int | str, started: float | None = None) -> None:
        metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
        if started is not None:
            metrics.latency.labels(endpoint=endpoint).observe(time.monotonic() - started)

    async def models(request: Request) -> Response:
        data = []
        for info in (chat.loaded, embedder.info if embedder is not None else None):
            if info is not None:
                data.append({"id": info.name, "object": "model", "created": 0, "owned_by": "r1desk"})
        return JSONResponse({"object": "list", "data": data})

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None
        except ClientDisconnect:  # gone while still sending: nobody to answer, nothing to log
            raise ApiError(499, "the client closed the connection") from None

    async def chat_completions(request: Request) -> Response:
        return await _complete(request, "/v1/chat/completions", parse_chat)

    async def completions(request: Request) -> Response:
        return await _complete(request, "/v1/completions", parse_completion)

    async def _complete(request: Request, endpoint: str, parse) -> Response:
        started = time.monotonic()
        is_chat = endpoint == "/v1/chat/completions"
        try:
            model = model_or_503()
            req = parse(await body_of(request), model)
            resolved = req["params"].resolved(model)
            # Checked against the loaded model before anything is queued (AdapterError, NotFound).
            adapters = chat.resolve_adapters(req["adapters"], model)[0] if req.get("adapters") else None
            if req.get("collections"):
                await _ground(req, resolved)
        except ApiError as exc:
            count(endpoint, exc.status)
            return exc.response()
        except R1deskError as exc:
            count(endpoint, 400)
            return ApiError(400, str(exc)).response()
        if is_chat:
            template_vars = {"tools": req["tools"]} if req["tools"] else None
            gen = chat.host.chat(req["messages"], dict(resolved, open_thinking=model.is_r1), template_vars,
                                 adapters=adapters)
        else:
            gen = chat.host.complete(req["prompt"], resolved)
        rid = ("chatcmpl-" if is_chat else "cmpl-") + secrets.token_hex(12)
        created = int(time.time())

        def events() -> Iterator[tuple]:
            try:
                yield from gen
            finally:
                gen.close()  # a client gone mid-stream frees the model for the next request

        shape = _Shape(rid, created, model.name, is_chat, req)
        if req["stream"]:
            return StreamingResponse(_stream(events, gen.close, req, shape, endpoint, started),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            reply = await anyio.to_thread.run_sync(_collect, events, req)
        except R1deskError as exc:
            err = _engine_error(exc)
            count(endpoint, err.status)
            return err.response()
        metrics.finished(reply.stats, reply.ttft)
        count(endpoint, 200, started)
        _log(rid, model.name, reply.stats, started, stream=False)
        return JSONResponse(shape.whole(reply) | _sources_fields(req, "".join(reply.content)))

    async def _ground(req: dict[str, Any], resolved: dict[str, Any]) -> None:
        """The request's last user message with the passages of its collections (see
        ChatService.with_sources), searched off the event loop."""
        try:
            grounding = await anyio.to_thread.run_sync(
                lambda: chat.with_sources(req["history"], req["collections"], resolved, render=req["render"]))
        except NotFound as exc:
            raise ApiError(400, str(exc), param="collections", code="collection_not_found") from None
        except R1deskError as exc:
            raise _engine_error(exc) from None
        req["messages"] = req["render"](grounding.history)
        req["grounding"] = grounding

    def _collect(events, req) -> _Reply:
        reply = _Reply(req)
        it = events()
        try:
            for ev in it:
                reply.take(ev)
                if reply.scan.stopped:
                    break
        finally:
            it.close()
        reply.finish()
        return reply

    async def _stream(events, cancel, req, shape: "_Shape", endpoint: str, started: float) -> AsyncIterator[str]:
        reply = _Reply(req)
        status = "200"
        it = events()

        def step():
            try:
                return next(it)
            except StopIteration:
                return None

        try:
            if shape.is_chat:
                yield shape.chunk({"role": "assistant", "content": ""})
            while True:
                # Abandoned on cancel (the client went away): cancel() below frees the model, and
                # the thread then sees the end of its stream.
                ev = await anyio.to_thread.run_sync(step, abandon_on_cancel=True)
                if ev is None:
                    break
                if ev[0] == "queued":
                    yield f": queued, {ev[1]} request(s) ahead\n\n"
                    continue
                out = reply.take(ev)
                if out is not None:
                    yield shape.chunk({"reasoning_content" if out[0] == "reasoning" else "content": out[1]})
                if reply.scan.stopped:
                    break
            tail = reply.finish()
            if tail:
                yield shape.chunk({"content": tail})
            if reply.calls:
                yield shape.chunk({"tool_calls": [c.to_openai(i) for i, c in enumerate(reply.calls)]})
            yield shape.chunk({}, reply.finish_reason)
            if req.get("grounding") is not None:
                yield shape.extra_chunk(_sources_fields(req, "".join(reply.content)))
            if req["include_usage"] and reply.stats:
                yield shape.usage_chunk(reply.stats)
            yield "data: [DONE]\n\n"
            metrics.finished(reply.stats, reply.ttft)
        except R1deskError as exc:
            err = _engine_error(exc)
            status = str(err.status)
            yield f"data: {json.dumps({'error': {'message': err.message, 'type': err.type, 'param': None, 'code': err.code}})}\n\n"
        except BaseException:
            status = "499"  # the client closed the connection
            raise
        finally:
            cancel()
            try:
                it.close()
            except ValueError:  # still being read by the abandoned thread, which will end it
                pass
            count(endpoint, status, started)
            _log(shape.rid, shape.model, reply.stats, started, stream=True)

    async def embeddings(request: Request) -> Response:
        started = time.monotonic()
        endpoint = "/v1/embeddings"
        info = embedder.info if embedder is not None else None
        try:
            if info is None:
                raise ApiError(404 if embedder is None else 503,
                               "no embedding model is loaded (start the server with --embedding-model)",
                               code="model_unavailable")
            req = parse_embeddings(await body_of(request), info.embedding_length)
            counts = await anyio.to_thread.run_sync(embedder.count_tokens_of, req["texts"])
            vectors = await anyio.to_thread.run_sync(embedder.embed, req["texts"])
        except ApiError as exc:
            count(endpoint, exc.status)
            return exc.response()
        except R1deskError as exc:
            err = _engine_error(exc)
            count(endpoint, err.status)
            return err.response()
        if req["format"] == "base64":
            data = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            data = [v.tolist() for v in vectors]
        count(endpoint, 200, started)
        tokens = int(sum(counts))
        return JSONResponse({"object": "list", "model": info.name,
                             "data": [{"object": "embedding", "index": i, "embedding": d} for i, d in enumerate(data)],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def metrics_route(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, f"no such endpoint: {request.method} {request.url.path}", code="not_found")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed")

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("request failed", exc_info=exc)
        return error_response(500, "the server failed on this request; it is still running", type_="server_error")

    app = Starlette(
        routes=[Route("/v1/models", models, methods=["GET"]),
                Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                Route("/v1/completions", completions, methods=["POST"]),
                Route("/v1/embeddings", embeddings, methods=["POST"]),
                Route("/metrics", metrics_route, methods=["GET"])],
        exception_handlers={404: not_found, 405: not_allowed, Exception: crashed},
    )
    app.state.metrics = metrics
    return Guard(app, api_key=api_key, allowed_hosts=tuple(allowed_hosts), cors_origins=tuple(cors_origins),
                 max_body=max_body, metrics=metrics)


class _Shape:
    """OpenAI's JSON for one response: chat.completion(.chunk) or text_completion."""

    def __init__(self, rid: str, created: int, model: str, is_chat: bool, req: dict[str, Any]):
        self.rid, self.created, self.model, self.is_chat = rid, created, model, is_chat
        self.echo = req.get("prompt") if req.get("echo") else None

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.rid, "object": obj, "created": self.created, "model": self.model}

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        if self.is_chat:
            body = self._head("chat.completion.chunk")
            body["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        else:
            if "reasoning_content" in delta:
                return ""  # a plain completion has no thinking of its own
            text = delta.get("content", "")
            if self.echo is not None:
                text, self.echo = self.echo + text, None
            body = self._head("text_completion")
            body["choices"] = [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}]
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def extra_chunk(self, fields: dict[str, Any]) -> str:
        """A chunk with no choices carrying fields of r1desk's own (the sources)."""
        body = self._head("chat.completion.chunk")
        body.update(choices=[], **fields)
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def usage_chunk(self, stats: dict[str, Any]) -> str:
        body = self._head("chat.completion.chunk" if self.is_chat else "text_completion")
        body.update(choices=[], usage=_usage(stats))
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def whole(self, reply: _Reply) -> dict[str, Any]:
        content = "".join(reply.content)
        if self.is_chat:
            message: dict[str, Any] = {"role": "assistant", "content": content if content or not reply.calls else None}
            reasoning = "".join(reply.reasoning)
            if reasoning:
                message["reasoning_content"] = reasoning
            if reply.calls:
                message["tool_calls"] = [c.to_openai() for c in reply.calls]
            choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": (self.echo or "") + content, "finish_reason": reply.finish_reason,
                      "logprobs": None}
            obj = "text_completion"
        return dict(self._head(obj), choices=[choice], usage=_usage(reply.stats))


def _sources_fields(req: dict[str, Any], answer: str) -> dict[str, Any]:
    """``sources`` (each marked ``cited`` when the answer cites it) and ``source_notes``, for a
    request that asked for collections; nothing otherwise."""
    grounding = req.get("grounding")
    if grounding is None:
        return {}
    return {"sources": sources_json(grounding.sources, answer), "source_notes": list(grounding.notes)}


def _log(rid: str, model: str, stats: dict[str, Any], started: float, *, stream: bool) -> None:
    log.info(json.dumps({"request": rid, "model": model, "stream": stream,
                         "seconds": round(time.monotonic() - started, 3),
                         "prompt_tokens": stats.get("prompt_tokens"), "completion_tokens": stats.get("completion_tokens"),
                         "reasoning_tokens": stats.get("reasoning_tokens"), "finish": stats.get("finish_reason")}))
