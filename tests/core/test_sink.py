"""The built-in callback sink and the health of callback endpoints, end to end in-process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import BASE_URL, ORDERS, conforms, first_sims, order_body, publish
from flask.testing import FlaskClient
from standardwebhooks import Webhook

from simulators.core import sink_api
from simulators.core.clock import parse_iso
from simulators.core.outbox import RETRY_SCHEDULE_S
from simulators.core.runtime import Runtime

HUB = "/mvne/tmf-api/productOrderingManagement/v4/hub"
CREATE_EVENT = "ProductOrderCreateEvent"


def subscribe(client: FlaskClient, headers: dict[str, str], sink: str, **extra: str) -> Any:
    response = client.post(
        HUB, json={"callback": f"{BASE_URL}/__sink/{sink}", **extra}, headers=headers
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def sink_summary(client: FlaskClient, name: str) -> Any:
    return conforms(client.get(f"/__admin/sinks/{name}"), "admin", "getSink")


def sink_deliveries(client: FlaskClient, name: str, query: str = "") -> list[Any]:
    found: list[Any] = []
    while True:
        response = client.get(
            f"/__admin/sinks/{name}/deliveries?limit=1000&offset={len(found)}{query}"
        )
        page = conforms(response, "admin", "listSinkDeliveries")
        found += page
        if len(found) >= int(response.headers["X-Total-Count"]):
            return found


def endpoint(client: FlaskClient, hub_id: str) -> Any:
    response = client.get("/__admin/callbacks")
    endpoints = conforms(response, "admin", "listCallbacks")
    return next(item for item in endpoints if item["hubId"] == hub_id)


def signed(secret: str, body: bytes, webhook_id: str = "msg_test-1") -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body.decode()),
    }


# --- recording and signatures -------------------------------------------------------------


def test_the_sink_records_a_signed_delivery_from_the_dispatcher(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    subscribe(client, alpha, "orders", query=f"eventType={CREATE_EVENT}")
    iccid = first_sims(client, alpha)[0]
    created = client.post(
        ORDERS, json=order_body(iccid), headers={**alpha, "X-Correlation-ID": "corr-sink"}
    )
    assert created.status_code == 201
    runtime.settle()

    summary = sink_summary(client, "orders")
    assert summary["url"].endswith("/__sink/orders")
    assert (summary["received"], summary["uniqueWebhookIds"], summary["duplicates"]) == (1, 1, 0)
    assert (summary["invalidSignatures"], summary["missingSignatures"]) == (0, 0)
    assert summary["behaviour"] is None
    [received] = sink_deliveries(client, "orders")
    assert received["signature"] == "valid"
    assert received["path"] == "listener/productOrderCreateEvent"
    assert received["eventType"] == CREATE_EVENT
    assert received["correlationId"] == "corr-sink"
    assert received["answeredStatus"] == 200
    assert received["webhookId"].startswith("msg_")
    assert json.loads(received["body"])["event"]["productOrder"]["id"] == created.get_json()["id"]
    [delivery] = client.get("/__admin/outbox?status=done").get_json()
    assert delivery["webhookId"] == received["webhookId"]


def test_the_sink_tells_valid_tampered_and_missing_signatures_apart_and_counts_duplicates(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    hub = subscribe(client, alpha, "verify")
    body = json.dumps({"eventType": "PingEvent", "event": {}}).encode()
    headers = signed(hub["secret"], body)
    url = "/__sink/verify/listener/pingEvent"

    first = client.post(url, data=body, headers=headers)
    receipt = conforms(first, "sink", "receiveCallbackAt")
    assert (receipt["signature"], receipt["duplicate"]) == ("valid", False)
    again = conforms(client.post(url, data=body, headers=headers), "sink", "receiveCallbackAt")
    assert (again["signature"], again["duplicate"]) == ("valid", True)
    tampered = body.replace(b"PingEvent", b"PongEvent")
    answer = client.post(url, data=tampered, headers=signed(hub["secret"], body, "msg_test-2"))
    assert conforms(answer, "sink", "receiveCallbackAt")["signature"] == "invalid"
    other_secret = signed("whsec_" + "A" * 32, body, "msg_test-3")
    assert client.post(url, data=body, headers=other_secret).get_json()["signature"] == "invalid"
    unsigned = client.post("/__sink/verify", json={"eventType": "PingEvent"})
    assert conforms(unsigned, "sink", "receiveCallback")["signature"] == "missing"

    summary = sink_summary(client, "verify")
    assert summary["received"] == 5
    assert summary["uniqueWebhookIds"] == 3
    assert summary["duplicates"] == 1
    assert (summary["invalidSignatures"], summary["missingSignatures"]) == (2, 1)
    [dup, dup_again] = sink_deliveries(client, "verify", "&webhookId=msg_test-1")
    assert dup["body"] == dup_again["body"] == body.decode()
    assert [d["eventType"] for d in sink_deliveries(client, "verify", "&signature=invalid")] == [
        "PongEvent",
        "PingEvent",
    ]
    assert len(sink_deliveries(client, "verify", "&eventType=PingEvent")) == 4


def test_a_repeated_webhook_id_longer_than_the_sink_keeps_is_answered_as_a_duplicate(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    # The sink keeps 256 characters of a webhook-id; the repeat check must compare those,
    # or the answers and the summary disagree about the same two deliveries.
    hub = subscribe(client, alpha, "long-ids")
    body = json.dumps({"eventType": "PingEvent", "event": {}}).encode()
    long_id = "msg_" + "x" * 300
    url = "/__sink/long-ids/listener/pingEvent"

    first = conforms(
        client.post(url, data=body, headers=signed(hub["secret"], body, long_id)),
        "sink",
        "receiveCallbackAt",
    )
    again = conforms(
        client.post(url, data=body, headers=signed(hub["secret"], body, long_id)),
        "sink",
        "receiveCallbackAt",
    )
    assert (first["signature"], first["duplicate"]) == ("valid", False)
    assert (again["signature"], again["duplicate"]) == ("valid", True)
    summary = sink_summary(client, "long-ids")
    assert (summary["received"], summary["uniqueWebhookIds"], summary["duplicates"]) == (2, 1, 1)
    stored = [d["webhookId"] for d in sink_deliveries(client, "long-ids")]
    assert stored == [long_id[:256]] * 2 and again["webhookId"] == long_id[:256]


def test_a_signature_is_only_valid_for_a_subscription_pointing_at_that_sink(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    hub = subscribe(client, alpha, "mine")
    body = b'{"eventType":"PingEvent"}'
    answer = client.post("/__sink/someone-else", data=body, headers=signed(hub["secret"], body))
    assert answer.get_json()["signature"] == "invalid"


def test_bad_input_is_refused_with_a_problem_and_not_recorded(client: FlaskClient) -> None:
    not_json = client.post(
        "/__sink/bad", data=b"{not json", headers={"content-type": "application/json"}
    )
    assert conforms(not_json, "sink", "receiveCallback")["code"] == "MALFORMED_JSON"
    as_text = client.post("/__sink/bad", data=b"hello", headers={"content-type": "text/plain"})
    assert as_text.status_code == 415
    assert as_text.mimetype == "application/problem+json"
    huge = client.post(
        "/__sink/bad/listener/x",
        data=b'"' + b"x" * (1024 * 1024) + b'"',
        headers={"content-type": "application/json"},
    )
    assert conforms(huge, "sink", "receiveCallbackAt")["code"] == "PAYLOAD_TOO_LARGE"
    assert sink_summary(client, "bad")["received"] == 0


def test_clearing_a_sink_forgets_its_deliveries_and_behaviour(client: FlaskClient) -> None:
    client.post("/__sink/tidy", json={"eventType": "PingEvent"})
    configured = client.put("/__admin/sinks/tidy", json={"status": 503})
    assert conforms(configured, "admin", "configureSink")["behaviour"]["status"] == 503
    cleared = client.delete("/__admin/sinks/tidy")
    assert conforms(cleared, "admin", "clearSink") is None
    summary = sink_summary(client, "tidy")
    assert (summary["received"], summary["behaviour"]) == (0, None)


# --- a misbehaving sink ------------------------------------------------------------------------


def test_a_failing_sink_sees_retries_with_growing_backoff_until_dead_letter_then_disable(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    hub = subscribe(client, alpha, "flaky")
    told = client.put("/__admin/sinks/flaky", json={"status": 500})
    assert conforms(told, "admin", "configureSink")["behaviour"] == {
        "status": 500,
        "retryAfter": None,
        "hangSeconds": 0.0,
        "remaining": None,
    }
    publish(runtime, 3)
    runtime.settle()

    retrying = endpoint(client, hub["id"])
    assert (retrying["retrying"], retrying["deadLettered"], retrying["disabled"]) == (3, 0, False)
    next_at = parse_iso(retrying["nextAttemptAt"])
    assert runtime.clock.now() + 5 * 0.8 <= next_at <= runtime.clock.now() + 5 * 1.2

    runtime.advance(4 * 86400)

    summary = sink_summary(client, "flaky")
    max_attempts = runtime.settings.callback_max_attempts
    assert summary["received"] == 3 * max_attempts
    assert (summary["uniqueWebhookIds"], summary["duplicates"]) == (3, 3 * (max_attempts - 1))
    for webhook in {d["webhookId"] for d in sink_deliveries(client, "flaky")}:
        attempts = sink_deliveries(client, "flaky", f"&webhookId={webhook}")
        assert {a["answeredStatus"] for a in attempts} == {500}
        times = [parse_iso(a["receivedAt"]) for a in attempts]
        gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
        # Standard Webhooks schedule with +-20 % jitter: each wait at least the step's 80 %.
        for gap, step in zip(gaps, RETRY_SCHEDULE_S[1:], strict=False):
            assert gap >= step * 0.8, (gaps, RETRY_SCHEDULE_S)
        assert gaps[:6] == sorted(gaps[:6]), gaps

    dead = endpoint(client, hub["id"])
    assert (dead["deadLettered"], dead["retrying"], dead["nextAttemptAt"]) == (3, 0, None)
    assert (dead["disabled"], dead["disabledReason"]) == (True, "deadLetters")
    assert dead["consecutiveDeadLetters"] == 3

    # Disabled: a new event is kept, not sent.
    publish(runtime, 1, first=3)
    runtime.settle()
    assert sink_summary(client, "flaky")["received"] == 3 * max_attempts
    assert endpoint(client, hub["id"])["skipped"] == 1
    [skipped] = client.get("/__admin/outbox?status=skipped").get_json()
    assert skipped["attempts"] == 0

    # Healthy again: a redrive enables the endpoint and delivers every held event once.
    client.put("/__admin/sinks/flaky", json={})
    redriven = client.post(f"/__admin/callbacks/{hub['id']}/redrive")
    answer = conforms(redriven, "admin", "redriveCallbacks")
    assert answer["requeued"] == 4
    assert answer["endpoint"]["disabled"] is False
    runtime.settle()
    after = endpoint(client, hub["id"])
    assert (after["delivered"], after["deadLettered"], after["skipped"]) == (4, 0, 0)
    assert after["consecutiveDeadLetters"] == 0
    delivered = sink_deliveries(client, "flaky", "&signature=valid")
    assert len({d["webhookId"] for d in delivered}) == 4
    assert len([d for d in delivered if d["answeredStatus"] == 200]) == 4


def test_a_410_disables_the_endpoint_at_once_and_enable_resumes_new_events(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    hub = subscribe(client, alpha, "gone")
    client.put("/__admin/sinks/gone", json={"status": 410, "count": 1})
    publish(runtime, 1)
    runtime.settle()
    gone = endpoint(client, hub["id"])
    assert (gone["disabled"], gone["disabledReason"], gone["deadLettered"]) == (True, "gone", 1)

    enabled = client.post(f"/__admin/callbacks/{hub['id']}/enable")
    assert conforms(enabled, "admin", "enableCallback")["disabled"] is False
    publish(runtime, 1, first=1)
    runtime.settle()
    after = endpoint(client, hub["id"])
    assert (after["delivered"], after["deadLettered"], after["disabled"]) == (1, 1, False)


def test_retry_after_from_the_sink_is_honoured_and_a_counted_behaviour_wears_off(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    hub = subscribe(client, alpha, "busy")
    client.put("/__admin/sinks/busy", json={"status": 429, "retryAfter": 120, "count": 1})
    publish(runtime, 1)
    start = runtime.clock.now()
    runtime.settle()

    [first] = sink_deliveries(client, "busy")
    assert first["answeredStatus"] == 429
    waiting = endpoint(client, hub["id"])
    assert parse_iso(waiting["nextAttemptAt"]) >= start + 120
    assert sink_summary(client, "busy")["behaviour"] is None

    runtime.advance(119)
    assert sink_summary(client, "busy")["received"] == 1
    runtime.advance(2)
    assert [d["answeredStatus"] for d in sink_deliveries(client, "busy")] == [429, 200]
    assert endpoint(client, hub["id"])["delivered"] == 1


def test_a_hanging_sink_waits_before_answering(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    waited: list[float] = []
    monkeypatch.setattr(sink_api, "sleep", waited.append)
    client.put("/__admin/sinks/slow", json={"hangSeconds": 7.5, "status": 204, "count": 2})
    for _ in range(3):
        client.post("/__sink/slow", json={"eventType": "PingEvent"})
    assert waited == [7.5, 7.5]
    assert [d["answeredStatus"] for d in sink_deliveries(client, "slow")] == [204, 204, 200]


def test_callback_admin_refuses_unknown_subscriptions(client: FlaskClient) -> None:
    for op in ("enable", "redrive"):
        response = client.post(f"/__admin/callbacks/{'0' * 32}/{op}")
        operation = "enableCallback" if op == "enable" else "redriveCallbacks"
        assert conforms(response, "admin", operation)["code"] == "NOT_FOUND"


def test_unsubscribing_forgets_the_endpoint(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    hub = subscribe(client, alpha, "bye")
    client.put("/__admin/sinks/bye", json={"status": 410})
    publish(runtime, 1)
    runtime.settle()
    assert endpoint(client, hub["id"])["disabled"] is True
    assert client.delete(f"{HUB}/{hub['id']}", headers=alpha).status_code == 204
    assert client.get("/__admin/callbacks").get_json() == []


# --- volume ------------------------------------------------------------------------------------


def test_a_burst_of_events_reaches_the_sink_exactly_once(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    """In-process every delivery crosses `responses` and the Flask test client, so the
    eleven-thousand-delivery storm across a restart is in tests/test_live.py."""
    hub = subscribe(client, alpha, "bulk")
    publish(runtime, 500)
    runtime.settle(max_rounds=1000)

    summary = sink_summary(client, "bulk")
    assert (summary["received"], summary["uniqueWebhookIds"], summary["duplicates"]) == (
        500,
        500,
        0,
    )
    assert summary["invalidSignatures"] == summary["missingSignatures"] == 0
    counts = endpoint(client, hub["id"])
    assert (counts["delivered"], counts["queued"], counts["retrying"]) == (500, 0, 0)
