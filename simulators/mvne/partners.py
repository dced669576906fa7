"""Partner lifecycle on the MVNE: the reference agreement, onboarding, capabilities, termination."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from simulators.core import tenancy
from simulators.core.problems import NotFound, Unprocessable
from simulators.core.ratelimit import RateLimit
from simulators.core.runtime import Runtime
from simulators.core.tenancy import MNO_NETWORK, Partner, peer_api_key

from . import diagnostics, errors, events, model, steps

PARTNER_ROLE = "mvne"
NETWORK_ROLE = "mvne-network"


def partner_view(conn: Connection, partner: Partner) -> dict[str, Any]:
    return {
        "id": partner.id,
        "name": partner.name,
        "status": partner.status,
        "agreement": partner.agreement,
        "capabilities": partner.capabilities,
        "simPool": model.pool_summary(conn, partner.id),
    }


def _next_block(conn: Connection) -> int:
    blocks = [
        int(p.agreement.get("poolBlock", 0)) for p in tenancy.list_partners(conn, PARTNER_ROLE)
    ]
    return max(blocks, default=0) + 1


def onboard(
    runtime: Runtime,
    conn: Connection,
    *,
    partner_id: str,
    name: str,
    agreement: dict[str, Any],
    seed: int,
    now: float,
    actor: str,
    correlation_id: str | None,
) -> tuple[Partner, str]:
    """Create a partner, its capabilities and its SIM pool; return it with its API key."""
    exists = conn.execute(
        select(func.count())
        .select_from(tenancy.partners)
        .where(tenancy.partners.c.id == partner_id)
    ).scalar_one()
    if exists:
        raise errors.PartnerExists(f"Partner {partner_id} already exists")
    unknown = sorted(set(agreement["offerings"]) - model.known_offerings(conn))
    if unknown:
        raise Unprocessable(f"Unknown offerings {unknown}", field="agreement.offerings")
    stored = dict(agreement)
    limit = RateLimit.from_json(agreement.get("rateLimit"))
    if limit is not None:
        # Exact decimals from the request body become the plain numbers the store keeps.
        stored["rateLimit"] = limit.to_json()
    stored.setdefault("simPoolSize", runtime.settings.sim_pool_size)
    stored["poolBlock"] = _next_block(conn)
    key = tenancy.create_partner(
        conn,
        secret_key=runtime.settings.secret_key,
        partner_id=partner_id,
        role=PARTNER_ROLE,
        name=name,
        agreement=stored,
        granted=list(agreement["capabilities"]),
        now=now,
    )
    model.generate_pool(
        conn, partner_id, stored["poolBlock"], int(stored["simPoolSize"]), seed, now
    )
    model._audit(
        conn,
        now=now,
        actor=actor,
        partner_id=partner_id,
        action="partner.onboarded",
        entity_type="partner",
        entity_id=partner_id,
        correlation_id=correlation_id,
        details={
            "offerings": agreement["offerings"],
            "markets": agreement["markets"],
            "rateLimit": stored.get("rateLimit"),
        },
    )
    return tenancy.get_partner(conn, partner_id), key


def set_capability(
    conn: Connection,
    *,
    partner_id: str,
    capability: str,
    status: str,
    now: float,
    actor: str,
    correlation_id: str | None,
) -> Partner:
    partner = mvne_partner(conn, partner_id)
    if partner.status == tenancy.PARTNER_TERMINATED:
        raise errors.PartnerTerminated(f"Partner {partner_id} is terminated")
    tenancy.set_capability(conn, partner_id, capability, status, now)
    model._audit(
        conn,
        now=now,
        actor=actor,
        partner_id=partner_id,
        action=f"capability.{status}",
        entity_type="partner",
        entity_id=partner_id,
        correlation_id=correlation_id,
        details={"capability": capability},
    )
    return tenancy.get_partner(conn, partner_id)


def mvne_partner(conn: Connection, partner_id: str) -> Partner:
    partner = tenancy.get_partner(conn, partner_id)
    if partner.role != PARTNER_ROLE:
        raise NotFound(f"No partner {partner_id}")
    return partner


def terminate(
    runtime: Runtime,
    conn: Connection,
    *,
    partner_id: str,
    now: float,
    actor: str,
    correlation_id: str | None,
) -> tuple[Partner, list[str], list[str]]:
    """Terminate a partner: cancel in-flight orders, terminate subscriptions, stop its key.

    A network order already sent for a cancelled order is undone when the
    network completes it (see steps.poll_activation).
    """
    partner = mvne_partner(conn, partner_id)
    if partner.status == tenancy.PARTNER_TERMINATED:
        raise errors.PartnerTerminated(f"Partner {partner_id} is already terminated")
    tenancy.set_partner_status(conn, partner_id, tenancy.PARTNER_TERMINATED, now)
    cancelled = []
    reason = {
        "code": "PARTNER_TERMINATED",
        "reason": "The partner agreement ended",
        "retryable": False,
    }
    for order in conn.execute(
        select(model.order_table).where(
            model.order_table.c.partner_id == partner_id,
            model.order_table.c.state.in_(model.IN_FLIGHT_ORDER_STATES),
        )
    ).all():
        items = [dict(item, state="cancelled") for item in order.items]
        row = model.set_order_state(
            conn,
            order.id,
            state="cancelled",
            items=items,
            now=now,
            actor=actor,
            correlation_id=correlation_id,
            reason=reason,
        )
        events.order_event(runtime, conn, row, "ProductOrderStateChangeEvent", correlation_id, now)
        cancelled.append(order.id)
    terminated = []
    for product in conn.execute(
        select(model.product_table).where(
            model.product_table.c.partner_id == partner_id,
            model.product_table.c.status.in_(model.LIVE),
        )
    ).all():
        row, _ = model.change_status(
            conn,
            product=product,
            status="terminated",
            actor=actor,
            correlation_id=correlation_id,
            now=now,
        )
        events.product_event(runtime, conn, row, "ProductStateChangeEvent", correlation_id, now)
        steps.schedule_network_sync(runtime, conn, row.id, correlation_id, now)
        terminated.append(row.id)
    conn.execute(
        model.sim_table.update()
        .where(
            model.sim_table.c.partner_id == partner_id,
            model.sim_table.c.status.in_(("available", "reserved")),
        )
        .values(status="terminated", updated_at=now)
    )
    model._audit(
        conn,
        now=now,
        actor=actor,
        partner_id=partner_id,
        action="partner.terminated",
        entity_type="partner",
        entity_id=partner_id,
        correlation_id=correlation_id,
        details={"cancelledOrders": cancelled, "terminatedSubscriptions": terminated},
    )
    return tenancy.get_partner(conn, partner_id), cancelled, terminated


def _grant_new_capabilities(conn: Connection, reference: dict[str, Any], now: float) -> None:
    """A reference partner kept from an earlier version of the stack gets the capabilities
    its reference agreement has gained since (e.g. LOAD_INVENTORY). A capability it has in
    any state, suspended included, is left as it is."""
    partner = tenancy.get_partner(conn, reference["id"])
    if partner.status == tenancy.PARTNER_TERMINATED:
        return
    new = [c for c in reference["agreement"]["capabilities"] if c not in partner.capabilities]
    if not new:
        return
    for capability in new:
        tenancy.set_capability(conn, partner.id, capability, tenancy.CAPABILITY_GRANTED, now)
    agreement = dict(partner.agreement)
    agreement["capabilities"] = [*agreement.get("capabilities", []), *new]
    tenancy.set_agreement(conn, partner.id, agreement)
    model._audit(
        conn,
        now=now,
        actor="system",
        partner_id=partner.id,
        action="capability.granted",
        entity_type="partner",
        entity_id=partner.id,
        correlation_id=None,
        details={"capabilities": new, "reason": "added to the reference agreement"},
    )


def seed(runtime: Runtime, conn: Connection, seed_value: int) -> None:
    """Reference data: the catalog, two MVNO partners with SIM pools, the network's credential."""
    now = runtime.clock.now(conn)
    model.seed_offerings(conn)
    existing = {p.id for p in tenancy.list_partners(conn)}
    for reference in model.REFERENCE_PARTNERS:
        if reference["id"] not in existing:
            onboard(
                runtime,
                conn,
                partner_id=reference["id"],
                name=reference["name"],
                agreement=dict(reference["agreement"]),
                seed=seed_value,
                now=now,
                actor="system",
                correlation_id=None,
            )
        else:
            _grant_new_capabilities(conn, reference, now)
    if MNO_NETWORK not in existing:
        tenancy.create_partner(
            conn,
            secret_key=runtime.settings.secret_key,
            partner_id=MNO_NETWORK,
            role=NETWORK_ROLE,
            name="Host network (online charging)",
            agreement={},
            granted=[],
            now=now,
            api_key=peer_api_key(runtime.settings, MNO_NETWORK),
        )
    diagnostics.seed_credentials(runtime.settings, conn, now)
    # After a reset of the MVNE alone, partners remain but their pools were cleared.
    for partner in tenancy.list_partners(conn, PARTNER_ROLE):
        if (
            model.pool_summary(conn, partner.id)["size"] == 0
            and partner.status != tenancy.PARTNER_TERMINATED
        ):
            block = int(partner.agreement.get("poolBlock", 1))
            size = int(partner.agreement.get("simPoolSize", runtime.settings.sim_pool_size))
            model.generate_pool(conn, partner.id, block, size, seed_value, now)
