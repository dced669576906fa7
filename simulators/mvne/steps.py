"""The MVNE's asynchronous side: provisioning each change on the host network.

Each step calls the MNO only through its published contract at the configured
base URL, outside any transaction, and records the outcome in its own
transaction. Network orders carry an `externalId` derived from the MVNE's
own ids, so a retried step never provisions twice.
"""

from __future__ import annotations

import uuid
from typing import Any

import requests
from sqlalchemy import Connection

from simulators.core.admin import current_seed
from simulators.core.clock import parse_iso
from simulators.core.runtime import PeerCallFailed, Runtime
from simulators.core.store import select_equal, update_equal
from simulators.core.tasks import Reschedule, RetryLater, Task, retry_after_seconds
from simulators.core.tenancy import MVNE_PLATFORM, peer_api_key

from . import errors, events, model, sim_change
from .views import desired_barring

SERVICE_ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
SERVICES = "/tmf-api/serviceInventory/v4/service"
POLL_EVERY_S = 1.0
POLL_AT_MOST_EVERY_S = 300.0


def poll_delay(pending_since: float, now: float, expected: float | None = None) -> float:
    """When to look at a pending network order again. While the network's own estimate of
    its completion (TMF641 `expectedCompletionDate`) lies ahead, then; otherwise every
    second at first, backing off to a quarter of the time it has been pending, up to five
    minutes (an MNO order can take hours, and a late one has no estimate worth waiting on)."""
    if expected is not None and expected > now:
        return min(POLL_AT_MOST_EVERY_S, max(POLL_EVERY_S, expected - now))
    return min(POLL_AT_MOST_EVERY_S, max(POLL_EVERY_S, (now - pending_since) / 4))


def first_look_at(now: float, network_order: Any) -> float:
    """When to look first at a network order just submitted (`poll_delay` from now)."""
    return now + poll_delay(now, now, expected_completion(network_order))


def expected_completion(network_order: Any) -> float | None:
    """The network order's `expectedCompletionDate` as epoch seconds, when it gave one."""
    value = network_order.get("expectedCompletionDate") if isinstance(network_order, dict) else None
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


NETWORK_PENDING = ("acknowledged", "inProgress", "held", "pending")

# Partner-safe reasons: what the partner sees never names a vendor internal.
PENDING_VERIFICATION = (
    "ACTIVATION_PENDING_VERIFICATION",
    "The network has not confirmed the activation; retry the order later",
    True,
)
NETWORK_REJECTED = ("NETWORK_REJECTED", "The network refused the activation", False)
PROVISIONING_FAILED = (
    "NETWORK_PROVISIONING_FAILED",
    "The network could not provision this line",
    True,
)
# The host network stops new lines of an MVNO with an overdue wholesale invoice: the
# partner's own commercial state, so it may know; a retry fails the same way until it pays.
ACTIVATIONS_SUSPENDED = (
    "ACTIVATIONS_SUSPENDED",
    "New activations are suspended for this partner until its overdue wholesale invoice is paid",
    False,
)
# What a failed network item's code (TMF641 errorMessage) tells the partner; any other code
# is a network internal and reaches the partner as PROVISIONING_FAILED.
NETWORK_ITEM_REASONS = {"ACTIVATIONS_SUSPENDED": ACTIVATIONS_SUSPENDED}


def _network_item_reasons(network_order: dict[str, Any]) -> dict[str, tuple[str, str, bool]]:
    """The partner-safe reason of each failed item of a network order, by item id."""
    found: dict[str, tuple[str, str, bool]] = {}
    for message in network_order.get("errorMessage") or ():
        reason = NETWORK_ITEM_REASONS.get(str(message.get("code")), PROVISIONING_FAILED)
        for item in message.get("serviceOrderItem") or ():
            found[str(item.get("itemId"))] = reason
    return found


class NetworkUnavailable(RetryLater):
    """The MNO did not answer, or answered 5xx/429: worth retrying, not before its
    `Retry-After` when it sent one."""


