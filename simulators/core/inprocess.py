"""In-process mode: the stack mounted into `responses`, so `requests` reaches it without sockets.

Tests and the Gherkin runner use this; the fakes' own peer calls and
callbacks take the same path, so a whole activation runs inside one process.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import responses
from flask import Flask
from requests import PreparedRequest
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout

from .fault_effects import DROPPED_HEADER, IN_PROCESS


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


def mount(mock: responses.RequestsMock, app: Flask, base_url: str) -> MountedStack:
    """Answer every request under `base_url` from the WSGI app."""
    client = app.test_client()
    # Reentrant: a request served here may call a peer that is served here too.
    lock = threading.RLock()
    mounted = MountedStack()

    def forward(request: PreparedRequest) -> tuple[int, dict[str, str], bytes | Exception]:
        parts = urlsplit(request.url or "")
        status = mounted.outage_for(request.method or "GET", parts.path)
        if status is not None:
            return status, {"Content-Type": "text/plain"}, b"outage"
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = request.body.encode() if isinstance(request.body, str) else request.body
        # A fresh app context: the nested request must not see the outer request's `g`.
        with lock, app.app_context():
            answer = client.open(
                path,
                method=request.method or "GET",
                headers=dict(request.headers),
                data=body,
                environ_base={"REMOTE_ADDR": "127.0.0.1", IN_PROCESS: True},
            )
        dropped = answer.headers.get(DROPPED_HEADER)
        if dropped is not None:
            # What `requests` raises when a real server holds or drops the connection.
            kind, _, rule = dropped.partition(";")
            if kind == "timeout":
                return 0, {}, ReadTimeout(f"Read timed out (fault rule {rule})")
            reason = "reset by peer" if kind == "reset" else "closed without response"
            return 0, {}, RequestsConnectionError(f"Connection {reason} (fault rule {rule})")
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return answer.status_code, headers, answer.get_data()

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
