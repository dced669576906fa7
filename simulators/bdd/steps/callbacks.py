"""Event callbacks as a partner receives them, watched at the stack's built-in sink
(`/__sink/{name}`): count, order, signatures, duplicates; callback faults and storms."""

from __future__ import annotations

import json
from typing import Any

from ..catalogue import phrase
from ..world import StepFailed, World
from .stack import add_rule

HUBS = {
    "order": ("mvne", "/tmf-api/productOrderingManagement/v4/hub", "registerOrderListener"),
    "subscription": (
        "mvne",
        "/tmf-api/productInventoryManagement/v4/hub",
        "registerProductListener",
    ),
    "ticket": ("care", "/tmf-api/troubleTicket/v4/hub", "registerTicketListener"),
    "payment": ("payments", "/tmf-api/paymentManagement/v4/hub", "registerPaymentListener"),
}


def sink_url(world: World, name: str) -> str:
    return f"{world.target.stack_url}/__sink/{name}"


def subscribe(world: World, kind: str, callback: str) -> None:
    if kind not in HUBS:
        raise StepFailed(f"no {kind} events; the kinds are {', '.join(HUBS)}")
    role, path, operation = HUBS[kind]
    answer = world.send(role, "POST", path, operation=operation, json_body={"callback": callback})
    if answer.status == 201:
        world.remember("hub", answer.json())


@phrase(
    "given",
    'the partner subscribes to its {kind:w} events at the sink "{name:Q}"',
    role="callbacks",
    example='Given the partner subscribes to its order events at the sink "orders"',
    summary="a TMF hub (order, subscription, ticket or payment events) whose callback is "
    "the stack's sink; remembered as ${hub}",
)
def subscribe_sink(handoff: World, kind: str, name: str) -> None:
    handoff.target.require_control_plane()
    subscribe(handoff, kind, sink_url(handoff, name))
    handoff.expect(handoff.last, 201)  # type: ignore[arg-type]


@phrase(
    "when",
    'the partner subscribes to its {kind:w} events at "{url:Q}"',
    role="callbacks",
    example='When the partner subscribes to its order events at "http://169.254.169.254/latest"',
)
def subscribe_url(handoff: World, kind: str, url: str) -> None:
    subscribe(handoff, kind, handoff.expand(url))


@phrase(
    "given",
    'the sink "{name:Q}" answers {status:d} to the next {count:d} deliveries',
    role="callbacks",
    example='Given the sink "orders" answers 503 to the next 3 deliveries',
)
def sink_fails_n(handoff: World, name: str, status: int, count: int) -> None:
    handoff.admin("PUT", f"/sinks/{name}", {"status": status, "count": count})


@phrase(
    "given",
    'the sink "{name:Q}" answers {status:d}',
    role="callbacks",
    example='Given the sink "orders" answers 410',
)
def sink_fails(handoff: World, name: str, status: int) -> None:
    handoff.admin("PUT", f"/sinks/{name}", {"status": status})


def summary(world: World, name: str) -> dict[str, Any]:
    found: dict[str, Any] = world.admin("GET", f"/sinks/{name}")
    return found


def deliveries(world: World, name: str) -> list[dict[str, Any]]:
    found = world.admin_pages(f"/sinks/{name}/deliveries")
    return sorted(found, key=lambda item: item["id"])


@phrase(
    "then",
    'the sink "{name:Q}" received {count:d} deliveries',
    role="callbacks",
    example='Then the sink "orders" received 3 deliveries',
)
def received(handoff: World, name: str, count: int) -> None:
    found = summary(handoff, name)
    if found["received"] != count:
        raise StepFailed(f"the sink {name} received {found['received']} deliveries: {found}")


@phrase(
    "then",
    'the sink "{name:Q}" received {count:d} deliveries of {unique:d} events',
    role="callbacks",
    example='Then the sink "orders" received 202 deliveries of 3 events',
    summary="deliveries in all, and distinct webhook-ids among them",
)
def received_unique(handoff: World, name: str, count: int, unique: int) -> None:
    found = summary(handoff, name)
    if (found["received"], found["uniqueWebhookIds"]) != (count, unique):
        raise StepFailed(
            f"the sink {name} received {found['received']} deliveries of "
            f"{found['uniqueWebhookIds']} events"
        )