def _call_mno(
    runtime: Runtime,
    method: str,
    path: str,
    correlation_id: str | None,
    body: Any = None,
    **params: Any,
) -> requests.Response:
    try:
        response = runtime.call_peer(
            caller="mvne",
            peer="mno",
            method=method,
            path=path,
            api_key=peer_api_key(runtime.settings, MVNE_PLATFORM),
            correlation_id=correlation_id,
            json_body=body,
            params=params or None,
        )
    except PeerCallFailed as exc:
        raise NetworkUnavailable(str(exc)) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise NetworkUnavailable(
            f"MNO answered {response.status_code}",
            retry_after_seconds(response.headers.get("Retry-After")),
        )
    return response


def _reason(code: str, reason: str, retryable: bool) -> dict[str, Any]:
    return {"code": code, "reason": reason, "retryable": retryable}


def schedule(
    runtime: Runtime,
    conn: Connection,
    kind: str,
    payload: dict[str, Any],
    due: float,
    cid: str | None,
) -> None:
    runtime.tasks.schedule(
        conn,
        role="mvne",
        kind=kind,
        payload=payload,
        due_at=due,
        correlation_id=cid,
        max_attempts=8,
    )


def schedule_network_sync(
    runtime: Runtime, conn: Connection, product_id: str, cid: str | None, now: float
) -> None:
    """Make the network converge on the subscription's desired barring (or deletion)."""
    schedule(
        runtime,
        conn,
        "mvne.network.submit",
        {"product_id": product_id, "change_id": uuid.uuid4().hex[:12]},
        now,
        cid,
    )


# --- activation --------------------------------------------------


def fail_order(
    runtime: Runtime,
    conn: Connection,
    order: Any,
    reason: tuple[str, str, bool],
    cid: str | None,
    now: float,
) -> None:
    items = [dict(item, state="failed") for item in order.items]
    model.release_sims(conn, [item["iccid"] for item in items], now)
    row = model.set_order_state(
        conn,
        order.id,
        state="failed",
        items=items,
        now=now,
        actor="system",
        correlation_id=cid,
        reason=_reason(*reason),
    )
    events.order_event(runtime, conn, row, "ProductOrderStateChangeEvent", cid, now)


def _give_up(runtime: Runtime, order_id: str, cid: str | None) -> None:
    """The network stayed silent through every attempt: whether it provisioned is unknown."""
    with runtime.store.write() as conn:
        order = model.load_order(conn, order_id)
        fail_order(runtime, conn, order, PENDING_VERIFICATION, cid, runtime.clock.now(conn))


def submit_activation(runtime: Runtime, task: Task) -> None:
    cid = task.correlation_id
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        order = model.load_order(conn, task.payload["order_id"])
        if order.state not in ("acknowledged", "inProgress") or order.network_order_id:
            return
        if order.state == "acknowledged":
            seed = current_seed(conn, runtime.settings.faker_seed)
            items = []
            try:
                for item in order.items:
                    sim = select_equal(conn, model.sim_table, iccid=item["iccid"]).one()
                    msisdn = model.allocate_msisdn(conn, item["market"], seed, order_id=order.id)
                    items.append(dict(item, imsi=sim.imsi, msisdn=msisdn, state="inProgress"))
            except errors.MsisdnRangeExhausted:
                fail_order(
                    runtime,
                    conn,
                    order,
                    ("NUMBER_RANGE_EXHAUSTED", "No number is free in this market", False),
                    cid,
                    now,
                )
                return
            order = model.set_order_state(
                conn,
                order.id,
                state="inProgress",
                items=items,
                now=now,
                actor="system",
                correlation_id=cid,
            )
            events.order_event(runtime, conn, order, "ProductOrderStateChangeEvent", cid, now)
    body = {
        "externalId": order.id,
        "description": f"Activation for partner order {order.external_id}",
        # The MVNO the lines are for: the network attributes them to it (its CAMARA clients
        # see them, its wholesale usage is its own).
        "relatedParty": [{"id": order.partner_id, "role": "mvno"}],
        "serviceOrderItem": [
            {
                "id": item["id"],
                "action": "add",
                "service": {
                    "serviceCharacteristic": [
                        {"name": "IMSI", "value": item["imsi"]},
                        {"name": "MSISDN", "value": item["msisdn"]},
                        {"name": "ICCID", "value": item["iccid"]},
                    ]
                },
            }
            for item in order.items
        ],
    }
    try:
        response = _call_mno(runtime, "POST", SERVICE_ORDERS, cid, body)
    except NetworkUnavailable:
        if not task.last_attempt:
            raise
        _give_up(runtime, order.id, cid)
        return
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        order = model.load_order(conn, order.id)
        if response.status_code >= 400:
            fail_order(runtime, conn, order, NETWORK_REJECTED, cid, now)
            return
        network_order = response.json()
        network_order_id = network_order["id"]
        update_equal(
            conn,
            model.order_table,
            {"id": order.id},
            network_order_id=network_order_id,
            updated_at=now,
        )
        first_look = first_look_at(now, network_order)
        schedule(runtime, conn, "mvne.activation.poll", {"order_id": order.id}, first_look, cid)


