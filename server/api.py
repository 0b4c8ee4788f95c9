"""``/v1/models`` and ``/v1/chat/completions`` (streaming and not) over the loaded model, with
``/metrics``; secure by default.

Built on Starlette (served by uvicorn). R1's reasoning comes back in ``reasoning_content``, as
DeepSeek's own API returns it, never inside ``content``. Requests go to the model host's queue
like the window's: first come, first served; a client that goes away cancels its own request
only. Nothing is written to the history. Every refusal is JSON in OpenAI's error shape.

Guards, before any route: the Host header must name this machine (or a host given with
``allowed_hosts``), so a web page cannot reach the server through DNS rebinding; a browser
``Origin`` is refused unless listed in ``cors_origins``; with an API key every request but
``/metrics`` needs ``Authorization: Bearer KEY``; bodies over ``max_body`` bytes are refused.
"""

from __future__ import annotations

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
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from r1desk.engine.chat.service import ChatService, SamplingParams, build_messages
from r1desk.engine.errors import ContextOverflow, HostCrashed, ModelLoadFailed, R1deskError

log = logging.getLogger("r1desk.server")

MAX_BODY = 4 * 1024 * 1024  # a long conversation fits; a runaway upload does not
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
ROLES = ("system", "user", "assistant")


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


def _endpoint(path: str) -> str:
    return path if path in ("/v1/models", "/v1/chat/completions", "/metrics") else "other"


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


