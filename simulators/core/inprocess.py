"""In-process mode: the stack mounted into `responses`, so `requests` reaches it without sockets.

Tests and the Gherkin runner use this; the fakes' own peer calls and
callbacks take the same path, so a whole activation runs inside one process.
"""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import requests
import responses
from flask import Flask
from requests import PreparedRequest
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout
from requests.structures import CaseInsensitiveDict

from .fault_effects import DROPPED_HEADER, IN_PROCESS
from .webhook_http import requests_is_mocked


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    params: Any = None,
    headers: dict[str, str] | None = None,
    data: Any = None,
    json: Any = None,
    timeout: float | None = None,
) -> requests.Response:
    """`session.request`, minus what a call answered in-process never uses.

    While `requests` is mocked (the stack mounted here, a suite's `responses`), the request
    goes straight to the session's transport adapter, which the mock replaces: merging the
    environment's proxy and TLS settings, hooks, cookies and redirect resolution cost about
    as much as the stack's own handling of a GET. Against real servers it is `request`.
    """
    if not requests_is_mocked():
        return session.request(
            method, url, params=params, headers=headers, data=data, json=json, timeout=timeout
        )
    merged = CaseInsensitiveDict(session.headers)
    merged.update(headers or {})
    prepared = PreparedRequest()
    prepared.prepare(
        method=method.upper(), url=url, headers=merged, data=data, json=json, params=params
    )
    adapter = session.get_adapter(url)
    return adapter.send(prepared, stream=False, timeout=timeout, verify=True, cert=None, proxies={})


@dataclass
class MountedStack:
    """The stack as `requests` sees it in-process; `outage` makes one path answer an error."""

    outages: list[tuple[str, str, int]] = field(default_factory=list)

    def outage(self, method: str, path_prefix: str, status: int = 503) -> None:
        self.outages.append((method.upper(), path_prefix, status))

    def restore(self) -> None:
        self.outages.clear()

    def outage_for(self, method: str, path: str) -> int | None:
        for outage_method, prefix, status in self.outages:
            if outage_method == method and path.startswith(prefix):
                return status
        return None


def _wsgi(text: str) -> str:
    """A WSGI environ string: UTF-8 bytes carried as latin-1 (PEP 3333)."""
    return text.encode().decode("latin-1")


def _environ(
    method: str, parts: SplitResult, headers: dict[str, Any], body: bytes | None
) -> dict[str, Any]:
    """The environ Flask's test client would build for this request (host `localhost`, as
    its default base URL), built directly: the client's builder, cookie jar and response
    wrapper cost as much as a GET's own handling."""
    uri = parts.path + (f"?{parts.query}" if parts.query else "")
    environ: dict[str, Any] = {
        "REMOTE_ADDR": "127.0.0.1",
        IN_PROCESS: True,
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": _wsgi(unquote(parts.path)),
        "QUERY_STRING": _wsgi(parts.query),
        "REQUEST_URI": _wsgi(uri),
        "RAW_URI": _wsgi(uri),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = text
        else:
            environ[f"HTTP_{key}"] = text
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _body_bytes(body: Any) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if hasattr(body, "read"):  # a file `requests` streams
        data: bytes = body.read()
        return data
    # Chunks `requests` streams from an iterable.
    return b"".join(chunk.encode() if isinstance(chunk, str) else chunk for chunk in body)


def mount(mock: responses.RequestsMock, app: Flask, base_url: str) -> MountedStack:
    """Answer every request under `base_url` from the WSGI app."""
    # Reentrant: a request served here may call a peer that is served here too.
    lock = threading.RLock()
    mounted = MountedStack()

    def forward(request: PreparedRequest) -> tuple[int, dict[str, str], bytes | Exception]:
        parts = urlsplit(request.url or "")
        status = mounted.outage_for(request.method or "GET", parts.path)
        if status is not None:
            return status, {"Content-Type": "text/plain"}, b"outage"
        body = _body_bytes(request.body)
        environ = _environ(request.method or "GET", parts, dict(request.headers), body)
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], _exc: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda _data: None

        # A fresh app context: the nested request must not see the outer request's `g`.
        with lock, app.app_context():
            chunks = app(environ, start_response)
            try:
                content = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        status_line, header_list = started
        answer_headers = dict(header_list)
        dropped = answer_headers.get(DROPPED_HEADER)
        if dropped is not None:
            # What `requests` raises when a real server holds or drops the connection.
            kind, _, rule = dropped.partition(";")
            if kind == "timeout":
                return 0, {}, ReadTimeout(f"Read timed out (fault rule {rule})")
            reason = "reset by peer" if kind == "reset" else "closed without response"
            return 0, {}, RequestsConnectionError(f"Connection {reason} (fault rule {rule})")
        headers = {k: v for k, v in answer_headers.items() if k.lower() != "content-length"}
        return int(status_line.split(" ", 1)[0]), headers, content

    pattern = re.compile(re.escape(base_url.rstrip("/")) + r"(/.*)?$")
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        mock.add_callback(method, pattern, callback=forward)
    return mounted


@dataclass
class ReceivedCallback:
    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class CallbackReceiver:
    """A partner's webhook endpoint: records deliveries, answers a status you choose."""

    base_url: str
    received: list[ReceivedCallback] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default_status: int = 204

    def install(self, mock: responses.RequestsMock) -> None:
        pattern = re.compile(re.escape(self.base_url.rstrip("/")) + r"(/.*)?$")
        mock.add_callback("POST", pattern, callback=self._receive)

    def _receive(self, request: PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        raw = request.body
        body = raw.encode() if isinstance(raw, str) else raw if isinstance(raw, bytes) else b""
        headers = {name: str(value) for name, value in request.headers.items()}
        self.received.append(ReceivedCallback(request.url or "", headers, body))
        status = self.statuses.pop(0) if self.statuses else self.default_status
        return status, {}, b""

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        found = [item.json() for item in self.received]
        return [event for event in found if event_type is None or event["eventType"] == event_type]
