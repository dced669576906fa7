"""Sending one signed callback: a keep-alive HTTP connection per sending thread and origin.

Written on the standard library's `http.client` rather than `requests`: a webhook needs
none of what `requests` adds (redirects are refused, no cookies, proxies, auth or content
decoding), and on a 2-core machine its transport adapter cost ~0.55 ms of CPU per callback
against ~0.18 ms for `http.client`, which held one dispatcher near 800 callbacks/s.

A test suite that mocks `requests` (responses, requests-mock; the stack's own in-process
mode mounts itself into responses) must still see every callback, so while `requests`'
transport is replaced the dispatcher sends through it instead (`requests_is_mocked`).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter


class DeliveryError(Exception):
    """The receiver could not be reached or did not answer; `kind` names what happened in
    the words `requests` uses (ConnectTimeout, ReadTimeout, ConnectionError, SSLError), so
    an endpoint's last error reads the same whichever way the callback went."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None


def requests_is_mocked() -> bool:
    """Whether something replaced `requests`' transport (responses patches
    `HTTPAdapter.send`, requests-mock `Session.get_adapter`)."""
    return (
        getattr(HTTPAdapter.send, "__module__", None) != "requests.adapters"
        or getattr(requests.Session.get_adapter, "__module__", None) != "requests.sessions"
    )


_TLS = ssl.create_default_context()
# Errors of a kept connection the receiver closed while it sat idle: the request never
# reached it, so it is sent once more on a fresh connection.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class WebhookClient:
    def __init__(self, response_limit: int) -> None:
        self.response_limit = response_limit
        self._local = threading.local()
        # Every thread's connections, so that `close` reaches those of the sending threads.
        self._open: set[http.client.HTTPConnection] = set()
        self._open_lock = threading.Lock()

    def post(self, url: str, headers: dict[str, str], body: bytes, timeout: float) -> Answer:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError("InvalidURL", f"cannot send to {url!r}")
        origin = (parts.scheme, parts.hostname, parts.port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kept = self._connections().get(origin)
        if kept is not None:
            try:
                return self._exchange(origin, kept, target, headers, body, timeout)
            except _STALE:
                pass  # closed by _exchange; try once more below on a new connection
        connection = self._connect(origin, timeout)
        try:
            return self._exchange(origin, connection, target, headers, body, timeout)
        except _STALE as exc:
            raise DeliveryError(
                "ConnectionError", f"connection closed without an answer ({exc})"
            ) from exc

    def close(self) -> None:
        """Close every kept connection (the dispatcher stops; its threads are done)."""
        with self._open_lock:
            open_now, self._open = self._open, set()
        for connection in open_now:
            connection.close()

    def _drop(
        self, origin: tuple[str, str, int | None], connection: http.client.HTTPConnection
    ) -> None:
        self._connections().pop(origin, None)
        with self._open_lock:
            self._open.discard(connection)
        connection.close()

    def _connections(self) -> dict[tuple[str, str, int | None], http.client.HTTPConnection]:
        held: dict[tuple[str, str, int | None], http.client.HTTPConnection] | None = getattr(
            self._local, "connections", None
        )
        if held is None:
            held = self._local.connections = {}
        return held

    def _connect(
        self, origin: tuple[str, str, int | None], timeout: float
    ) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=_TLS)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise DeliveryError(
                "ConnectTimeout", f"no connection to {host} within {timeout}s"
            ) from exc
        except ssl.SSLError as exc:
            connection.close()
            raise DeliveryError("SSLError", str(exc)) from exc
        except OSError as exc:
            connection.close()
            raise DeliveryError("ConnectionError", f"cannot connect to {host}: {exc}") from exc
        if scheme == "http":
            # Small request, small answer, on a kept connection: don't let Nagle hold the body.
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections()[origin] = connection
        with self._open_lock:
            self._open.add(connection)
        return connection

    def _exchange(
        self,
        origin: tuple[str, str, int | None],
        connection: http.client.HTTPConnection,
        target: str,
        headers: dict[str, str],
        body: bytes,
        timeout: float,
    ) -> Answer:
        try:
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            response.read(self.response_limit)
            answer = Answer(response.status, response.getheader("retry-after"))
            if response.will_close or not response.isclosed():
                # The receiver closes, or answered more than is read: not reusable.
                self._drop(origin, connection)
            return answer
        except _STALE:
            self._drop(origin, connection)
            raise
        except TimeoutError as exc:
            self._drop(origin, connection)
            raise DeliveryError("ReadTimeout", f"no answer within {timeout}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            self._drop(origin, connection)
            raise DeliveryError("ConnectionError", f"{type(exc).__name__}: {exc}") from exc
