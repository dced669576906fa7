"""The dispatcher's own HTTP client, against a real receiver on loopback (no mocks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import responses
from sqlalchemy import select
from standardwebhooks import Webhook

from simulators.core.config import Settings
from simulators.core.outbox import outbox_table, webhook_secret
from simulators.core.runtime import Runtime
from simulators.core.webhook_http import DeliveryError, WebhookClient, requests_is_mocked


class Receiver(ThreadingHTTPServer):
    """Answers each POST as `answer` says; remembers the client port and headers seen."""

    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[int, dict[str, str], bytes]] = []
        self.status = 204
        self.extra_headers: dict[str, str] = {}
        self.body = b""
        self.hang_s = 0.0
        self.close_after_answer = False

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(handler) -> None:  # noqa: N805 - http.server's convention
                length = int(handler.headers.get("Content-Length", 0))
                received = handler.rfile.read(length)
                self.seen.append((handler.client_address[1], dict(handler.headers), received))
                if self.hang_s:
                    time.sleep(self.hang_s)
                handler.send_response(self.status)
                for name, value in self.extra_headers.items():
                    handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(self.body)))
                if self.close_after_answer:
                    handler.send_header("Connection", "close")
                handler.end_headers()
                handler.wfile.write(self.body)
                if self.close_after_answer:
                    handler.close_connection = True

            def log_message(handler, *args: object) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.clients: list[WebhookClient] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that stops reading a long answer breaks the pipe: expected here."""

    def client(self) -> WebhookClient:
        made = WebhookClient(1024)
        self.clients.append(made)
        return made

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/orders?tenant=a"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    for client in server.clients:
        client.close()
    server.shutdown()
    server.server_close()


HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}


def test_a_callback_arrives_with_its_headers_and_body_and_the_answer_comes_back(receiver):
    receiver.status = 429
    receiver.extra_headers = {"Retry-After": "7"}
    answer = receiver.client().post(receiver.url, HEADERS, b'{"a":1}', timeout=5)
    assert (answer.status, answer.retry_after) == (429, "7")
    _port, headers, body = receiver.seen[0]
    assert body == b'{"a":1}'
    assert headers["webhook-id"] == "msg_1"
    assert headers["content-type"] == "application/json"


def test_callbacks_to_one_receiver_share_one_kept_connection(receiver):
    client = receiver.client()
    for _ in range(3):
        assert client.post(receiver.url, HEADERS, b"{}", timeout=5).status == 204
    assert len({port for port, _headers, _body in receiver.seen}) == 1


def test_a_receiver_that_closes_its_connections_still_gets_every_callback(receiver):
    receiver.close_after_answer = True
    client = receiver.client()
    for _ in range(3):
        assert client.post(receiver.url, HEADERS, b"{}", timeout=5).status == 204
    assert len(receiver.seen) == 3
    assert len({port for port, _headers, _body in receiver.seen}) == 3


def test_a_kept_connection_the_receiver_dropped_is_replaced_without_losing_the_callback(
    receiver,
):
    client = receiver.client()
    client.post(receiver.url, HEADERS, b"{}", timeout=5)
    # The receiver went away between two callbacks (restart, idle timeout).
    for connection in client._connections().values():
        connection.sock.shutdown(socket.SHUT_RDWR)
    assert client.post(receiver.url, HEADERS, b'{"n":2}', timeout=5).status == 204
    assert [body for _port, _headers, body in receiver.seen] == [b"{}", b'{"n":2}']


def test_an_answer_longer_than_the_limit_is_cut_and_its_connection_not_reused(receiver):
    receiver.status = 200
    receiver.body = b"x" * 5000
    client = receiver.client()
    assert client.post(receiver.url, HEADERS, b"{}", timeout=5).status == 200
    assert client._connections() == {}
    assert client.post(receiver.url, HEADERS, b"{}", timeout=5).status == 200
    assert len({port for port, _headers, _body in receiver.seen}) == 2