def _service_id(
    runtime: Runtime, network_item: dict[str, Any], imsi: str, cid: str | None
) -> str | None:
    service = network_item.get("service") or {}
    if service.get("id"):
        return str(service["id"])
    response = _call_mno(runtime, "GET", SERVICES, cid, imsi=imsi)
    found = response.json() if response.status_code == 200 else []
    return str(found[0]["id"]) if found else None


def poll_activation(runtime: Runtime, task: Task) -> None:
    cid = task.correlation_id
    with runtime.store.read() as conn:
        order = model.load_order(conn, task.payload["order_id"])
    if not order.network_order_id or order.state not in ("inProgress", "cancelled"):
        return
    try:
        response = _call_mno(runtime, "GET", f"{SERVICE_ORDERS}/{order.network_order_id}", cid)
        network_order = response.json() if response.status_code == 200 else None
        if network_order is not None and network_order["state"] in NETWORK_PENDING:
            delay = poll_delay(
                order.order_date, runtime.clock.now(), expected_completion(network_order)
            )
            raise Reschedule(delay, f"network order {network_order['state']}")
        by_item = {item["id"]: item for item in (network_order or {}).get("serviceOrderItem", [])}
        service_ids = {
            item["id"]: _service_id(runtime, by_item[item["id"]], item["imsi"], cid)
            for item in order.items
            if by_item.get(item["id"], {}).get("state") == "completed"
        }
    except NetworkUnavailable:
        if not task.last_attempt:
            raise
        _give_up(runtime, order.id, cid)
        return
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        order = model.load_order(conn, order.id)
        if network_order is None:
            fail_order(runtime, conn, order, NETWORK_REJECTED, cid, now)
            return
        if order.state == "cancelled":
            _undo_cancelled(runtime, conn, order, service_ids, cid, now)
            return
        items = []
        failed_because = _network_item_reasons(network_order)
        reasons = set()
        for item in order.items:
            service_id = service_ids.get(item["id"])
            if item["id"] in service_ids:
                product = model.create_product(
                    conn,
                    order=order,
                    item=item,
                    network_service_id=service_id,
                    now=now,
                    correlation_id=cid,
                )
                events.product_event(runtime, conn, product, "ProductCreateEvent", cid, now)
                items.append(dict(item, state="completed", product_id=product.id))
            else:
                model.release_sims(conn, [item["iccid"]], now)
                failure = failed_because.get(item["id"], PROVISIONING_FAILED)
                reasons.add(failure)
                code, reason, _ = failure
                items.append(dict(item, state="failed", reason={"code": code, "reason": reason}))
        done = sum(item["state"] == "completed" for item in items)
        state = "completed" if done == len(items) else "failed" if done == 0 else "partial"
        row = model.set_order_state(
            conn,
            order.id,
            state=state,
            items=items,
            now=now,
            actor="system",
            correlation_id=cid,
            # One reason the items share is the order's; mixed reasons stay on the items.
            reason=_reason(*(reasons.pop() if len(reasons) == 1 else PROVISIONING_FAILED))
            if state == "failed"
            else None,
        )
        events.order_event(runtime, conn, row, "ProductOrderStateChangeEvent", cid, now)


