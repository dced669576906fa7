"""The care BPO's HTTP surface: TMF621 trouble tickets, diagnostics through the MVNE, hubs."""

from __future__ import annotations

from typing import Any

from flask import current_app

from simulators.core.http import Reply, RequestContext, RoleApi, created, list_reply, paging
from simulators.core.hubs import Hub
from simulators.core.problems import BadRequest
from simulators.core.runtime import PeerCallFailed, Runtime
from simulators.core.tenancy import care_agent_id, peer_api_key

from . import errors, events, model
from .views import TICKET_PATH, ticket_view

api = RoleApi("care")

HUB_PATH = "/tmf-api/troubleTicket/v4/hub"
DIAGNOSTICS_PATH = "/diagnostics/v1/subscription"
NETWORK_TICKET_PATH = "/diagnostics/v1/networkTicket"


def queue(runtime: Runtime, conn: Any, schedules: list[model.Schedule], cid: str | None) -> None:
    for item in schedules:
        runtime.tasks.schedule(
            conn,
            role="care",
            kind=item.kind,
            payload=item.payload,
            due_at=item.due_at,
            correlation_id=cid,
        )


def _view(ctx: RequestContext, row: Any, now: float | None = None) -> dict[str, Any]:
    return ticket_view(row, ctx.base_url, ctx.now() if now is None else now)


# --- tickets -----------------------------------------------------------------------------------


@api.operation("createTroubleTicket", idempotent_on="externalId")
def create_trouble_ticket(ctx: RequestContext) -> Reply:
    if not isinstance(ctx.body, dict):
        raise BadRequest("The body must be a JSON object", field="(body)")
    now = ctx.now()
    row, schedules = model.create_ticket(
        ctx.conn, partner_id=ctx.partner_id, body=ctx.body, now=now
    )
    queue(ctx.runtime, ctx.conn, schedules, ctx.correlation_id)
    events.ticket_event(
        ctx.runtime, ctx.conn, row, "TroubleTicketCreateEvent", ctx.correlation_id, now
    )
    return created(_view(ctx, row))


