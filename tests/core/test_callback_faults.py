"""Callback fault rules seen from the built-in sink: duplicates under one webhook-id,
storms, held-back and replayed events, broken signatures and retries without backoff."""

from __future__ import annotations

from typing import Any

from conftest import BASE_URL, conforms, publish
from flask.testing import FlaskClient

from simulators.core.clock import parse_iso

HUB = "/mvne/tmf-api/productOrderingManagement/v4/hub"


def subscribe(client: FlaskClient, headers: dict[str, str], sink: str) -> Any:
    response = client.post(HUB, json={"callback": f"{BASE_URL}/__sink/{sink}"}, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def add(client: FlaskClient, rule: dict[str, Any]) -> Any:
    response = client.post("/__admin/faults", json=rule)
    assert response.status_code == 201, response.get_data(as_text=True)
    return conforms(response, "admin", "addFault")


def received(client: FlaskClient, sink: str) -> list[Any]:
    found: list[Any] = []
    while True:
        page = client.get(f"/__admin/sinks/{sink}/deliveries?limit=1000&offset={len(found)}")
        found += page.get_json()
        if len(found) >= int(page.headers["X-Total-Count"]):
            return found


def summary(client: FlaskClient, sink: str) -> Any:
    return client.get(f"/__admin/sinks/{sink}").get_json()


def test_duplicates_reach_the_sink_under_the_same_webhook_id(client, runtime, alpha):
    subscribe(client, alpha, "dups")
    add(client, {"match": {"role": "callbacks"}, "effect": {"type": "duplicate", "copies": 2},
                 "dosage": {"everyNth": 2}})  # fmt: skip
    publish(runtime, 4)
    runtime.settle()
    seen = summary(client, "dups")
    # Events 2 and 4 were sent three times each; 1 and 3 once.
    assert (seen["received"], seen["uniqueWebhookIds"], seen["duplicates"]) == (8, 4, 4)
    assert seen["invalidSignatures"] == 0


def test_a_storm_sends_one_event_n_per_second_for_d_seconds(client, runtime, alpha):
    subscribe(client, alpha, "storm")
    add(client, {"match": {"partner": "mvno-alpha", "event": "ProductOrderStateChangeEvent"},
                 "effect": {"type": "storm", "perSecond": 50, "seconds": 4},
                 "dosage": {"firstN": 1}})  # fmt: skip
    publish(runtime, 3)
    runtime.advance(5)
    seen = summary(client, "storm")
    assert (seen["received"], seen["uniqueWebhookIds"], seen["duplicates"]) == (202, 3, 199)
    storm = [d for d in received(client, "storm") if d["correlationId"] == "corr-0"]
    times = sorted(parse_iso(d["receivedAt"]) for d in storm)
    assert len(storm) == 200 and times[-1] - times[0] >= 3.9  # spread over the four seconds


def test_held_back_events_arrive_after_later_ones(client, runtime, alpha):
    subscribe(client, alpha, "order")
    add(client, {"match": {"role": "callbacks"}, "effect": {"type": "outOfOrder", "seconds": 30},
                 "dosage": {"firstN": 1}})  # fmt: skip
    publish(runtime, 3)
    runtime.advance(31)
    order = [d["correlationId"] for d in sorted(received(client, "order"), key=lambda d: d["id"])]
    assert order[-1] == "corr-0" and sorted(order[:2]) == ["corr-1", "corr-2"]


def test_delay_holds_an_event_on_the_simulated_clock(client, runtime, alpha):
    subscribe(client, alpha, "late")
    add(client, {"match": {"role": "callbacks"}, "effect": {"type": "delay", "seconds": 120}})
    publish(runtime, 1)
    runtime.advance(119)
    assert summary(client, "late")["received"] == 0
    runtime.advance(2)
    assert summary(client, "late")["received"] == 1


def test_replay_sends_earlier_events_again(client, runtime, alpha):
    subscribe(client, alpha, "replay")
    publish(runtime, 3)
    runtime.settle()
    add(client, {"match": {"role": "callbacks"}, "effect": {"type": "replay", "count": 2}})
    publish(runtime, 1, first=3)
    runtime.settle()
    ids = [d["correlationId"] for d in sorted(received(client, "replay"), key=lambda d: d["id"])]
    # Events about different orders go out side by side: no order among them.
    assert sorted(ids[:3]) == ["corr-0", "corr-1", "corr-2"]
    assert sorted(ids[3:]) == ["corr-1", "corr-2", "corr-3"]
    assert summary(client, "replay")["duplicates"] == 2


def test_wrong_and_missing_signatures(client, runtime, alpha):
    subscribe(client, alpha, "sigs")
    add(client, {"match": {"role": "callbacks"}, "effect": {"type": "badSignature"},
                 "dosage": {"firstN": 1}})  # fmt: skip
    add(client, {"match": {"role": "callbacks"}, "effect": {"type": "missingSignature"},
                 "dosage": {"everyNth": 3}})  # fmt: skip
    for number in range(3):
        publish(runtime, 1, first=number)
        runtime.settle()
    verdicts = [d["signature"] for d in sorted(received(client, "sigs"), key=lambda d: d["id"])]
    assert verdicts == ["invalid", "valid", "missing"]
    seen = summary(client, "sigs")
    assert (seen["invalidSignatures"], seen["missingSignatures"]) == (1, 1)


def test_no_backoff_turns_a_failing_receiver_into_a_retry_storm(client, runtime, alpha):
    subscribe(client, alpha, "down")
    client.put("/__admin/sinks/down", json={"status": 503})
    add(client, {"match": {"role": "callbacks"}, "effect": {"type": "noBackoff"}})
    publish(runtime, 1)
    runtime.settle()  # no simulated time passes, yet every attempt is made
    max_attempts = runtime.settings.callback_max_attempts
    assert summary(client, "down")["received"] == max_attempts
    [dead] = client.get("/__admin/outbox?status=failed").get_json()
    assert dead["attempts"] == max_attempts


def test_a_callback_rule_without_callback_effects_is_refused(client):
    refused = client.post(
        "/__admin/faults", json={"match": {"role": "callbacks"}, "effect": {"type": "reset"}}
    )
    assert refused.status_code == 422 and refused.get_json()["field"] == "effect.type"
    too_big = client.post(
        "/__admin/faults",
        json={"effect": {"type": "storm", "perSecond": 10000, "seconds": 3600}},
    )
    assert too_big.status_code == 422 and too_big.get_json()["field"] == "effect.seconds"


def test_rules_for_every_role_leave_the_sink_and_the_control_plane_alone(client, runtime, alpha):
    subscribe(client, alpha, "calm")
    add(client, {"effect": {"type": "status", "status": 503}})  # every vendor role
    publish(runtime, 2)
    runtime.settle()
    assert summary(client, "calm")["received"] == 2
    assert client.get("/__admin/faults").status_code == 200
    assert client.get(HUB.replace("/hub", "/productOrder"), headers=alpha).status_code == 503
