"""The API server inside the desktop app: OpenAI's API over the model the window has loaded.

``r1desk serve`` owns its process and its model; here the window owns both, and the server is
one more caller of the window's ChatService, so API requests and the window's replies queue for
the same model process, first come first served, and a model the window switches to is the one
served next. uvicorn runs on a thread of its own; the socket is bound before that thread starts,
so a port another program holds is a clear error from ``start()`` instead of a log line.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
import threading
import time
from typing import Any

from r1desk.engine.errors import R1deskError
from r1desk.server.api import create_app

log = logging.getLogger("r1desk.server")

DEFAULT_PORT = 1337
START_TIMEOUT = 10.0  # seconds for uvicorn to take the bound socket; it needs a fraction of one
GRACE_SECONDS = 2.0  # a request still running when the server stops gets this long to finish
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class ServerError(R1deskError):
    """The API server cannot start.

    ``facts["code"]`` says why: port-in-use, port-denied (reserved, or needs administrator
    rights), no-such-address (the address to listen on is not this computer's), needs-key
    (listening beyond this computer without an API key), failed.
    """


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def lan_address() -> str | None:
    """The address other machines on the network reach this one at (None: no network)."""
    # Connecting a UDP socket sends nothing; it only asks the system which interface it would use.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed to anyone
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith(("0.", "127.")) else address


def network_names() -> tuple[str, ...]:
    """The names and addresses clients on the network may call this machine by (for the Host check)."""
    import psutil

    names = {socket.gethostname(), socket.gethostname() + ".local", socket.getfqdn()}
    try:
        for addresses in psutil.net_if_addrs().values():
            for a in addresses:
                if a.family == socket.AF_INET:
                    names.add(a.address)
                elif a.family == socket.AF_INET6:
                    names.add(f"[{a.address.split('%')[0]}]")
    except (OSError, psutil.Error):  # the interfaces cannot be listed: the host names still work
        pass
    lan = lan_address()
    if lan:
        names.add(lan)
    return tuple(sorted(n for n in names if n))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name == "nt":
            # Windows' SO_REUSEADDR would let two programs share the port; this refuses a second one.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:
            # A port left in TIME_WAIT by the last run is free again at once; a listener still refuses.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _bind_error(exc, host, port) from None
    return sock


def _bind_error(exc: OSError, host: str, port: int) -> ServerError:
    code = exc.errno
    if code in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        return ServerError(f"port {port} is in use by another program; choose another in Settings",
                           facts={"code": "port-in-use", "port": port})
    if code in (errno.EACCES, getattr(errno, "WSAEACCES", -1)):
        return ServerError(f"port {port} cannot be used (it is reserved, or needs administrator rights); "
                           "choose another in Settings", facts={"code": "port-denied", "port": port})
    if code in (errno.EADDRNOTAVAIL, getattr(errno, "WSAEADDRNOTAVAIL", -1)) or isinstance(exc, socket.gaierror):
        return ServerError(f"{host} is not an address of this computer; choose where to listen in Settings",
                           facts={"code": "no-such-address", "host": host})
    return ServerError(f"the API server cannot listen on {host}:{port}: {exc.strerror or exc}",
                       facts={"code": "failed", "host": host, "port": port, "error": exc.strerror or str(exc)})


class _Counted:
    """ASGI wrapper counting the requests being served, streams until their last byte."""

    def __init__(self, app):
        self.app = app
        self.in_flight = 0
        self.total = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") == "/metrics":
            await self.app(scope, receive, send)
            return
        # Only the server's event loop thread changes these; readers on other threads see whole ints.
        self.in_flight += 1
        self.total += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class _CutOff(logging.Filter):
    """While the server stops, a request it cuts off is one line in the log, not a traceback."""

    def __init__(self):
        super().__init__()
        self.stopping = False

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info is not None and isinstance(record.exc_info[1], asyncio.CancelledError)
        return not (self.stopping and cancelled)


class BackgroundServer:
    """OpenAI's API over ``chat``'s loaded model, on a thread of its own: ``start()``, ``stop()``.

    Nothing is written to the history (as with ``r1desk serve``). Listening anywhere but this
    computer needs ``api_key``; then the machine's own names and addresses are the hosts served.
    """

    def __init__(self, chat: Any, host: str = "127.0.0.1", port: int = DEFAULT_PORT, api_key: str | None = None, *,
                 cors_origins: tuple[str, ...] = (), allowed_hosts: tuple[str, ...] = (), embedder: Any = None):
        self.chat = chat
        self.host = host
        self.port = port  # 0: any free port, the one taken is here once started
        self.api_key = api_key or None
        self.cors_origins = tuple(cors_origins)
        self.allowed_hosts = tuple(allowed_hosts)
        self.embedder = embedder
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._counted: _Counted | None = None
        self._failure: BaseException | None = None
        self._cut_off = _CutOff()
        self._total_before = 0  # requests of earlier runs of this server

    # State -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        server, thread = self._server, self._thread
        return (server is not None and thread is not None and thread.is_alive() and server.started
                and not server.should_exit)

    @property
    def address(self) -> str:
        """The base URL clients use, e.g. http://127.0.0.1:1337/v1."""
        host = self.host
        if host in WILDCARD_HOSTS:
            host = lan_address() or socket.gethostname()
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        return f"http://{shown}:{self.port}/v1"

    @property
    def requests_in_flight(self) -> int:
        """API requests being served now (a stream counts until its last chunk)."""
        counted = self._counted
        return counted.in_flight if counted is not None and self.running else 0

    @property
    def requests_total(self) -> int:
        counted = self._counted
        return self._total_before + (counted.total if counted is not None else 0)

    # Start and stop ----------------------------------------------------------------------
    def start(self) -> str:
        """Listen, and return once requests are answered (the address); ServerError when it cannot."""
        import uvicorn

        with self._lock:
            if self.running:
                return self.address
            if not is_loopback(self.host) and not self.api_key:
                raise ServerError(f"listening on {self.host} lets other machines in: an API key is required",
                                  facts={"code": "needs-key", "host": self.host})
            sock = _bind(self.host, self.port)
            self.port = sock.getsockname()[1]
            hosts = self.allowed_hosts
            if not is_loopback(self.host):
                hosts += network_names() if self.host in WILDCARD_HOSTS else (self.host,)
            counted = _Counted(create_app(self.chat, api_key=self.api_key, allowed_hosts=hosts,
                                          cors_origins=self.cors_origins, embedder=self.embedder))
            config = uvicorn.Config(counted, log_config=None, log_level="warning", access_log=False,
                                    lifespan="off", timeout_graceful_shutdown=GRACE_SECONDS)
            server = uvicorn.Server(config)
            self._failure = None
            self._cut_off.stopping = False
            logging.getLogger("uvicorn.error").addFilter(self._cut_off)
            thread = threading.Thread(target=self._run, args=(server, sock), name="r1desk-api-server", daemon=True)
            self._server, self._thread, self._sock, self._counted = server, thread, sock, counted
            thread.start()
            deadline = time.monotonic() + START_TIMEOUT
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    failure = self._failure
                    self._stop_locked()
                    raise ServerError(f"the API server did not start on {self.host}:{self.port}"
                                      + (f": {failure}" if failure else ""),
                                      facts={"code": "failed", "host": self.host, "port": self.port,
                                             "error": str(failure or "")})
                time.sleep(0.01)
            log.info("API server listening at %s", self.address)
            return self.address

    def _run(self, server: Any, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - uvicorn exits with SystemExit on a failed start
            self._failure = exc
            log.error("the API server stopped: %r", exc)

    def stop(self) -> None:
        """Stop listening (the port is free when this returns); a request under way gets a moment to end."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        server, thread, sock = self._server, self._thread, self._sock
        if server is None:
            return
        in_flight = self._counted.in_flight if self._counted is not None else 0
        self._cut_off.stopping = True
        server.should_exit = True
        if thread is not None:
            thread.join(GRACE_SECONDS + 3)
            if thread.is_alive():
                server.force_exit = True
                thread.join(3)
        if sock is not None:
            sock.close()
        if self._counted is not None:
            self._total_before += self._counted.total
        self._server = self._thread = self._sock = self._counted = None
        logging.getLogger("uvicorn.error").removeFilter(self._cut_off)
        log.info("API server stopped" + (f"; {in_flight} request(s) under way were cut off" if in_flight else ""))

    def __enter__(self) -> "BackgroundServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
