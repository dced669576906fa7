"""Wholesale settlement between the MNO and an MVNO: the ledger, periods and invoices,
usage disputes, manual adjustments, the activation suspension and reconciliation.

The MVNO calls the wholesale API as `<partner>-wholesale`; the MNO's settlement staff call
the operations API as `mno-settlement-analyst` (maker) or `mno-settlement-approver`
(checker).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from simulators.core.clock import isoformat, parse_iso
from simulators.core.tenancy import CACHE_TTL_S

from ..catalogue import phrase
from ..world import Exchange, StepFailed, World

ROLE = "settlement"
MNO = "mno"
WHOLESALE = "/v1/wholesale"
OPERATIONS = "/v1/settlement"
STAFF = ("analyst", "approver")
DECISIONS = {"accepts": "accept", "rejects": "reject", "approves": "approve"}


def wholesale(world: World, method: str, path: str, operation: str, **kwargs: Any) -> Exchange:
    """A call of the MVNO on the MNO's wholesale API."""
    caller = f"{world.partner}-wholesale"
    return world.send(MNO, method, WHOLESALE + path, caller=caller, operation=operation, **kwargs)


def staff(
    world: World, person: str, method: str, path: str, operation: str, **kwargs: Any
) -> Exchange:
    """A call of one of the MNO's settlement staff on the operations API."""
    if person not in STAFF:
        raise StepFailed(f"the settlement staff are the {' and the '.join(STAFF)}, not {person!r}")
    caller = f"mno-settlement-{person}"
    return world.send(MNO, method, OPERATIONS + path, caller=caller, operation=operation, **kwargs)


def ledger(world: World, kind: str) -> list[dict[str, Any]]:
    answer = wholesale(
        world, "GET", "/ledger", "listLedgerEntries", params={"kind": kind, "limit": 1000}
    )
    entries: list[dict[str, Any]] = world.expect(answer, 200)
    return entries


def simulated_now(world: World) -> float:
    """The stack's simulated time."""
    runtime = world.target.runtime
    if runtime is not None:
        return float(runtime.clock.now())
    return parse_iso(world.admin("GET", "/clock")["now"])


# --- the ledger -------------------------------------------------------------------------------


@phrase(
    "then",
    'the partner\'s wholesale ledger holds {count:d} "{kind:Q}" entries totalling '
    "{amount:g} {currency:w}",
    role=ROLE,
    example='Then the partner\'s wholesale ledger holds 1 "usage" entries totalling 1.00 GBP',
    summary="kind: activationFee, monthlyFee, usage, revenueShare, slaCredit, adjustment; "
    "reversals and corrections count as entries of their kind",
)
def ledger_holds(handoff: World, count: int, kind: str, amount: float, currency: str) -> None:
    entries = ledger(handoff, kind)
    total = sum((Decimal(entry["amount"]["amount"]) for entry in entries), Decimal(0))
    units = {entry["amount"]["units"] for entry in entries} or {currency}
    if len(entries) != count or total != Decimal(str(amount)) or units != {currency}:
        raise StepFailed(
            f"the ledger holds {len(entries)} {kind} entries totalling {total} {units}: "
            f"{[(e['entryType'], e['amount']['amount']) for e in entries]}"
        )


@phrase(
    "then",
    'the partner\'s latest "{kind:Q}" ledger entry has {field:w} "{value:Q}"',
    role=ROLE,
    example='Then the partner\'s latest "usage" ledger entry has servicePeriod "2026-03"',
    summary="a top-level member of the entry: periodId, servicePeriod, entryType, source, ...",
)
def latest_entry(handoff: World, kind: str, field: str, value: str) -> None:
    entries = ledger(handoff, kind)
    if not entries:
        raise StepFailed(f"the ledger holds no {kind} entry")
    found = entries[-1].get(field)
    if str(found) != handoff.expand(value):
        raise StepFailed(f"the latest {kind} entry's {field} is {found!r}: {entries[-1]}")


