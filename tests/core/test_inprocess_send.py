"""`inprocess.send`: the transport adapter while requests is mocked, Session.request otherwise."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
import responses

from simulators.core import inprocess


def test_a_mocked_call_carries_the_sessions_headers_its_own_and_its_query():
    session = requests.Session()
    session.headers["X-Session-Default"] = "kept"
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, "http://stack.test/mvne/orders", json={"ok": True}, status=201)
        answer = inprocess.send(
            session,
            "post",
            "http://stack.test/mvne/orders",
            params={"fields": "id,state"},
            headers={"X-API-Key": "k-1", "x-session-default": "overridden"},
            json={"a": 1},
            timeout=5,
        )
        sent = mock.calls[0].request
    assert answer.status_code == 201 and answer.json() == {"ok": True}
    assert sent.url == "http://stack.test/mvne/orders?fields=id%2Cstate"
    assert sent.headers["X-API-Key"] == "k-1"
    assert sent.headers["X-Session-Default"] == "overridden"
    assert "python-requests" in sent.headers["User-Agent"]
    assert sent.body == b'{"a": 1}'


def test_against_a_real_server_it_is_session_request_redirects_and_all():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's convention
            if self.path == "/old":
                self.send_response(307)
                self.send_header("Location", "/new")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"at": "new"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with requests.Session() as session:
            answer = inprocess.send(
                session, "GET", f"http://127.0.0.1:{server.server_address[1]}/old", timeout=5
            )
    finally:
        server.shutdown()
        server.server_close()
    assert answer.json() == {"at": "new"}
    assert [hop.status_code for hop in answer.history] == [307]
