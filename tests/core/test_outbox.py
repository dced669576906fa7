"""Callbacks: the SSRF guard on callback URLs, signed delivery, retries, dead letters, restarts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
from typing import Any

import pytest
from conftest import ORDERS, PARTNER_HOOKS, conforms, first_sims, order_body
from flask.testing import FlaskClient
from sqlalchemy import func, select
from standardwebhooks import Webhook

from simulators.core.config import Settings
from simulators.core.inprocess import CallbackReceiver, ReceivedCallback
from simulators.core.outbox import CallbackRefused, check_callback_url, hub_table, listener_url
from simulators.core.runtime import Runtime

HUB = "/mvne/tmf-api/productOrderingManagement/v4/hub"
CREATE_EVENT = "ProductOrderCreateEvent"
CREATE_LISTENER = "/listener/productOrderCreateEvent"
# Standard Webhooks retry guide after attempts 1..7: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
RETRY_GAPS_S = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = (0.8, 1.2)


# --- the SSRF guard -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hooks",
        "http://127.10.20.30/hooks",
        "https://localhost:8443/hooks",
        "http://[::1]:9000/hooks",
    ],
)
def test_loopback_callbacks_are_allowed(url: str) -> None:
    check_callback_url(url, ())


def test_an_allow_listed_host_is_allowed() -> None:
    check_callback_url("https://hooks.partner.test/tmf/listener", ("hooks.partner.test",))
    check_callback_url("http://HOOKS.partner.test:8080/x", ("hooks.partner.test",))


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.170.2/v2/credentials",
        "http://[fe80::1]/hooks",
        "http://100.100.100.200/latest/meta-data",
        "http://0.0.0.0:8080/hooks",
    ],
)
def test_link_local_and_metadata_addresses_are_refused(url: str) -> None:
    with pytest.raises(CallbackRefused) as refused:
        check_callback_url(url, ())
    assert refused.value.code == "CALLBACK_NOT_ALLOWED"
    assert refused.value.status == 422
    assert refused.value.members["field"] == "callback"


def test_a_metadata_address_is_refused_even_when_allow_listed() -> None:
    with pytest.raises(CallbackRefused):
        check_callback_url("http://169.254.169.254/latest/", ("169.254.169.254",))


def test_an_allow_listed_name_resolving_to_a_metadata_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS can point an allowed name anywhere; the resolved address is checked too."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "hooks.partner.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(CallbackRefused):
        check_callback_url("http://hooks.partner.test/x", ("hooks.partner.test",))


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",
        "http://attacker.example.net:8080/x",
        "http://10.0.0.5/hooks",
        "http://192.168.1.1/admin",
        "http://8.8.8.8/",
        # 169.254.169.254 written as one decimal number: a name to us, so refused unresolved.
        "http://2852039166/",
    ],
)
def test_hosts_outside_loopback_and_the_allow_list_are_refused(url: str) -> None:
    with pytest.raises(CallbackRefused):
        check_callback_url(url, ("hooks.partner.test",))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/hooks",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_x",
        "hooks.partner.test/listener",
        "http:///no-host",
        "http://127.0.0.1:notaport/x",
    ],
)
def test_non_http_or_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(CallbackRefused):
        check_callback_url(url, ("hooks.partner.test",))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8700/__admin/partners/mvno-bravo/terminate#",
        "http://localhost:8700/__admin/reset?x=",
        "http://127.0.0.1:8700/__admin",
        "http://127.0.0.1:8700//__admin/reset",
        "http://127.0.0.1:8700/hooks/../__admin/reset",
        "http://127.0.0.1:8700/%5F%5Fadmin/reset",
        "http://127.0.0.1:8700/__ADMIN/reset",
    ],
)
def test_a_callback_into_the_stack_s_control_plane_is_refused(url: str) -> None:
    # The control plane trusts loopback callers, and the dispatcher is one.
    with pytest.raises(CallbackRefused, match="control plane"):
        check_callback_url(url, ())


def test_the_stack_s_own_sink_and_paths_beside_the_control_plane_are_allowed() -> None:
    for url in ("http://127.0.0.1:8700/__sink/bench", "http://127.0.0.1:8700/__administrators"):
        check_callback_url(url, ())


def test_the_listener_path_is_added_to_the_callback_s_path_and_its_query_kept() -> None:
    assert listener_url("http://h.test/hooks?token=abc", "productOrderCreateEvent") == (
        "http://h.test/hooks/listener/productOrderCreateEvent?token=abc"
    )
    assert listener_url("http://h.test/hooks/#frag", "x") == "http://h.test/hooks/listener/x"
    assert listener_url("http://h.test", "x") == "http://h.test/listener/x"


def test_registering_a_forbidden_callback_is_a_422_and_stores_nothing(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    for url in ("http://169.254.169.254/latest/meta-data/", "https://evil.example.com/x"):
        response = client.post(HUB, json={"callback": url}, headers=alpha)
        body = conforms(response, "mvne", "registerOrderListener")
        assert response.status_code == 422
        assert body["code"] == "CALLBACK_NOT_ALLOWED"
        assert body["field"] == "callback"
    with runtime.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(hub_table)).scalar_one() == 0


# --- delivery ----------------------------------------------------------------------------


def register(client: FlaskClient, headers: dict[str, str], **extra: str) -> dict[str, Any]:
    body = {"callback": f"{PARTNER_HOOKS}/alpha", "query": f"eventType={CREATE_EVENT}", **extra}
    response = client.post(HUB, json=body, headers=headers)
    hub = conforms(response, "mvne", "registerOrderListener")
    assert response.status_code == 201
    assert hub["secret"].startswith("whsec_")
    return hub


def submit_order(client: FlaskClient, headers: dict[str, str], cid: str = "corr-hook") -> str:
    iccid = first_sims(client, headers)[0]
    response = client.post(
        ORDERS, json=order_body(iccid), headers={**headers, "X-Correlation-ID": cid}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def create_deliveries(hooks: CallbackReceiver) -> list[ReceivedCallback]:
    return [item for item in hooks.received if item.url.endswith(CREATE_LISTENER)]


def only_delivery(runtime: Runtime) -> dict[str, Any]:
    total, rows = runtime.outbox.list()
    assert total == 1, rows
    return rows[0]


def expected_signature(secret: str, received: ReceivedCallback) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (
        f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode()
        + received.body
    )
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_a_delivery_carries_a_valid_standard_webhooks_signature(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], hooks: CallbackReceiver
) -> None:
    hub = register(client, alpha)
    order_id = submit_order(client, alpha)
    runtime.settle()

    [received] = create_deliveries(hooks)
    assert received.url == f"{PARTNER_HOOKS}/alpha{CREATE_LISTENER}"
    assert received.headers["webhook-id"].startswith("msg_")
    assert received.headers["webhook-signature"] == expected_signature(hub["secret"], received)
    assert received.headers["x-correlation-id"] == "corr-hook"
    event = received.json()
    assert event["eventType"] == CREATE_EVENT
    assert event["correlationId"] == "corr-hook"
    assert event["event"]["productOrder"]["id"] == order_id
    # A tampered body no longer matches the signature.
    tampered = ReceivedCallback(received.url, received.headers, received.body.replace(b"1", b"2"))
    assert expected_signature(hub["secret"], tampered) != received.headers["webhook-signature"]


def test_a_receiver_verifies_a_delivery_with_the_standard_webhooks_library(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], hooks: CallbackReceiver
) -> None:
    """What a partner's endpoint runs: `Webhook(secret).verify(body, headers)`, which also
    refuses a `webhook-timestamp` more than 5 minutes from the receiver's own clock."""
    hub = register(client, alpha)
    order_id = submit_order(client, alpha)
    runtime.settle()

    [received] = create_deliveries(hooks)
    payload = Webhook(hub["secret"]).verify(received.body, received.headers)
    assert payload["event"]["productOrder"]["id"] == order_id


