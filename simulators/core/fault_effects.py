"""What fault rules do to an HTTP exchange: delay it, answer for the fake, spoil the
answer, or drop the connection the way a failing vendor or network does.

Latency and injected statuses act in the request pipeline, before any transaction
opens. Dropping a connection needs the server's socket, so the view marks the
request and `TransportFaults` (the outermost WSGI layer) acts once Flask is done.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Response, g, request

from .faults import Decision, Firing
from .problems import DomainError

log = logging.getLogger("handoff.faults")

MARKER = "handoff.transport_fault"
IN_PROCESS = "handoff.in_process"
DROPPED_HEADER = "X-Handoff-Dropped"  # in-process only: which drop the adapter must raise
DEFAULT_HOLD_S = 35.0  # past the 30 s most HTTP clients wait

_STATUS_CODES = {
    429: ("RATE_LIMITED", "Too many requests"),
    500: ("INTERNAL", "Internal error"),
    502: ("BAD_GATEWAY", "Bad gateway"),
    503: ("SERVICE_UNAVAILABLE", "Service unavailable"),
    504: ("GATEWAY_TIMEOUT", "Gateway timeout"),
}
_MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your "
    b"request due to maintenance downtime or capacity problems.</p></body></html>"
)


class InjectedStatus(DomainError):
    """The answer a status rule gives in the fake's name: a problem document like its own."""

    def __init__(self, firing: Firing) -> None:
        effect = firing.effect
        self.status = int(effect["status"])  # type: ignore[misc]
        code, title = _STATUS_CODES.get(self.status, (f"HTTP_{self.status}", "Error"))
        self.code = str(effect.get("code") or code)  # type: ignore[misc]
        self.title = title  # type: ignore[misc]
        self.retryable = self.status in (429, 502, 503, 504)  # type: ignore[misc]
        headers = {}
        if "retryAfter" in effect:
            headers["Retry-After"] = str(int(effect["retryAfter"]))
        super().__init__(str(effect.get("detail") or title), headers=headers)


def apply_before(decision: Decision) -> None:
    """Delay the request, or answer it in the fake's name before the fake sees it."""
    g.fault_ids = decision.fired
    if decision.latency_ms > 0:
        time.sleep(decision.latency_ms / 1000)
    answer = decision.answer
    if answer is None:
        return
    if answer.kind == "status":
        raise InjectedStatus(answer)
    if answer.effect.get("stage", "before") == "before":
        raise DropConnection(answer)


def apply_after(decision: Decision, response: Response) -> Response:
    """Spoil or drop an answer the fake already gave (its state change stands)."""
    answer = decision.answer
    if answer is not None and answer.kind != "status":
        mark_drop(answer)
        return response
    shaping = decision.shaping
    if shaping is None:
        return response
    if shaping.kind == "malformed":
        body = response.get_data()
        if shaping.effect.get("mode", "truncated") == "truncated":
            spoiled = body[: max(1, len(body) // 2)]
        else:
            spoiled = os.urandom(max(16, len(body)))
        response.set_data(spoiled)
        return response
    status = int(shaping.effect.get("status", 200))
    page = Response(_MAINTENANCE_PAGE, status=status)
    page.headers["Content-Type"] = str(shaping.effect.get("contentType", "text/html"))
    return page


class DropConnection(Exception):  # noqa: N818 - a signal, not an error
    """Raised before the fake runs: the request is never answered."""

    def __init__(self, firing: Firing) -> None:
        super().__init__(firing.kind)
        self.firing = firing


def mark_drop(firing: Firing) -> Response:
    """Mark this request's connection to be dropped once Flask has finished with it."""
    hold = (
        float(firing.effect.get("holdSeconds", DEFAULT_HOLD_S)) if firing.kind == "timeout" else 0
    )
    request.environ[MARKER] = {"kind": firing.kind, "hold": hold, "rule": firing.id}
    return Response(b"", status=499)  # never sent: journal-only status for "no answer"


class TransportFaults:
    """The outermost WSGI layer: holds and drops the connections rules marked.

    WSGI has no way to say "close without answering", so this reaches the server's
    socket (gunicorn and the Werkzeug server expose it in the environ). A reset is a
    close with SO_LINGER 0 (the kernel sends RST); the server's own socket object is
    pointed at a dead socketpair first, so its later write fails quietly (EPIPE) instead
    of landing on a reused descriptor. Servers that hide the socket (granian) get a 502
    with `Connection: close` and no body, the nearest a WSGI app can come.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started: list[tuple[Any, ...]] = []

        def record_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # Headers go to the server only once we know the connection is kept.
            started[:] = [(status, headers, exc_info)]
            return lambda data: start_response(status, headers, exc_info)(data)

        result = self.app(environ, record_start)
        fault = environ.get(MARKER)
        if fault is None:
            start_response(*started[0])
            return result
        if hasattr(result, "close"):
            result.close()
        if environ.get(IN_PROCESS):
            # The in-process adapter raises the client-side error itself (and drops this).
            status, headers, exc_info = started[0]
            signal = (DROPPED_HEADER, f"{fault['kind']};{fault['rule']}")
            start_response(status, [*headers, signal], exc_info)
            return []
        if fault["hold"]:
            time.sleep(fault["hold"])
        sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
        if sock is None:
            start_response("502 Bad Gateway", [("Connection", "close"), ("Content-Length", "0")])
            return []
        _drop(sock, reset=fault["kind"] == "reset")
        start_response(*started[0])  # the server's write now fails quietly (EPIPE)
        return []


def _drop(sock: socket.socket, *, reset: bool) -> None:
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            dead, peer = socket.socketpair()
            peer.close()
            os.dup2(dead.fileno(), sock.fileno())  # the last reference to the TCP socket goes
            dead.close()
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        log.debug("connection already gone before the fault could drop it", exc_info=True)


def lenient_body() -> Any:
    """The JSON body for matching `fields`, or None when it is not JSON (the fake will say)."""
    raw = g.get("raw_body")
    if raw is None:
        raw = g.raw_body = request.stream.read(1024 * 1024 + 1)
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None