@phrase(
    "then",
    'the sink "{name:Q}" counted {count:d} duplicates',
    role="callbacks",
    example='Then the sink "orders" counted 2 duplicates',
)
def duplicates(handoff: World, name: str, count: int) -> None:
    found = summary(handoff, name)
    if found["duplicates"] != count:
        raise StepFailed(f"the sink {name} counted {found['duplicates']} duplicates")


@phrase(
    "then",
    'every delivery to the sink "{name:Q}" is signed validly',
    role="callbacks",
    example='Then every delivery to the sink "orders" is signed validly',
    summary="Standard Webhooks signatures checked with the subscription's secret",
)
def all_valid(handoff: World, name: str) -> None:
    verdicts = [item["signature"] for item in deliveries(handoff, name)]
    if not verdicts or set(verdicts) != {"valid"}:
        raise StepFailed(f"the sink {name}'s signature verdicts are {verdicts}")


@phrase(
    "then",
    'the signatures at the sink "{name:Q}" are "{verdicts:Q}"',
    role="callbacks",
    example='Then the signatures at the sink "orders" are "invalid, valid, valid"',
    summary="valid, invalid or missing, in the order the deliveries arrived",
)
def verdicts_are(handoff: World, name: str, verdicts: str) -> None:
    found = [item["signature"] for item in deliveries(handoff, name)]
    expected = [item.strip() for item in verdicts.split(",")]
    if found != expected:
        raise StepFailed(f"the sink {name}'s signature verdicts are {found}")


def order_states(items: list[dict[str, Any]]) -> list[str]:
    """The state (or status) of the resource each delivery carries."""
    states: list[str] = []
    for item in items:
        body = json.loads(item["body"])
        resource: dict[str, Any] = next(iter(body.get("event", {}).values()), {})
        states.append(str(resource.get("state") or resource.get("status")))
    return states


@phrase(
    "then",
    'the sink "{name:Q}" received the states "{states:Q}" in that order',
    role="callbacks",
    example='Then the sink "orders" received the states "acknowledged, inProgress, '
    'completed" in that order',
    summary="the resource's state in each delivery, in arrival order",
)
def states_in_order(handoff: World, name: str, states: str) -> None:
    found = order_states(deliveries(handoff, name))
    expected = [item.strip() for item in states.split(",")]
    if found != expected:
        raise StepFailed(f"the sink {name} received the states {found}")


@phrase(
    "then",
    'the last delivery to the sink "{name:Q}" carries the state "{state:Q}"',
    role="callbacks",
    example='Then the last delivery to the sink "orders" carries the state "acknowledged"',
    summary="what a receiver that keeps the last arrival believes",
)
def last_arrival(handoff: World, name: str, state: str) -> None:
    found = order_states(deliveries(handoff, name))
    if not found or found[-1] != state:
        raise StepFailed(f"the sink {name} received the states {found}")


@phrase(
    "then",
    'the newest event at the sink "{name:Q}" by event time carries the state "{state:Q}"',
    role="callbacks",
    example='Then the newest event at the sink "orders" by event time carries the state '
    '"completed"',
    summary="what a receiver that orders by eventTime, not arrival, believes",
)
def newest_by_time(handoff: World, name: str, state: str) -> None:
    items = deliveries(handoff, name)
    if not items:
        raise StepFailed(f"the sink {name} received nothing")
    newest = max(items, key=lambda item: json.loads(item["body"])["eventTime"])
    found = order_states([newest])[0]
    if found != state:
        raise StepFailed(f"the newest event at the sink {name} carries {found}")


@phrase(
    "then",
    'the sink "{name:Q}" received the states out of order',
    role="callbacks",
    example='Then the sink "orders" received the states out of order',
)
def out_of_order(handoff: World, name: str) -> None:
    items = deliveries(handoff, name)
    times = [json.loads(item["body"])["eventTime"] for item in items]
    if times == sorted(times):
        raise StepFailed(f"the sink {name} received its events in event-time order")


# --- the endpoint as the stack tracks it ------------------------------------------------------


def endpoint(world: World) -> dict[str, Any]:
    hub = world.recall("hub")
    found = world.admin_pages("/callbacks", {"partnerId": world.partner})
    for item in found:
        if item["hubId"] == hub["id"]:
            return dict(item)
    raise StepFailed(f"the stack tracks no callback endpoint {hub['id']}")


