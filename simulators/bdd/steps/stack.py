"""The stack itself: the simulated clock, fault rules and scenario packs, partners on the
control plane, and what the request journal saw."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from simulators.core.contract import read_yaml
from simulators.core.scenarios import SCENARIOS_DIR, apply_pack, find_pack

from ..catalogue import phrase
from ..target import ROLES
from ..world import StepFailed, World

T = TypeVar("T")

# Every capability of an MVNE agreement, for a partner onboarded by a step.
ALL_CAPABILITIES = [
    "SUBMIT_ORDER",
    "ACTIVATE_SIM",
    "MANAGE_SUBSCRIPTION",
    "TOP_UP",
    "QUERY_BALANCE",
    "QUERY_USAGE",
    "QUERY_INVENTORY",
    "VIEW_CATALOG",
    "MANAGE_EVENTS",
]


# --- the clock ---------------------------------------------------------------------------


@phrase(
    "given/when",
    "{amount:d} {unit:Unit} pass",
    role="clock",
    example="When 16 days pass",
    summary="the simulated clock moves on; every step and delivery due on the way runs "
    "at its moment",
)
def time_passes(handoff: World, amount: int, unit: float) -> None:
    handoff.advance(amount * unit)


@phrase("given/when", "{amount:d} {unit:Unit} passes", role="clock", example="When 1 hour passes")
def time_passes_singular(handoff: World, amount: int, unit: float) -> None:
    handoff.advance(amount * unit)


@phrase(
    "given/when",
    "everything due has run",
    role="clock",
    example="When everything due has run",
    summary="run the lifecycle steps and deliveries due now, without moving the clock",
)
def everything_due(handoff: World) -> None:
    handoff.settle()


@phrase(
    "given",
    'the clock is at "{instant:Q}"',
    role="clock",
    example='Given the clock is at "2026-03-31T23:00:00Z"',
)
def clock_at(handoff: World, instant: str) -> None:
    handoff.target.require_control_plane()
    handoff.set_clock(handoff.expand(instant))


# --- faults and scenario packs -----------------------------------------------------------


def add_rule(world: World, rule: dict[str, Any]) -> dict[str, Any]:
    role = rule.get("match", {}).get("role")
    roles = tuple(role if isinstance(role, list) else [role]) if role else ROLES
    answer: dict[str, Any] = world.admin(
        "POST", "/faults", rule, roles=tuple(r for r in roles if r in ROLES)
    )
    return answer


@phrase(
    "given",
    'the {role:Role} answers "{operation:Q}" with {status:d} for the next {count:d} calls',
    role="faults",
    example='Given the MNO answers "createServiceOrder" with 503 for the next 2 calls',
)
def answers_status_n(handoff: World, role: str, operation: str, status: int, count: int) -> None:
    add_rule(
        handoff,
        {
            "match": {"role": role, "operation": operation},
            "effect": {"type": "status", "status": status},
            "dosage": {"firstN": count},
        },
    )


@phrase(
    "given",
    'the {role:Role} answers "{operation:Q}" with {status:d}',
    role="faults",
    example='Given the MVNE answers "getSubscriptionDiagnostics" with 503',
)
def answers_status(handoff: World, role: str, operation: str, status: int) -> None:
    add_rule(
        handoff,
        {
            "match": {"role": role, "operation": operation},
            "effect": {"type": "status", "status": status},
        },
    )


@phrase(
    "given",
    'the {role:Role} times out on "{operation:Q}" for the next {count:d} calls',
    role="faults",
    example='Given the MNO times out on "createServiceOrder" for the next 2 calls',
    summary="the request is never processed and never answered",
)
def times_out(handoff: World, role: str, operation: str, count: int) -> None:
    add_rule(
        handoff,
        {
            "match": {"role": role, "operation": operation},
            "effect": {"type": "timeout", "holdSeconds": 1},
            "dosage": {"firstN": count},
        },
    )


@phrase(
    "given",
    'the {role:Role} processes the next "{operation:Q}" but its answer is lost',
    role="faults",
    example='Given the MVNE processes the next "createProductOrder" but its answer is lost',
    summary="the request takes effect; the connection drops before the answer",
)
def answer_lost(handoff: World, role: str, operation: str) -> None:
    add_rule(
        handoff,
        {
            "match": {"role": role, "operation": operation},
            "effect": {"type": "timeout", "stage": "after", "holdSeconds": 1},
            "dosage": {"firstN": 1},
        },
    )


@phrase(
    "given",
    'the data fault "{fault:Q}" is switched on for the {role:Role}',
    role="faults",
    example='Given the data fault "SUSPENSION_NOT_SENT" is switched on for the billing platform',
)
def data_fault(handoff: World, fault: str, role: str) -> None:
    add_rule(handoff, {"match": {"role": role}, "effect": {"type": "data", "fault": fault}})


@phrase(
    "given",
    'the data fault "{fault:Q}" is switched on for "{operation:Q}" at the {role:Role}',
    role="faults",
    example='Given the data fault "ORDER_STUCK" is switched on for "createServiceOrder" at the MNO',
)
def data_fault_operation(handoff: World, fault: str, operation: str, role: str) -> None:
    add_rule(
        handoff,
        {
            "match": {"role": role, "operation": operation},
            "effect": {"type": "data", "fault": fault},
        },
    )


@phrase(
    "given",
    "the fault rule",
    role="faults",
    example="Given the fault rule (a JSON doc string: match, effect, dosage as "
    "POST /__admin/faults takes it)",
)
def fault_rule(handoff: World, docstring: str) -> None:
    add_rule(handoff, json.loads(handoff.expand(docstring)))


@phrase(
    "given",
    'the scenario "{name:Q}" is applied',
    role="faults",
    example='Given the scenario "tax-jurisdiction-gap" is applied',
)
def scenario_applied(handoff: World, name: str) -> None:
    path = SCENARIOS_DIR / f"{name}.yaml"
    roles: tuple[str, ...] = ROLES
    if path.is_file():
        pack = read_yaml(path.read_text())
        named = {((rule.get("match") or {}).get("role")) for rule in pack.get("faults") or []}
        if None not in named:
            roles = tuple(role for role in named if role in ROLES)
    runtime = handoff.target.runtime
    if runtime is None:
        handoff.admin("POST", f"/scenarios/{name}", roles=roles)
        return
    # In-process the pack is applied here, as `/__admin` would: its settling may send
    # requests from worker threads (see World.settle).
    handoff.target.require_control_plane(*roles)
    apply_pack(runtime, find_pack(name, runtime.role_operations))
    runtime.settle()


@phrase(
    "given",
    "every fault is switched off",
    role="faults",
    example="Given every fault is switched off",
)
def faults_off(handoff: World) -> None:
    handoff.admin("DELETE", "/faults")


# --- partners on the control plane -------------------------------------------------------


@phrase(
    "given",
    'the partner "{partner:Q}"',
    role="tenancy",
    example='Given the partner "mvno-bravo"',
    summary="the MVNO the following steps act for (mvno-alpha unless said)",
)
def the_partner(handoff: World, partner: str) -> None:
    handoff.partner = handoff.expand(partner)


@phrase(
    "given",
    'the partner "{partner:Q}" is onboarded for "{offerings:Q}" in "{markets:Q}"',
    role="tenancy",
    example='Given the partner "mvno-charlie" is onboarded for "po-us-talk, po-us-data" in "US"',
    summary="a new MVNO with every capability; the following steps act for it",
)
def onboarded(handoff: World, partner: str, offerings: str, markets: str) -> None:
    answer = handoff.admin(
        "POST",
        "/partners",
        {
            "id": partner,
            "name": partner.replace("-", " ").title(),
            "agreement": {
                "offerings": _list(offerings),
                "markets": _list(markets),
                "capabilities": ALL_CAPABILITIES,
            },
        },
        roles=("mvne",),
    )
    handoff.keys[partner] = answer["apiKey"]
    handoff.partner = partner


@phrase(
    "given",
    'the capability "{capability:Q}" of "{partner:Q}" is {status:Q}',
    role="tenancy",
    example='Given the capability "SUBMIT_ORDER" of "mvno-alpha" is suspended',
)
def capability(handoff: World, capability: str, partner: str, status: str) -> None:
    handoff.admin(
        "PUT", f"/partners/{partner}/capabilities/{capability}", {"status": status}, roles=("mvne",)
    )


@phrase(
    "when",
    'the capability "{capability:Q}" of "{partner:Q}" is suspended',
    role="tenancy",
    example='When the capability "SUBMIT_ORDER" of "mvno-alpha" is suspended',
)
def capability_suspended_now(handoff: World, capability: str, partner: str) -> None:
    handoff.admin(
        "PUT",
        f"/partners/{partner}/capabilities/{capability}",
        {"status": "suspended"},
        roles=("mvne",),
    )


@phrase(
    "when",
    'the partner "{partner:Q}" is terminated',
    role="tenancy",
    example='When the partner "mvno-alpha" is terminated',
)
def terminated(handoff: World, partner: str) -> None:
    handoff.admin(
        "POST", f"/partners/{partner}/terminate", roles=("mvne",), operation="terminatePartner"
    )


# --- the journal -------------------------------------------------------------------------


def journal(world: World, **params: Any) -> list[dict[str, Any]]:
    world.target.require_control_plane()
    return world.admin_pages("/journal", params)


def settled_journal(world: World, done: Any, **params: Any) -> list[dict[str, Any]]:
    """The journal once `done(entries)` holds, or as it stands after a second: a live
    stack's workers each flush their journal buffer every quarter second."""
    entries = journal(world, **params)
    deadline = time.monotonic() + (0 if world.target.runtime is not None else 1.0)
    while not done(entries) and time.monotonic() < deadline:
        time.sleep(0.1)
        entries = journal(world, **params)
    return entries