@api.operation("listTroubleTickets")
def list_trouble_tickets(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_tickets(
        ctx.conn,
        ctx.partner_id,
        status=ctx.params.get("status"),
        severity=ctx.params.get("severity"),
        tier=ctx.params.get("tier"),
        sla_breached=ctx.params.get("slaBreached"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [_view(ctx, row) for row in rows])


@api.operation("getTroubleTicket")
def get_trouble_ticket(ctx: RequestContext) -> Reply:
    return Reply(_view(ctx, model.get_ticket(ctx.conn, ctx.partner_id, ctx.params["id"])))


@api.operation("patchTroubleTicket", write=True)
def patch_trouble_ticket(ctx: RequestContext) -> Reply:
    if not isinstance(ctx.body, dict):
        raise BadRequest("The body must be a JSON object", field="(body)")
    now = ctx.now()
    row, schedules, changed = model.update_ticket(
        ctx.conn,
        partner_id=ctx.partner_id,
        ticket_id=ctx.params["id"],
        status=ctx.body.get("status"),
        reason=ctx.body.get("statusChangeReason"),
        notes=list(ctx.body.get("note", [])),
        now=now,
    )
    queue(ctx.runtime, ctx.conn, schedules, ctx.correlation_id)
    event = (
        "TroubleTicketStatusChangeEvent" if changed else "TroubleTicketAttributeValueChangeEvent"
    )
    events.ticket_event(ctx.runtime, ctx.conn, row, event, ctx.correlation_id, now)
    return Reply(_view(ctx, row))


@api.operation("getTicketReport")
def get_ticket_report(ctx: RequestContext) -> Reply:
    return Reply(model.report(ctx.conn, ctx.partner_id))


# --- diagnostics and network escalation through the MVNE ----------------------------------------


def _call_mvne(
    ctx: RequestContext, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, Any]]:
    """Call the MVNE's care API with the agent credential of this partner's MVNE tenancy."""
    assert ctx.partner is not None
    runtime = ctx.runtime
    credential = care_agent_id(str(ctx.partner.agreement.get("mvnePartner", "")))
    try:
        # In-process the MVNE is this same Flask app on this thread: a fresh app context
        # keeps its request from overwriting this request's `g`.
        with current_app.app_context():
            response = runtime.call_peer(
                caller="care",
                peer="mvne",
                method=method,
                path=path,
                api_key=peer_api_key(runtime.settings, credential),
                correlation_id=ctx.correlation_id,
                json_body=body,
            )
    except PeerCallFailed as exc:
        raise errors.MvneUnavailable(f"The MVNE did not answer ({exc})") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise errors.MvneUnavailable(
            f"The MVNE answered {response.status_code}", peerStatus=response.status_code
        )
    try:
        answer = response.json()
    except ValueError as exc:
        raise errors.MvneUnavailable("The MVNE answered outside its contract") from exc
    if not isinstance(answer, dict):
        raise errors.MvneUnavailable("The MVNE answered outside its contract")
    return response.status_code, answer


def summarise(diagnostics: dict[str, Any]) -> str:
    """What an agent reads on the ticket: one line per finding."""
    network = diagnostics.get("network", {})
    balance = diagnostics.get("balance", {})
    history = diagnostics.get("provisioningHistory", [])
    lines = [
        f"Subscription {diagnostics.get('subscriptionId')} ({diagnostics.get('msisdn')}): "
        f"{diagnostics.get('status')}, "
        f"barring {diagnostics.get('barring')}",
        f"SIM {diagnostics.get('sim', {}).get('iccid')}: "
        f"{diagnostics.get('sim', {}).get('resourceStatus')}",
        f"Network ({network.get('source')}): attach {network.get('attachState')}, "
        f"last attach {network.get('lastAttachTime', 'never')}, "
        f"roaming {network.get('roaming')}",
        f"Balance: {balance.get('amount')} {balance.get('units')}",
        f"Provisioning history: {len(history)} events",
    ]
    if history:
        last = history[-1]
        lines.append(f"Last: {last.get('action')} at {last.get('date')}")
    return "\n".join(lines)


@api.operation("runTicketDiagnostics")
def run_ticket_diagnostics(ctx: RequestContext) -> Reply:
    # A read handler on purpose: the MVNE is asked with no write transaction held, then the
    # outcome is written in a transaction of its own.
    runtime = ctx.runtime
    row = model.get_ticket(ctx.conn, ctx.partner_id, ctx.params["id"])
    if row.status not in model.OPEN:
        raise errors.TicketFinal(f"The ticket is {row.status}")
    subscription = model.subscription_of(row)
    status, answer = _call_mvne(ctx, "GET", f"{DIAGNOSTICS_PATH}/{subscription}")
    if status == 404:
        raise errors.SubscriptionUnknownAtMvne(
            f"The MVNE has no subscription {subscription} for this partner"
        )
    refused = status in (401, 403)
    if not refused and status != 200:
        raise errors.MvneUnavailable(f"The MVNE answered {status}", peerStatus=status)
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        current = model.get_ticket(conn, ctx.partner_id, row.id)
        if refused:
            code = str(answer.get("code", f"HTTP_{status}"))
            updated, schedules = model.diagnostics_refused(conn, current, code, now)
        else:
            updated, schedules = model.record_diagnostics(conn, current, summarise(answer), now)
        queue(runtime, conn, schedules, ctx.correlation_id)
        events.ticket_event(
            runtime,
            conn,
            updated,
            "TroubleTicketAttributeValueChangeEvent",
            ctx.correlation_id,
            now,
        )
    return Reply(_view(ctx, updated, now))


@api.operation("escalateToNetwork")
def escalate_to_network(ctx: RequestContext) -> Reply:
    runtime = ctx.runtime
    row = model.get_ticket(ctx.conn, ctx.partner_id, ctx.params["id"])
    model.require_network_escalation(row)
    request_body: dict[str, Any] = {
        "externalId": row.id,
        "category": ctx.body["category"],
        "severity": row.severity,
        "description": ctx.body.get("description") or row.description,
    }
    try:
        request_body["subscriptionId"] = model.subscription_of(row)
    except errors.NoSubscription:
        pass  # a coverage problem need not concern one subscriber
    status, answer = _call_mvne(ctx, "POST", NETWORK_TICKET_PATH, request_body)
    if status == 404:
        raise errors.SubscriptionUnknownAtMvne("The MVNE knows no such subscription")
    if status in (409, 422):
        raise errors.NetworkTicketRefused(
            f"The MVNE refused the network ticket ({answer.get('code', status)})",
            peerStatus=status,
        )
    if status not in (200, 201):
        raise errors.MvneUnavailable(f"The MVNE answered {status}", peerStatus=status)
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        current = model.get_ticket(conn, ctx.partner_id, row.id)
        href = f"{runtime.peer_base_url('mvne')}{NETWORK_TICKET_PATH}/{answer['id']}"
        updated, changed = model.record_network_ticket(conn, current, answer, href, now)
        if changed:  # a repeated escalation changes nothing a listener should hear about
            events.ticket_event(
                runtime,
                conn,
                updated,
                "TroubleTicketAttributeValueChangeEvent",
                ctx.correlation_id,
                now,
            )
    return Reply(_view(ctx, updated, now))


# --- event hub -----------------------------------------------------------------------------------


TICKET_HUB = Hub("care", events.TICKET_API, HUB_PATH)


@api.operation("registerTicketListener", write=True)
def register_ticket_listener(ctx: RequestContext) -> Reply:
    return TICKET_HUB.register(ctx)


@api.operation("getTicketListener")
def get_ticket_listener(ctx: RequestContext) -> Reply:
    return TICKET_HUB.get(ctx)


@api.operation("unregisterTicketListener", write=True)
def unregister_ticket_listener(ctx: RequestContext) -> Reply:
    return TICKET_HUB.unregister(ctx)


__all__ = ["api", "TICKET_PATH"]