def _undo_cancelled(
    runtime: Runtime,
    conn: Connection,
    order: Any,
    service_ids: dict[str, str | None],
    cid: str | None,
    now: float,
) -> None:
    """The partner was terminated while the network provisioned: delete what it built."""
    for item_id, service_id in service_ids.items():
        if service_id:
            schedule(
                runtime,
                conn,
                "mvne.network.delete",
                {"service_id": service_id, "ref": f"{order.id}-{item_id}"},
                now,
                cid,
            )


# --- barring, suspension, termination ----------------------------


def submit_network_change(runtime: Runtime, task: Task) -> None:
    cid = task.correlation_id
    with runtime.store.read() as conn:
        product = model.load_product(conn, task.payload["product_id"])
    if not product.network_service_id:
        return
    if product.status == "terminated":
        item = {"id": "1", "action": "delete", "service": {"id": product.network_service_id}}
        target = "deleted"
    else:
        target = desired_barring(product.status, product.balance_barred)
        if target == product.network_barring:
            return
        item = {
            "id": "1",
            "action": "modify",
            "service": {
                "id": product.network_service_id,
                "serviceCharacteristic": [{"name": "barring", "value": target}],
            },
        }
    body = {"externalId": f"{product.id}-{task.payload['change_id']}", "serviceOrderItem": [item]}
    try:
        response = _call_mno(runtime, "POST", SERVICE_ORDERS, cid, body)
    except NetworkUnavailable:
        if not task.last_attempt:
            raise
        _mark_network_unknown(runtime, product.id, cid, "network did not answer")
        return
    if response.status_code >= 400:
        _mark_network_unknown(runtime, product.id, cid, f"network refused ({response.status_code})")
        return
    network_order = response.json()
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        schedule(
            runtime,
            conn,
            "mvne.network.poll",
            {
                "product_id": product.id,
                "network_order_id": network_order["id"],
                "target": target,
                "since": now,
            },
            first_look_at(now, network_order),
            cid,
        )


def poll_network_change(runtime: Runtime, task: Task) -> None:
    cid = task.correlation_id
    try:
        response = _call_mno(
            runtime, "GET", f"{SERVICE_ORDERS}/{task.payload['network_order_id']}", cid
        )
    except NetworkUnavailable:
        if not task.last_attempt:
            raise
        _mark_network_unknown(runtime, task.payload["product_id"], cid, "network did not confirm")
        return
    network_order = response.json() if response.status_code == 200 else {"state": "failed"}
    state = network_order.get("state")
    if state in NETWORK_PENDING:
        now = runtime.clock.now()
        # A step queued before its payload kept the submission time backs off from now.
        since = float(task.payload.get("since", now))
        delay = poll_delay(since, now, expected_completion(network_order))
        raise Reschedule(delay, f"network order {state}")
    if state != "completed":
        _mark_network_unknown(runtime, task.payload["product_id"], cid, f"network order {state}")
        return
    target = task.payload["target"]
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        product = model.load_product(conn, task.payload["product_id"])
        applied = "all" if target == "deleted" else target
        update_equal(
            conn, model.product_table, {"id": product.id}, network_barring=applied, updated_at=now
        )
        product = model.load_product(conn, product.id)
        events.product_event(runtime, conn, product, "ProductAttributeValueChangeEvent", cid, now)
        if (
            product.status != "terminated"
            and desired_barring(product.status, product.balance_barred) != applied
        ):
            schedule_network_sync(runtime, conn, product.id, cid, now)


def _mark_network_unknown(runtime: Runtime, product_id: str, cid: str | None, why: str) -> None:
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        product = model.load_product(conn, product_id)
        update_equal(
            conn, model.product_table, {"id": product_id}, network_barring="unknown", updated_at=now
        )
        model._audit(
            conn,
            now=now,
            actor="system",
            partner_id=product.partner_id,
            action="product.networkSyncFailed",
            entity_type="product",
            entity_id=product_id,
            correlation_id=cid,
            details={"why": why},
        )


def delete_network_service(runtime: Runtime, task: Task) -> None:
    body = {
        "externalId": f"undo-{task.payload['ref']}",
        "serviceOrderItem": [
            {"id": "1", "action": "delete", "service": {"id": task.payload["service_id"]}}
        ],
    }
    _call_mno(runtime, "POST", SERVICE_ORDERS, task.correlation_id, body)