def test_a_receiver_that_does_not_answer_in_time_is_a_read_timeout(receiver):
    receiver.hang_s = 1.0
    with pytest.raises(DeliveryError) as failed:
        receiver.client().post(receiver.url, HEADERS, b"{}", timeout=0.2)
    assert failed.value.kind == "ReadTimeout"
    assert str(failed.value).startswith("ReadTimeout: ")


def test_nobody_listening_is_a_connection_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DeliveryError) as failed:
        WebhookClient(1024).post(f"http://127.0.0.1:{port}/hook", HEADERS, b"{}", timeout=2)
    assert failed.value.kind == "ConnectionError"


def test_a_url_that_is_not_http_is_refused_before_any_connection():
    with pytest.raises(DeliveryError) as failed:
        WebhookClient(1024).post("ftp://127.0.0.1/hook", HEADERS, b"{}", timeout=2)
    assert failed.value.kind == "InvalidURL"


def test_a_suite_mocking_requests_is_noticed_so_its_mock_sees_the_callbacks():
    assert not requests_is_mocked()
    with responses.RequestsMock():
        assert requests_is_mocked()
    assert not requests_is_mocked()


def dispatcher_to(tmp_path: Path, callback: str) -> tuple[Runtime, str]:
    """A stack with one subscription to `callback` and one order event queued for it."""
    runtime = Runtime(
        Settings(
            db_url=f"sqlite:///{tmp_path / 'state.db'}", secret_key="k", state_dir=str(tmp_path)
        )
    )
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        hub = runtime.outbox.subscribe(
            conn, role="mvne", api="productOrderingManagement", partner_id="mvno-alpha",
            callback=callback, query=None, now=now, allow_hosts=(),
        )  # fmt: skip
        runtime.outbox.publish(
            conn, role="mvne", api="productOrderingManagement", partner_id="mvno-alpha",
            event_type="ProductOrderStateChangeEvent", resource_name="productOrder",
            resource={"id": "order-1", "state": "inProgress"}, correlation_id="corr-wire-1",
            now=now,
        )  # fmt: skip
    return runtime, hub.id


def the_delivery(runtime: Runtime) -> Any:
    with runtime.store.read() as conn:
        return conn.execute(select(outbox_table)).one()


def test_the_dispatcher_delivers_over_the_wire_signed_with_the_subscriptions_secret(
    tmp_path, receiver
):
    runtime, hub_id = dispatcher_to(tmp_path, receiver.url)
    try:
        assert not requests_is_mocked()
        assert runtime.outbox.deliver_due(runtime) == 1
    finally:
        runtime.close()
    _port, headers, body = receiver.seen[0]
    secret = webhook_secret("k", hub_id)
    assert Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
    assert headers["x-correlation-id"] == "corr-wire-1"
    assert headers["user-agent"].startswith("Handoff-Webhooks/")
    delivery = the_delivery(runtime)
    assert (delivery.status, delivery.last_status, delivery.attempts) == ("done", 204, 1)


def test_a_receiver_asking_to_wait_is_tried_again_no_sooner_than_it_asked(tmp_path, receiver):
    receiver.status = 429
    receiver.extra_headers = {"Retry-After": "120"}
    runtime, _hub_id = dispatcher_to(tmp_path, receiver.url)
    try:
        sent_at = runtime.clock.now()
        runtime.outbox.deliver_due(runtime)
    finally:
        runtime.close()
    delivery = the_delivery(runtime)
    assert (delivery.status, delivery.last_status) == ("pending", 429)
    assert delivery.due_at >= sent_at + 120


def test_a_receiver_nobody_answers_for_is_recorded_as_a_connection_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime, _hub_id = dispatcher_to(tmp_path, f"http://127.0.0.1:{port}/hooks")
    try:
        runtime.outbox.deliver_due(runtime)
    finally:
        runtime.close()
    delivery = the_delivery(runtime)
    assert (delivery.status, delivery.last_status) == ("pending", None)
    assert delivery.last_error.startswith("ConnectionError: cannot connect to 127.0.0.1")
