"""The billing vendor as an MVNO uses it: accounts, bill runs with tax, disputes, payments,
the dunning ladder that suspends and restores at the MVNE, and its reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.core.clock import parse_iso

from ..catalogue import phrase
from ..world import StepFailed, World
from .tax import place

BILLING = "billing"
ACCOUNTS = "/tmf-api/accountManagement/v4/billingAccount"
BILLS = "/tmf-api/customerBillManagement/v4/customerBill"
SETTINGS = "/v1/settings"
DISPUTES = "/v1/dispute"
PAYMENTS = "/v1/payment"
# A ladder a scenario can walk in days: a step a day, disconnection after a month.
SHORT_LADDER = {
    "retry": 1,
    "reminder": 2,
    "formalNotice": 3,
    "restriction": 4,
    "suspension": 5,
    "disconnection": 30,
    "collections": 40,
}


def read_account(world: World) -> dict[str, Any]:
    account = world.recall("account")
    answer = world.send(
        BILLING, "GET", f"{ACCOUNTS}/{account['id']}", operation="getBillingAccount"
    )
    found: dict[str, Any] = world.expect(answer, 200)
    return world.remember("account", found)


def bills(world: World) -> list[dict[str, Any]]:
    account = world.recall("account")
    answer = world.send(
        BILLING,
        "GET",
        BILLS,
        operation="listCustomerBills",
        params={"billingAccount.id": account["id"]},
    )
    found: list[dict[str, Any]] = world.expect(answer, 200)
    return sorted(found, key=lambda bill: bill["billDate"])


def read_bill(world: World) -> dict[str, Any]:
    bill = world.recall("bill")
    answer = world.send(BILLING, "GET", f"{BILLS}/{bill['id']}", operation="getCustomerBill")
    found: dict[str, Any] = world.expect(answer, 200)
    return world.remember("bill", found)


def open_account(world: World, address: dict[str, Any], rating: str) -> None:
    product = world.recall("subscription")
    body = {
        "name": "Pat Doe",
        "product": {"id": product["id"]},
        "ratingType": rating,
        "currency": "USD" if address.get("country") == "US" else "EUR",
        "placeOfPrimaryUse": address,
        "billCycleDay": 1,
    }
    answer = world.send(BILLING, "POST", ACCOUNTS, operation="createBillingAccount", json_body=body)
    world.remember("account", world.expect(answer, 201))
    world.settle()
    read_account(world)


@phrase(
    "given",
    'the subscription has a {rating:w} billing account in "{where:Q}"',
    role=BILLING,
    example='Given the subscription has a postpaid billing account in "Springfield, IL"',
    summary="opened at billing, confirmed by the MVNE; bill cycle day 1; remembered as ${account}",
)
def billing_account(handoff: World, rating: str, where: str) -> None:
    open_account(handoff, place(where), rating)


@phrase(
    "then",
    'the billing account is "{state:Q}"',
    role=BILLING,
    example='Then the billing account is "active"',
)
def account_state(handoff: World, state: str) -> None:
    account = read_account(handoff)
    if account["state"] != state:
        raise StepFailed(f"the account is {account['state']} ({account.get('stateReason')})")


@phrase(
    "given",
    "the partner's bills are due on issue and dunning takes a step a day",
    role=BILLING,
    example="Given the partner's bills are due on issue and dunning takes a step a day",
    summary="retry day 1, reminder 2, formal notice 3, restriction 4, suspension 5, "
    "disconnection 30, collections 40",
)
def short_ladder(handoff: World) -> None:
    settings = handoff.expect(
        handoff.send(BILLING, "GET", SETTINGS, operation="getBillingSettings"), 200
    )
    settings.update(paymentTermDays=0, dunningLadder=SHORT_LADDER)
    handoff.expect(
        handoff.send(
            BILLING, "PUT", SETTINGS, operation="updateBillingSettings", json_body=settings
        ),
        200,
    )


@phrase(
    "given",
    'the partner\'s responsibility matrix gives "{category:Q}" disputes to "{owner:Q}"',
    role=BILLING,
    example='Given the partner\'s responsibility matrix gives "tax" disputes to "billingVendor"',
)
def matrix(handoff: World, category: str, owner: str) -> None:
    settings = handoff.expect(
        handoff.send(BILLING, "GET", SETTINGS, operation="getBillingSettings"), 200
    )
    settings["disputeResponsibility"][category] = owner
    handoff.expect(
        handoff.send(
            BILLING, "PUT", SETTINGS, operation="updateBillingSettings", json_body=settings
        ),
        200,
    )


@phrase(
    "given/when",
    "the bill run of the period has run",
    role=BILLING,
    example="When the bill run of the period has run",
    summary="the clock reaches the account's next cycle day; the run pulls usage from "
    "the MVNE and tax from the tax engine; the newest bill is remembered as ${bill}",
)
def bill_run(handoff: World) -> None:
    account = handoff.recall("account")
    now = parse_iso(handoff.admin("GET", "/clock")["now"])
    handoff.advance(_next_cycle(now, int(account["billCycleDay"])) - now + 60)
    issued = bills(handoff)
    if not issued:
        raise StepFailed(f"the bill run issued no bill for {account['id']}: {_runs(handoff)}")
    handoff.remember("bill", issued[-1])
    read_bill(handoff)


@phrase("then", 'the bill is "{state:Q}"', role=BILLING, example='Then the bill is "sent"')
def bill_state(handoff: World, state: str) -> None:
    bill = read_bill(handoff)
    if bill["state"] != state:
        raise StepFailed(f"the bill is {bill['state']} ({bill.get('stateReason')}), not {state}")


@phrase(
    "then",
    'the bill is "{state:Q}" with reason "{reason:Q}"',
    role=BILLING,
    example='Then the bill is "onHold" with reason "TAX_LEVEL_MISSING"',
)
def bill_state_reason(handoff: World, state: str, reason: str) -> None:
    bill = read_bill(handoff)
    if (bill["state"], bill.get("stateReason")) != (state, reason):
        raise StepFailed(f"the bill is {bill['state']} ({bill.get('stateReason')})")


@phrase(
    "then",
    'the bill has tax items for "{levels:Q}"',
    role=BILLING,
    example='Then the bill has tax items for "federal, state, county, city, district, e911"',
    summary="exactly these taxCategory levels",
)
def bill_tax_items(handoff: World, levels: str) -> None:
    bill = read_bill(handoff)
    found = {item["taxCategory"] for item in bill.get("taxItem", [])}
    expected = {level.strip() for level in levels.split(",") if level.strip()}
    if found != expected:
        raise StepFailed(f"the bill's tax items are {sorted(found)}, not {sorted(expected)}")


@phrase(
    "then",
    'the bill run could not bill the account for "{code:Q}"',
    role=BILLING,
    example='Then the bill run could not bill the account for "USAGE_UNAVAILABLE"',
)
def run_failure(handoff: World, code: str) -> None:
    account = handoff.recall("account")
    failures = [
        (f.get("billingAccount", {}).get("id"), f.get("code"))
        for run in _runs(handoff)
        for f in run.get("failures", [])
    ]
    if (account["id"], code) not in failures:
        raise StepFailed(f"the bill runs' failures are {failures}")


@phrase(
    "given/when",
    "the bill run is due",
    role=BILLING,
    example="When the bill run is due",
    summary="the clock reaches the account's next cycle day (no bill is expected)",
)
def bill_run_due(handoff: World) -> None:
    account = handoff.recall("account")
    now = parse_iso(handoff.admin("GET", "/clock")["now"])
    handoff.advance(_next_cycle(now, int(account["billCycleDay"])) - now + 60)


# --- payments recorded at billing, and dunning -----------------------------------------------


def pay(world: World, amount: float, reference: str) -> None:
    bill = world.recall("bill")
    body = {
        "customerBill": {"id": bill["id"]},
        "amount": {"amount": amount, "units": bill["amountDue"]["units"]},
        "reference": world.expand(reference),
    }
    world.send(BILLING, "POST", PAYMENTS, operation="createPayment", json_body=body)


@phrase(
    "given/when",
    'the bill is paid in full with the reference "{reference:Q}"',
    role=BILLING,
    example='When the bill is paid in full with the reference "card-0001"',
)
def paid_in_full(handoff: World, reference: str) -> None:
    bill = read_bill(handoff)
    pay(handoff, bill["remainingAmount"]["amount"], reference)


@phrase(
    "given/when",
    'the bill is paid {amount:N} with the reference "{reference:Q}"',
    role=BILLING,
    example='When the bill is paid 10.25 with the reference "card-0001"',
)
def paid_part(handoff: World, amount: float, reference: str) -> None:
    pay(handoff, amount, reference)


@phrase(
    "then", "the bill has {count:d} payment", role=BILLING, example="Then the bill has 1 payment"
)
def bill_payments(handoff: World, count: int) -> None:
    bill = handoff.recall("bill")
    answer = handoff.send(
        BILLING, "GET", PAYMENTS, operation="listPayments", params={"customerBill.id": bill["id"]}
    )
    found = handoff.expect(answer, 200)
    if len(found) != count:
        raise StepFailed(f"the bill has {len(found)} payments, not {count}")


@phrase(
    "then",
    'the last dunning action is "{step:Q}" with the MVNE order "{order:Q}"',
    role=BILLING,
    example='Then the last dunning action is "restriction" with the MVNE order "suspendSent"',
)
def last_dunning(handoff: World, step: str, order: str) -> None:
    account = handoff.recall("account")
    answer = handoff.send(
        BILLING,
        "GET",
        "/v1/dunningAction",
        operation="listDunningActions",
        params={"billingAccount.id": account["id"]},
    )
    actions = handoff.expect(answer, 200)
    found = (actions[-1]["step"], actions[-1]["mvneOrder"]) if actions else None
    if found != (step, order):
        raise StepFailed(
            f"the dunning actions are {[(a['step'], a['mvneOrder']) for a in actions]}"
        )


@phrase(
    "then",
    'the billing account is in dunning stage "{stage:Q}" with service "{service:Q}"',
    role=BILLING,
    example='Then the billing account is in dunning stage "suspension" with service "suspended"',
)
def dunning_stage(handoff: World, stage: str, service: str) -> None:
    account = read_account(handoff)
    found = (account.get("dunningStage"), account.get("serviceStatus"))
    if found != (stage, service):
        raise StepFailed(f"the account is in dunning stage {found[0]} with service {found[1]}")


@phrase(
    "then",
    'billing\'s reconciliation finds "{kind:Q}" for the account',
    role=BILLING,
    example='Then billing\'s reconciliation finds "RESTORE_NOT_APPLIED" for the account',
)
def billing_break(handoff: World, kind: str) -> None:
    account = handoff.recall("account")
    breaks = _breaks(handoff)
    if (account["id"], kind) not in breaks:
        raise StepFailed(f"billing's reconciliation finds {breaks}")


@phrase(
    "then",
    "billing's reconciliation finds no break",
    role=BILLING,
    example="Then billing's reconciliation finds no break",
)
def billing_clean(handoff: World) -> None:
    breaks = _breaks(handoff)
    if breaks:
        raise StepFailed(f"billing's reconciliation finds {breaks}")


# --- disputes ------------------------------------------------------------------------------


@phrase(
    "when",
    'the customer disputes line {line:d} of the bill as "{category:Q}"',
    role=BILLING,
    example='When the customer disputes line 2 of the bill as "usage"',
)
def dispute(handoff: World, line: int, category: str) -> None:
    bill = handoff.recall("bill")
    body = {
        "customerBill": {"id": bill["id"]},
        "billLineId": str(line),
        "category": category,
        "reason": "I never made these calls",
        "raisedBy": "customer",
    }
    answer = handoff.send(BILLING, "POST", DISPUTES, operation="createDispute", json_body=body)
    if answer.status == 201:
        handoff.remember("dispute", answer.json())


def read_dispute(world: World) -> dict[str, Any]:
    found = world.recall("dispute")
    answer = world.send(BILLING, "GET", f"{DISPUTES}/{found['id']}", operation="getDispute")
    result: dict[str, Any] = world.expect(answer, 200)
    return world.remember("dispute", result)


@phrase(
    "then",
    'the dispute is owned by "{owner:Q}"',
    role=BILLING,
    example='Then the dispute is owned by "mvne"',
)
def dispute_owner(handoff: World, owner: str) -> None:
    found = read_dispute(handoff)
    if (found["owner"], found["unowned"]) != (owner, False):
        raise StepFailed(f"the dispute's owner is {found['owner']} (unowned {found['unowned']})")


@phrase(
    "then",
    "the dispute has no owner and is flagged unowned",
    role=BILLING,
    example="Then the dispute has no owner and is flagged unowned",
)
def dispute_unowned(handoff: World) -> None:
    found = read_dispute(handoff)
    listed = handoff.expect(
        handoff.send(
            BILLING, "GET", DISPUTES, operation="listDisputes", params={"unowned": "true"}
        ),
        200,
    )
    if found["owner"] is not None or found["id"] not in [item["id"] for item in listed]:
        raise StepFailed(f"the dispute is owned by {found['owner']!r} or not flagged")


@phrase(
    "then",
    "the dispute is listed as past its SLA",
    role=BILLING,
    example="Then the dispute is listed as past its SLA",
)
def dispute_late(handoff: World) -> None:
    found = handoff.recall("dispute")
    listed = handoff.expect(
        handoff.send(
            BILLING, "GET", DISPUTES, operation="listDisputes", params={"slaBreached": "true"}
        ),
        200,
    )
    if found["id"] not in [item["id"] for item in listed]:
        raise StepFailed("the dispute is not listed with slaBreached=true")


@phrase(
    "when",
    "the dispute is updated with",
    role=BILLING,
    example="When the dispute is updated with (a JSON doc string: state, owner, "
    "adjustment, resolution)",
)
def dispute_update(handoff: World, docstring: str) -> None:
    import json

    found = handoff.recall("dispute")
    handoff.send(
        BILLING,
        "PATCH",
        f"{DISPUTES}/{found['id']}",
        operation="updateDispute",
        json_body=json.loads(handoff.expand(docstring)),
    )


@phrase(
    "when",
    'the dispute is assigned to "{owner:Q}"',
    role=BILLING,
    example='When the dispute is assigned to "billingVendor"',
)
def dispute_assign(handoff: World, owner: str) -> None:
    found = handoff.recall("dispute")
    handoff.send(
        BILLING,
        "PATCH",
        f"{DISPUTES}/{found['id']}",
        operation="updateDispute",
        json_body={"owner": owner},
    )


@phrase(
    "when",
    "the dispute is resolved with a credit of {amount:N} {currency:w}",
    role=BILLING,
    example="When the dispute is resolved with a credit of 1.00 USD",
)
def dispute_resolve(handoff: World, amount: float, currency: str) -> None:
    found = handoff.recall("dispute")
    body = {
        "state": "resolved",
        "adjustment": {"amount": amount, "units": currency},
        "resolution": "Credited after investigation",
    }
    handoff.send(
        BILLING, "PATCH", f"{DISPUTES}/{found['id']}", operation="updateDispute", json_body=body
    )


@phrase(
    "then",
    "the next bill carries a credit of {amount:N} {currency:w}",
    role=BILLING,
    example="Then the next bill carries a credit of 1.00 USD",
)
def next_bill_credit(handoff: World, amount: float, currency: str) -> None:
    issued = bills(handoff)
    latest = issued[-1]
    credits = [
        line["amount"]["amount"]
        for line in latest.get("billLine", [])
        if line.get("lineType") == "adjustment"
    ]
    if credits != [-amount] or latest["amountDue"]["units"] != currency:
        raise StepFailed(f"the latest bill's adjustments are {credits}")


# --- helpers -------------------------------------------------------------------------------


def _next_cycle(now: float, cycle_day: int) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    candidate = moment.replace(day=cycle_day, hour=0, minute=0, second=0, microsecond=0)
    if candidate <= moment:
        first_of_next = (moment.replace(day=1) + timedelta(days=32)).replace(day=1)
        candidate = first_of_next.replace(day=cycle_day, hour=0, minute=0, second=0)
    return candidate.timestamp()


def _runs(world: World) -> list[dict[str, Any]]:
    answer = world.send(BILLING, "GET", "/v1/billRun", operation="listBillRuns")
    found: list[dict[str, Any]] = world.expect(answer, 200)
    return found


def _breaks(world: World) -> list[tuple[str, str]]:
    answer = world.send(
        BILLING,
        "GET",
        "/v1/reconciliation",
        operation="getReconciliation",
        params={"breaksOnly": "true"},
    )
    report = world.expect(answer, 200)
    return [(item["billingAccount"]["id"], item["break"]) for item in report["items"]]