def test_a_failed_delivery_is_retried_with_backoff_and_the_same_webhook_id(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], hooks: CallbackReceiver
) -> None:
    register(client, alpha)
    hooks.statuses = [500]
    submit_order(client, alpha)
    start = runtime.clock.now()
    runtime.settle()

    assert len(create_deliveries(hooks)) == 1
    row = only_delivery(runtime)
    assert (row["status"], row["attempts"], row["last_status"]) == ("pending", 1, 500)
    low, high = (5 * factor for factor in JITTER)
    assert start + low <= row["due_at"] <= start + high

    runtime.advance(low - 0.1)
    assert len(create_deliveries(hooks)) == 1, "retried before the 5 s (minus jitter) backoff"

    runtime.advance(high - low + 0.2)
    first, second = create_deliveries(hooks)
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.body == first.body
    row = only_delivery(runtime)
    assert (row["status"], row["attempts"], row["last_status"]) == ("done", 2, 204)


def test_410_gone_stops_delivery_at_once(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], hooks: CallbackReceiver
) -> None:
    register(client, alpha)
    hooks.statuses = [410]
    submit_order(client, alpha)
    runtime.settle()

    row = only_delivery(runtime)
    assert (row["status"], row["attempts"], row["last_status"]) == ("failed", 1, 410)
    runtime.advance(3 * 86400)
    assert len(create_deliveries(hooks)) == 1