def settled_read(world: World, read: Callable[[], T], done: Callable[[T], bool]) -> T:
    """What `read()` gives once `done` holds of it, or as it stands after two seconds: a
    live stack's dispatcher may still be running the steps a clock move made due."""
    found = read()
    deadline = time.monotonic() + (0 if world.target.runtime is not None else 2.0)
    while not done(found) and time.monotonic() < deadline:
        time.sleep(0.1)
        found = read()
    return found


@phrase(
    "then",
    'the {role:Role} received "{operation:Q}" {count:d} times',
    role="journal",
    example='Then the MNO received "createServiceOrder" 8 times',
    summary="requests the role served for that operation, whatever it answered",
)
def received_times(handoff: World, role: str, operation: str, count: int) -> None:
    handoff.target.require_control_plane(role)

    def served() -> list[dict[str, Any]]:
        entries = journal(handoff, role=role, direction="inbound")
        return [entry for entry in entries if entry["operationId"] == operation]

    # A live stack's other workers journal what they served within a fraction of a second.
    found = settled_read(handoff, served, lambda entries: len(entries) >= count)
    if len(found) != count:
        statuses = [entry["status"] for entry in found]
        raise StepFailed(f"the {role} received {operation} {len(found)} times ({statuses})")


@phrase(
    "then",
    'the correlation ID "{correlation:Q}" reaches the {role:Role}',
    role="journal",
    example='Then the correlation ID "shop-0001" reaches the MNO',
)
def correlation_reaches(handoff: World, correlation: str, role: str) -> None:
    handoff.target.require_control_plane(role)
    entries = settled_journal(handoff, bool, correlationId=handoff.expand(correlation), role=role)
    if not entries:
        raise StepFailed(f"the {role}'s journal has nothing under {correlation!r}")


@phrase(
    "then",
    'the journal holds no "{text:Q}"',
    role="journal",
    example='Then the journal holds no "4111111111111111"',
    summary="no request, answer or URL the stack recorded contains the text",
)
def journal_holds_no(handoff: World, text: str) -> None:
    value = handoff.expand(text)
    for entry in journal(handoff):
        if value in json.dumps(entry):
            raise StepFailed(f"the journal keeps {value!r}: {json.dumps(entry)[:400]}")


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
