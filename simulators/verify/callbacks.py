"""The partner endpoint a verification runs: it subscribes to the role's event hub, takes
the deliveries, and judges their signatures (Standard Webhooks) and TMF envelopes."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests
from schemathesis.core.failures import Failure, Severity
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from .contract import Contract, ContractError

ENVELOPE = ("eventId", "eventTime", "eventType", "event")


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A loopback HTTP server taking every POST as one delivery (answering 204)."""

    listen: tuple[str, int]
    public_url: str
    deliveries: list[Delivery] = field(default_factory=list)
    secret: str | None = None
    hub_label: str = "callbacks"
    _server: ThreadingHTTPServer | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def start(cls, callback_url: str | None) -> Receiver:
        """Listen on the --callback-url's port (all paths), or on an ephemeral loopback port."""
        if callback_url:
            parts = urlsplit(callback_url)
            if not parts.hostname or not parts.port:
                raise ContractError(f"--callback-url {callback_url!r} needs a host and a port")
            listen = (
                "0.0.0.0" if parts.hostname not in ("127.0.0.1", "localhost") else "127.0.0.1",
                parts.port,
            )
        else:
            listen = ("127.0.0.1", 0)
        receiver = cls(listen=listen, public_url=callback_url or "")
        outer = receiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                delivery = Delivery(dict(self.headers.items()), self.rfile.read(length))
                with outer._arrived:
                    outer.deliveries.append(delivery)
                    outer._arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        try:
            server = ThreadingHTTPServer(listen, Handler)
        except OSError as error:
            raise ContractError(
                f"cannot listen for callbacks on {listen[0]}:{listen[1]}: {error.strerror}"
            ) from None
        server.daemon_threads = True
        receiver._server = server
        if not callback_url:
            receiver.public_url = f"http://127.0.0.1:{server.server_address[1]}/events"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return receiver

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def subscribe(
        self, contract: Contract, base_url: str, headers: dict[str, str], timeout_s: float
    ) -> str:
        """Register with the role's hub; keep the secret it returns once. ContractError if the
        hub refuses (a verification without its callbacks would be half a verdict)."""
        hub = contract.hub
        assert hub is not None
        self.hub_label = hub.label
        try:
            answer = requests.post(
                base_url + hub.path,
                json={"callback": self.public_url},
                headers=headers,
                timeout=timeout_s,
            )
        except requests.RequestException as error:
            raise ContractError(f"cannot reach {base_url}: {_reason(error)}") from None
        body = answer.json() if answer.headers.get("Content-Type", "").endswith("json") else {}
        if answer.status_code not in (200, 201) or not isinstance(body, dict):
            raise ContractError(
                f"{hub.label} refused the callback subscription ({answer.status_code}): "
                f"{str(body.get('detail', '')) if isinstance(body, dict) else ''}".rstrip(": ")
            )
        secret = body.get("secret")
        if not isinstance(secret, str) or not secret:
            raise ContractError(f"{hub.label} answered no `secret` to verify signatures with")
        self.secret = secret
        return str(body.get("id", ""))

    def judge(self, *, grace_s: float) -> tuple[int, list[Failure]]:
        """(deliveries that passed, failures), once no delivery has arrived for `grace_s`."""
        with self._arrived:
            seen = -1
            while len(self.deliveries) != seen:
                seen = len(self.deliveries)
                self._arrived.wait(timeout=grace_s)
            deliveries = list(self.deliveries)
        failures: list[Failure] = []
        passed = 0
        for delivery in deliveries:
            problem = self._problem(delivery)
            if problem is None:
                passed += 1
            elif len(failures) < 5:
                failures.append(self._failure(*problem))
        return passed, failures

    def _problem(self, delivery: Delivery) -> tuple[str, str] | None:
        assert self.secret is not None
        headers = {name.lower(): value for name, value in delivery.headers.items()}
        if "webhook-signature" not in headers:
            return "A callback is unsigned", _describe(delivery, "has no webhook-signature")
        try:
            Webhook(self.secret).verify(delivery.body, headers)
        except WebhookVerificationError as error:
            return "A callback's signature does not verify", _describe(delivery, str(error))
        try:
            event = json.loads(delivery.body)
        except ValueError:
            return "A callback is not JSON", _describe(delivery, "is not JSON")
        missing = [name for name in ENVELOPE if not isinstance(event, dict) or name not in event]
        if missing:
            return "A callback lacks the TMF event envelope", _describe(
                delivery, f"lacks {', '.join(missing)}"
            )
        return None

    def _failure(self, title: str, message: str) -> Failure:
        from .checks import ConformanceFailure

        return ConformanceFailure(
            operation=self.hub_label, title=title, message=message, severity=Severity.HIGH
        )


def _describe(delivery: Delivery, what: str) -> str:
    head = delivery.body[:200].decode(errors="replace")
    return f"The delivery {what} (webhook-id {delivery.headers.get('webhook-id', '-')}): {head}"


def _reason(error: requests.RequestException) -> str:
    text = str(error)
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(error, requests.Timeout):
        return "timed out"
    return text.splitlines()[0][:200]