def parse_chat(body: Any, n_ctx: int) -> dict[str, Any]:
    """A chat request checked field by field; ApiError(400) naming the first bad one."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"messages[{i}] must have a role of {', '.join(ROLES)}", param=f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, list):  # the parts form: text parts only
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise ApiError(400, f"messages[{i}].content: only text parts are supported", param=f"messages[{i}]")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string", param=f"messages[{i}]")
        out.append(SimpleNamespace(role=m["role"], content=content, status="complete"))
    if not any(m.role == "user" for m in out):
        raise ApiError(400, "messages must include a user message", param="messages")
    n = _number(body, "n", int, 1, 1, default=1)
    del n
    if body.get("tools"):
        raise ApiError(400, "tools (function calling) are not supported by this server yet", param="tools")
    if body.get("response_format") not in (None, {"type": "text"}):
        raise ApiError(400, "response_format other than text is not supported by this server yet",
                       param="response_format")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4
                             or not all(isinstance(s, str) and s for s in stop)):
        raise ApiError(400, "stop must be a string or a list of up to 4 non-empty strings", param="stop")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    max_tokens = _number({key: max_tokens}, key, int, 1, n_ctx)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object", param="stream_options")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "model must be a string", param="model")
    params = SamplingParams(
        temperature=_number(body, "temperature", float, 0.0, 2.0),
        top_p=_number(body, "top_p", float, 0.0, 1.0, low_open=True),
        top_k=_number(body, "top_k", int, 0, 1000),
        min_p=_number(body, "min_p", float, 0.0, 1.0),
        repeat_penalty=_number(body, "repeat_penalty", float, 0.5, 2.0),
        max_tokens=max_tokens,
        seed=_number(body, "seed", int, 0, 2**31 - 1),
        reasoning_budget=_number(body, "reasoning_budget", int, 0, n_ctx),
    )
    return {"messages": out, "params": params, "stream": stream, "stop": stop or [],
            "include_usage": bool(options.get("include_usage")), "model": model}


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


def _finish_reason(stats: dict[str, Any], stopped: bool) -> str:
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


def create_app(chat: ChatService, *, api_key: str | None = None, allowed_hosts: tuple[str, ...] = (),
               cors_origins: tuple[str, ...] = (), max_body: int = MAX_BODY):
    """The ASGI app serving ``chat``'s loaded model (load one first, or the routes answer 503)."""
    metrics = Metrics(chat)

    def model_or_503():
        model = chat.loaded
        if model is None:
            raise ApiError(503, "no model is loaded", type_="server_error", code="model_unavailable")
        return model

    async def models(request: Request) -> Response:
        model = chat.loaded
        data = [] if model is None else [{"id": model.name, "object": "model", "created": 0, "owned_by": "r1desk"}]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(request: Request) -> Response:
        started = time.monotonic()
        try:
            model = model_or_503()
            try:
                body = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ApiError(400, "the request body is not valid JSON") from None
            req = parse_chat(body, model.n_ctx)
            resolved = req["params"].resolved(model)
            messages = build_messages(req["messages"], r1=model.is_r1)
        except ApiError as exc:
            metrics.requests.labels(endpoint="/v1/chat/completions", status=str(exc.status)).inc()
            return exc.response()
        except R1deskError as exc:
            err = ApiError(400, str(exc))
            metrics.requests.labels(endpoint="/v1/chat/completions", status="400").inc()
            return err.response()
        gen = chat.host.chat(messages, dict(resolved, open_thinking=model.is_r1))
        rid = "chatcmpl-" + secrets.token_hex(12)
        created = int(time.time())

        def events() -> Iterator[tuple]:
            try:
                yield from gen
            finally:
                gen.close()  # a client gone mid-stream frees the model for the next request

        if req["stream"]:
            return StreamingResponse(_stream(events, gen.close, req, rid, created, model.name, started),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            result = await anyio.to_thread.run_sync(_collect, events, req)
        except R1deskError as exc:
            err = _engine_error(exc)
            metrics.requests.labels(endpoint="/v1/chat/completions", status=str(err.status)).inc()
            return err.response()
        content, reasoning, stats, stopped, ttft = result
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            message["reasoning_content"] = reasoning
        metrics.finished(stats, ttft)
        metrics.requests.labels(endpoint="/v1/chat/completions", status="200").inc()
        metrics.latency.labels(endpoint="/v1/chat/completions").observe(time.monotonic() - started)
        _log(rid, model.name, stats, started, stream=False)
        return JSONResponse({
            "id": rid, "object": "chat.completion", "created": created, "model": model.name,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(stats, stopped),
                         "logprobs": None}],
            "usage": _usage(stats),
        })

    def _collect(events, req) -> tuple[str, str, dict, bool, float | None]:
        scan = _StopScan(req["stop"])
        content, reasoning, stats = [], [], {}
        ttft = None
        t0 = time.monotonic()
        it = events()
        try:
            for ev in it:
                kind = ev[0]
                if kind in ("c", "r") and ttft is None:
                    ttft = time.monotonic() - t0
                if kind == "c":
                    content.append(scan.feed(ev[1]))
                    if scan.stopped:
                        break
                elif kind == "r":
                    reasoning.append(ev[1])
                elif kind == "done":
                    stats = ev[1]
        finally:
            it.close()
        if not scan.stopped:
            content.append(scan.flush())
        return "".join(content), "".join(reasoning), stats, scan.stopped, ttft

    async def _stream(events, cancel, req, rid, created, name, started) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict | None = None) -> str:
            body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
            if usage is not None:
                body["usage"] = usage
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        scan = _StopScan(req["stop"])
        stats: dict[str, Any] = {}
        ttft = None
        t0 = time.monotonic()
        status = "200"
        it = events()

        def step():
            try:
                return next(it)
            except StopIteration:
                return None

        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                # Abandoned on cancel (the client went away): cancel() below frees the model, and
                # the thread then sees the end of its stream.
                ev = await anyio.to_thread.run_sync(step, abandon_on_cancel=True)
                if ev is None:
                    break
                kind = ev[0]
                if kind == "queued":
                    yield f": queued, {ev[1]} request(s) ahead\n\n"
                elif kind in ("c", "r"):
                    if ttft is None:
                        ttft = time.monotonic() - t0
                    if kind == "r":
                        yield chunk({"reasoning_content": ev[1]})
                    else:
                        text = scan.feed(ev[1])
                        if text:
                            yield chunk({"content": text})
                        if scan.stopped:
                            break
                elif kind == "done":
                    stats = ev[1]
            if not scan.stopped:
                tail = scan.flush()
                if tail:
                    yield chunk({"content": tail})
            yield chunk({}, _finish_reason(stats, scan.stopped))
            if req["include_usage"] and stats:
                yield (f"data: {json.dumps({'id': rid, 'object': 'chat.completion.chunk', 'created': created, 'model': name, 'choices': [], 'usage': _usage(stats)})}\n\n")
            yield "data: [DONE]\n\n"
            metrics.finished(stats, ttft)
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
            metrics.requests.labels(endpoint="/v1/chat/completions", status=status).inc()
            metrics.latency.labels(endpoint="/v1/chat/completions").observe(time.monotonic() - started)
            _log(rid, name, stats, started, stream=True)

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
                Route("/metrics", metrics_route, methods=["GET"])],
        exception_handlers={404: not_found, 405: not_allowed, Exception: crashed},
    )
    app.state.metrics = metrics
    return Guard(app, api_key=api_key, allowed_hosts=tuple(allowed_hosts), cors_origins=tuple(cors_origins),
                 max_body=max_body, metrics=metrics)


def _log(rid: str, model: str, stats: dict[str, Any], started: float, *, stream: bool) -> None:
    log.info(json.dumps({"request": rid, "model": model, "stream": stream,
                         "seconds": round(time.monotonic() - started, 3),
                         "prompt_tokens": stats.get("prompt_tokens"), "completion_tokens": stats.get("completion_tokens"),
                         "reasoning_tokens": stats.get("reasoning_tokens"), "finish": stats.get("finish_reason")}))