@phrase(
    "then",
    "the partner's latest wholesale usage was rated under agreement version {version:d} "
    "at {amount:N} {currency:w}",
    role=ROLE,
    example="Then the partner's latest wholesale usage was rated under agreement version 1 "
    "at 0.2 GBP",
    summary="the latest usage row by usage date, as the MVNO's invoice check reads it",
)
def usage_rated(handoff: World, version: int, amount: float, currency: str) -> None:
    answer = wholesale(handoff, "GET", "/usage", "listWholesaleUsage", params={"limit": 1000})
    rows = handoff.expect(answer, 200)
    if not rows:
        raise StepFailed("the partner has no wholesale usage")
    rated = rows[-1]["ratedProductUsage"][0]
    found = (
        rated["agreement"]["version"],
        Decimal(rated["taxExcludedRatingAmount"]["amount"]),
        rated["taxExcludedRatingAmount"]["units"],
    )
    if found != (version, Decimal(str(amount)), currency):
        raise StepFailed(f"the latest usage row was rated {found}: {rows[-1]}")


# --- disputes ---------------------------------------------------------------------------------


@phrase(
    "given/when",
    "the partner disputes its latest wholesale usage claiming {quantity:d}",
    role=ROLE,
    example="When the partner disputes its latest wholesale usage claiming 100",
    summary="the quantity that should have been charged; remembered as ${dispute}",
)
def disputes_usage(handoff: World, quantity: int) -> None:
    answer = wholesale(handoff, "GET", "/usage", "listWholesaleUsage", params={"limit": 1000})
    rows = handoff.expect(answer, 200)
    if not rows:
        raise StepFailed("the partner has no wholesale usage to dispute")
    body = {
        "reason": "Our mediation counted less",
        "usage": [{"id": rows[-1]["id"], "claimedQuantity": quantity}],
    }
    sent = wholesale(handoff, "POST", "/dispute", "createUsageDispute", json_body=body)
    if sent.status == 201:
        handoff.remember("dispute", sent.json())


@phrase(
    "when",
    "the settlement {person:w} {decision:w} the dispute",
    role=ROLE,
    example="When the settlement analyst accepts the dispute",
    summary="accepts or rejects; accepting reverses each row and posts the claimed charge",
)
def resolves(handoff: World, person: str, decision: str) -> None:
    dispute = handoff.recall("dispute")
    staff(
        handoff,
        person,
        "POST",
        f"/dispute/{dispute['id']}/resolution",
        "resolveDispute",
        json_body={"decision": _decision(decision, ("accepts", "rejects"))},
    )


@phrase(
    "when",
    "the partner reads the dispute",
    role=ROLE,
    example="When the partner reads the dispute",
)
def reads_dispute(handoff: World) -> None:
    dispute = handoff.recall("dispute")
    wholesale(handoff, "GET", f"/dispute/{dispute['id']}", "getUsageDispute")


# --- periods, invoices, payments ----------------------------------------------------------------


@phrase(
    "given/when",
    'the settlement {person:w} closes the period "{period:Q}"',
    role=ROLE,
    example='When the settlement analyst closes the period "2026-03"',
    summary="the scenario's partner; the answer (period, statement, invoice) is the response, "
    "the invoice remembered as ${invoice}",
)
def closes(handoff: World, person: str, period: str) -> None:
    answer = staff(
        handoff,
        person,
        "POST",
        f"/period/{handoff.partner}/{handoff.expand(period)}/close",
        "closeSettlementPeriod",
    )
    if answer.status == 200:
        handoff.remember("invoice", answer.json()["invoice"])


@phrase(
    "when",
    "the settlement {person:w} records the payment of the invoice",
    role=ROLE,
    example="When the settlement analyst records the payment of the invoice",
    summary="the whole amount due",
)
def records_payment(handoff: World, person: str) -> None:
    invoice = handoff.recall("invoice")
    body = {
        "invoiceId": invoice["id"],
        "amount": invoice["amountDue"],
        "reference": handoff.unique("remittance"),
    }
    staff(handoff, person, "POST", "/payment", "recordWholesalePayment", json_body=body)