def test_a_delivery_is_dead_lettered_after_the_last_attempt_and_can_be_redelivered(
    client: FlaskClient,
    runtime: Runtime,
    settings: Settings,
    alpha: dict[str, str],
    hooks: CallbackReceiver,
) -> None:
    register(client, alpha)
    hooks.default_status = 500
    submit_order(client, alpha)
    runtime.settle()

    # Each retry waits the next step of the schedule (with +-20 % jitter), never less.
    for attempt, gap in enumerate(RETRY_GAPS_S, start=1):
        row = only_delivery(runtime)
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        wait = row["due_at"] - runtime.clock.now()
        assert gap * JITTER[0] <= wait <= gap * JITTER[1], (attempt, wait)
        runtime.advance(wait)

    assert len(create_deliveries(hooks)) == settings.callback_max_attempts == 8
    response = client.get("/__admin/outbox?status=failed")
    [dead] = conforms(response, "admin", "listOutbox")
    assert response.headers["X-Total-Count"] == "1"
    assert dead["status"] == "failed"
    assert dead["attempts"] == 8
    assert dead["lastStatus"] == 500
    assert dead["eventType"] == CREATE_EVENT
    assert dead["partnerId"] == "mvno-alpha"
    assert dead["correlationId"] == "corr-hook"

    runtime.advance(7 * 86400)
    assert len(create_deliveries(hooks)) == 8, "a dead letter is never retried on its own"

    hooks.default_status = 204
    redelivered = client.post(f"/__admin/outbox/{dead['id']}/redeliver")
    queued = conforms(redelivered, "admin", "redeliverCallback")
    assert (queued["status"], queued["attempts"]) == ("pending", 0)
    assert client.get("/__admin/outbox?status=failed").get_json() == []

    runtime.settle()
    assert len(create_deliveries(hooks)) == 9
    [done] = client.get("/__admin/outbox?status=done").get_json()
    assert done["id"] == dead["id"]
    assert done["deliveredAt"] is not None


def test_redelivering_an_unknown_delivery_is_404(client: FlaskClient) -> None:
    response = client.post("/__admin/outbox/999999/redeliver")
    body = conforms(response, "admin", "redeliverCallback")
    assert response.status_code == 404
    assert body["code"] == "NOT_FOUND"


def test_a_pending_delivery_survives_a_restart(
    client: FlaskClient,
    runtime: Runtime,
    settings: Settings,
    alpha: dict[str, str],
    hooks: CallbackReceiver,
) -> None:
    hub = register(client, alpha)
    order_id = submit_order(client, alpha)
    assert only_delivery(runtime)["status"] == "pending"
    assert hooks.received == []

    restarted = Runtime(settings)
    try:
        assert restarted.outbox.deliver_due(restarted) == 1
        restarted.journal.flush()
    finally:
        restarted.close()

    [received] = create_deliveries(hooks)
    assert received.headers["webhook-signature"] == expected_signature(hub["secret"], received)
    assert received.json()["event"]["productOrder"]["id"] == order_id
    row = only_delivery(runtime)
    assert (row["status"], row["attempts"]) == ("done", 1)


def test_a_queued_delivery_is_checked_again_against_the_current_allow_list(
    client: FlaskClient,
    runtime: Runtime,
    settings: Settings,
    alpha: dict[str, str],
    hooks: CallbackReceiver,
) -> None:
    """The allow-list is configuration: a stack restarted without the host stops sending."""
    register(client, alpha)
    submit_order(client, alpha)

    restarted = Runtime(settings.with_overrides(callback_allow_hosts=()))
    try:
        restarted.outbox.deliver_due(restarted)
    finally:
        restarted.close()

    assert hooks.received == []
    row = only_delivery(runtime)
    assert row["attempts"] == 1
    assert row["last_status"] is None
    assert "CallbackRefused" in row["last_error"]


def test_an_unsubscribed_hub_gets_none_of_the_deliveries_still_waiting(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], hooks: CallbackReceiver
) -> None:
    hub = register(client, alpha)
    hooks.statuses = [500]
    submit_order(client, alpha)
    runtime.settle()
    assert len(create_deliveries(hooks)) == 1
    assert only_delivery(runtime)["status"] == "pending"  # waiting for its retry

    deleted = client.delete(f"{HUB}/{hub['id']}", headers=alpha)
    assert deleted.status_code == 204
    runtime.advance(3600)
    assert len(create_deliveries(hooks)) == 1
    row = only_delivery(runtime)
    assert (row["status"], row["last_error"]) == ("skipped", "The subscription was deleted")


def order_events(hooks: CallbackReceiver, order_id: str) -> list[tuple[str, str]]:
    """(event type, order state) of each delivery about one order, in arrival order."""
    seen = []
    for item in hooks.received:
        event = item.json()
        order = event["event"].get("productOrder", {})
        if order.get("id") == order_id:
            seen.append((event["eventType"], order.get("state", "")))
    return seen


def test_a_resource_s_later_events_wait_for_an_earlier_one_being_retried(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], hooks: CallbackReceiver
) -> None:
    response = client.post(HUB, json={"callback": f"{PARTNER_HOOKS}/alpha"}, headers=alpha)
    assert response.status_code == 201
    hooks.statuses = [500]  # the receiver fails the order's first event once
    order_id = submit_order(client, alpha)
    runtime.advance(60)  # the order completes at the network meanwhile
    runtime.advance(3600)

    arrived = order_events(hooks, order_id)
    first, *rest = arrived
    assert first[0] == CREATE_EVENT  # answered 500
    assert rest[0] == first  # its retry comes before anything later about the order
    assert rest[-1][1] == "completed"
    assert [state for _, state in rest] == sorted(
        (state for _, state in rest), key=["acknowledged", "inProgress", "completed"].index
    )