@phrase(
    "then",
    "the partner's callback endpoint is disabled",
    role="callbacks",
    example="Then the partner's callback endpoint is disabled",
)
def disabled(handoff: World) -> None:
    found = endpoint(handoff)
    if not found["disabled"]:
        raise StepFailed(f"the endpoint is not disabled: {found}")


@phrase(
    "then",
    "the partner's callback endpoint has {count:d} dead letters",
    role="callbacks",
    example="Then the partner's callback endpoint has 1 dead letters",
)
def dead_letters(handoff: World, count: int) -> None:
    found = endpoint(handoff)
    if found["deadLettered"] != count:
        raise StepFailed(f"the endpoint has {found['deadLettered']} dead letters: {found}")


@phrase(
    "then",
    "the partner's callback endpoint kept {count:d} deliveries unsent",
    role="callbacks",
    example="Then the partner's callback endpoint kept 2 deliveries unsent",
)
def skipped(handoff: World, count: int) -> None:
    found = endpoint(handoff)
    if found["skipped"] != count:
        raise StepFailed(f"the endpoint kept {found['skipped']} deliveries unsent: {found}")


@phrase(
    "when",
    "the partner's callback endpoint is redriven",
    role="callbacks",
    example="When the partner's callback endpoint is redriven",
    summary="enabled again, with every dead-lettered and skipped delivery queued again",
)
def redrive(handoff: World) -> None:
    hub = handoff.recall("hub")
    handoff.admin("POST", f"/callbacks/{hub['id']}/redrive")
    handoff.settle()


# --- callback faults ---------------------------------------------------------------------------


def callback_rule(world: World, effect: dict[str, Any], dosage: dict[str, Any] | None) -> None:
    rule: dict[str, Any] = {"match": {"role": "callbacks"}, "effect": effect}
    if dosage:
        rule["dosage"] = dosage
    add_rule(world, rule)


@phrase(
    "given",
    "every callback is sent {copies:d} more times",
    role="callbacks",
    example="Given every callback is sent 1 more times",
    summary="duplicates under the same webhook-id",
)
def duplicated(handoff: World, copies: int) -> None:
    callback_rule(handoff, {"type": "duplicate", "copies": copies}, None)


@phrase(
    "given",
    "the first callback storms {per_second:d} times a second for {seconds:d} seconds",
    role="callbacks",
    example="Given the first callback storms 50 times a second for 4 seconds",
)
def storm(handoff: World, per_second: int, seconds: int) -> None:
    callback_rule(
        handoff, {"type": "storm", "perSecond": per_second, "seconds": seconds}, {"firstN": 1}
    )


@phrase(
    "given",
    "the first callback is held back {seconds:d} seconds",
    role="callbacks",
    example="Given the first callback is held back 30 seconds",
    summary="later events overtake it",
)
def held_back(handoff: World, seconds: int) -> None:
    callback_rule(handoff, {"type": "outOfOrder", "seconds": seconds}, {"firstN": 1})


@phrase(
    "given",
    "the first callback is signed with a wrong signature",
    role="callbacks",
    example="Given the first callback is signed with a wrong signature",
)
def bad_signature(handoff: World) -> None:
    callback_rule(handoff, {"type": "badSignature"}, {"firstN": 1})


@phrase(
    "given",
    "one callback in {nth:d} is sent without a signature",
    role="callbacks",
    example="Given one callback in 3 is sent without a signature",
)
def missing_signature(handoff: World, nth: int) -> None:
    callback_rule(handoff, {"type": "missingSignature"}, {"everyNth": nth})


@phrase(
    "given",
    "failed callbacks are retried without backoff",
    role="callbacks",
    example="Given failed callbacks are retried without backoff",
)
def no_backoff(handoff: World) -> None:
    callback_rule(handoff, {"type": "noBackoff"}, None)


@phrase(
    "given",
    "the {count:d} earlier callbacks are replayed with the next one",
    role="callbacks",
    example="Given the 2 earlier callbacks are replayed with the next one",
)
def replayed(handoff: World, count: int) -> None:
    callback_rule(handoff, {"type": "replay", "count": count}, {"firstN": 1})