@phrase(
    "then",
    'the partner\'s new activations are "{state:Q}"',
    role=ROLE,
    example='Then the partner\'s new activations are "suspended"',
    summary="granted or suspended, as the wholesale API reports the ACTIVATE_SIM capability; "
    "the report (each suspension and its decisions) is the response",
)
def activations(handoff: World, state: str) -> None:
    answer = wholesale(handoff, "GET", "/activationSuspension", "getActivationSuspension")
    found = handoff.expect(answer, 200)
    if found["state"] != state:
        raise StepFailed(f"the partner's new activations are {found['state']}: {found}")
    if handoff.target.runtime is None:
        # A live stack's other workers see a capability change once their key cache expires.
        time.sleep(CACHE_TTL_S)


# --- manual adjustments (maker-checker) ---------------------------------------------------------


@phrase(
    "when",
    "the settlement {person:w} proposes an adjustment of {amount:g} {currency:w}",
    role=ROLE,
    example="When the settlement analyst proposes an adjustment of -5.00 GBP",
    summary="negative: a credit to the partner; remembered as ${adjustment}",
)
def proposes(handoff: World, person: str, amount: float, currency: str) -> None:
    body = {
        "partnerId": handoff.partner,
        "amount": {"amount": f"{amount:.2f}", "units": currency},
        "reason": "Goodwill credit for a provisioning incident",
        "evidenceRef": handoff.unique("ticket"),
    }
    answer = staff(handoff, person, "POST", "/adjustment", "proposeAdjustment", json_body=body)
    if answer.status == 201:
        handoff.remember("adjustment", answer.json())


@phrase(
    "when",
    "the settlement {person:w} {decision:w} the adjustment",
    role=ROLE,
    example="When the settlement approver approves the adjustment",
    summary="approves or rejects; the checker must be another person than the maker",
)
def decides(handoff: World, person: str, decision: str) -> None:
    adjustment = handoff.recall("adjustment")
    staff(
        handoff,
        person,
        "POST",
        f"/adjustment/{adjustment['id']}/decision",
        "decideAdjustment",
        json_body={"decision": _decision(decision, ("approves", "rejects"))},
    )


# --- agreements -------------------------------------------------------------------------------


@phrase(
    "given/when",
    'the settlement {person:w} publishes an agreement version with data at "{price:Q}" per MB '
    "from {amount:d} {unit:Unit} {when:w}",
    role=ROLE,
    example='Given the settlement analyst publishes an agreement version with data at "0.0010" '
    "per MB from 1 hour on",
    summary='the latest terms with one data tier; "on" from now, "ago" in the past (refused)',
)
def publishes_version(
    handoff: World, person: str, price: str, amount: int, unit: float, when: str
) -> None:
    if when not in ("on", "ago"):
        raise StepFailed(f'say "from 1 hour on" or "from 1 hour ago", not {when!r}')
    versions = handoff.expect(
        wholesale(handoff, "GET", "/agreement", "listWholesaleAgreements", params={"limit": 100}),
        200,
    )
    terms = dict(versions[-1]["terms"])
    data = dict(terms["usageRates"]["data"])
    data["tiers"] = [{"upTo": None, "price": price}]
    terms["usageRates"] = {**terms["usageRates"], "data": data}
    offset = amount * unit * (1 if when == "on" else -1)
    body = {
        "partnerId": handoff.partner,
        "effectiveFrom": isoformat(simulated_now(handoff) + offset),
        "terms": terms,
    }
    staff(handoff, person, "POST", "/agreement", "createAgreementVersion", json_body=body)


# --- reconciliation -----------------------------------------------------------------------------


@phrase(
    "when",
    'the partner reconciles its "{view:Q}" view',
    role=ROLE,
    example='When the partner reconciles its "usage" view',
    summary="order, service, resource, usage, settlement or sla; the report is the response",
)
def reconciles(handoff: World, view: str) -> None:
    wholesale(handoff, "POST", "/reconciliation", "createReconciliation", json_body={"type": view})


def _decision(word: str, allowed: tuple[str, ...]) -> str:
    if word not in allowed:
        raise StepFailed(f"say {' or '.join(allowed)}, not {word!r}")
    return DECISIONS.get(word, word.removesuffix("s"))