# --- SIM change ----------------------------------------------------------------------------

# Why a SIM change failed, as the partner reads it: no vendor internals, and never whose
# line holds the contested SIM.
SIM_IN_USE = ("SIM_IN_USE_ON_NETWORK", "The network holds that SIM on another line", False)
SIM_CHANGE_REJECTED = ("NETWORK_REJECTED", "The network refused the SIM change", False)
SIM_CHANGE_UNCONFIRMED = (
    "SIM_CHANGE_PENDING_VERIFICATION",
    "The network did not confirm the SIM change; check the subscription before retrying",
    True,
)


def submit_sim_change(runtime: Runtime, task: Task) -> None:
    cid = task.correlation_id
    with runtime.store.read() as conn:
        change = sim_change.load(conn, task.payload["sim_change_id"])
        product = model.load_product(conn, change.product_id)
    if change.state != "acknowledged":
        return
    if product.status == "terminated":
        with runtime.store.write() as conn:
            sim_change.fail(conn, change.id, sim_change.LINE_TERMINATED, runtime.clock.now(conn))
        return
    body = {
        # The change's id: a retried step never orders the change twice.
        "externalId": change.id,
        "description": f"SIM change of subscription {product.id}",
        "serviceOrderItem": [sim_change.network_item(change, product.network_service_id)],
    }
    try:
        response = _call_mno(runtime, "POST", SERVICE_ORDERS, cid, body)
    except NetworkUnavailable:
        if not task.last_attempt:
            raise
        with runtime.store.write() as conn:
            sim_change.fail(
                conn, change.id, _reason(*SIM_CHANGE_UNCONFIRMED), runtime.clock.now(conn)
            )
        return
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        if response.status_code >= 400:
            sim_change.fail(conn, change.id, _reason(*SIM_CHANGE_REJECTED), now)
            return
        network_order = response.json()
        sim_change.mark_in_progress(conn, change.id, network_order["id"])
        first_look = first_look_at(now, network_order)
        schedule(runtime, conn, sim_change.POLL, {"sim_change_id": change.id}, first_look, cid)


def poll_sim_change(runtime: Runtime, task: Task) -> None:
    cid = task.correlation_id
    with runtime.store.read() as conn:
        change = sim_change.load(conn, task.payload["sim_change_id"])
    if change.state != "inProgress":
        return
    try:
        response = _call_mno(runtime, "GET", f"{SERVICE_ORDERS}/{change.network_order_id}", cid)
    except NetworkUnavailable:
        if not task.last_attempt:
            raise
        with runtime.store.write() as conn:
            sim_change.fail(
                conn, change.id, _reason(*SIM_CHANGE_UNCONFIRMED), runtime.clock.now(conn)
            )
        return
    order: dict[str, Any] = response.json() if response.status_code == 200 else {"state": "failed"}
    if order.get("state") in NETWORK_PENDING:
        delay = poll_delay(change.request_date, runtime.clock.now(), expected_completion(order))
        raise Reschedule(delay, f"network order {order.get('state')}")
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        if order.get("state") != "completed":
            codes = {error.get("code") for error in order.get("errorMessage") or []}
            in_use = codes & {"ICCID_IN_USE", "IMSI_IN_USE"}
            sim_change.fail(
                conn, change.id, _reason(*(SIM_IN_USE if in_use else SIM_CHANGE_REJECTED)), now
            )
            return
        sim_change.complete(conn, change.id, now)
        product = model.load_product(conn, change.product_id)
        events.product_event(runtime, conn, product, "ProductAttributeValueChangeEvent", cid, now)


def register(runtime: Runtime) -> None:
    runtime.tasks.register("mvne.activation.submit", submit_activation)
    runtime.tasks.register("mvne.activation.poll", poll_activation)
    runtime.tasks.register("mvne.network.submit", submit_network_change)
    runtime.tasks.register("mvne.network.poll", poll_network_change)
    runtime.tasks.register("mvne.network.delete", delete_network_service)
    runtime.tasks.register(sim_change.SUBMIT, submit_sim_change)
    runtime.tasks.register(sim_change.POLL, poll_sim_change)
