"""Partner lifecycle on the control plane: onboard, grant or suspend a capability, terminate."""

from __future__ import annotations

from simulators.core import tenancy
from simulators.core.admin import admin_api, current_seed
from simulators.core.http import Reply, RequestContext

from . import partners

ADMIN = "admin"


@admin_api.operation("listPartners")
def list_partners(ctx: RequestContext) -> Reply:
    found = tenancy.list_partners(ctx.conn, partners.PARTNER_ROLE)
    return Reply([partners.partner_view(ctx.conn, partner) for partner in found])


@admin_api.operation("getPartner")
def get_partner(ctx: RequestContext) -> Reply:
    partner = partners.mvne_partner(ctx.conn, ctx.params["partnerId"])
    return Reply(partners.partner_view(ctx.conn, partner))


@admin_api.operation("onboardPartner", write=True)
def onboard_partner(ctx: RequestContext) -> Reply:
    body = ctx.body
    partner, key = partners.onboard(
        ctx.runtime,
        ctx.conn,
        partner_id=body["id"],
        name=body["name"],
        agreement=body["agreement"],
        seed=current_seed(ctx.conn, ctx.runtime.settings.faker_seed),
        now=ctx.now(),
        actor=ADMIN,
        correlation_id=ctx.correlation_id,
    )
    view = partners.partner_view(ctx.conn, partner)
    view["apiKey"] = key
    return Reply(view, 201, {"Location": ctx.href(f"/partners/{partner.id}")})


@admin_api.operation("setPartnerCapability", write=True)
def set_partner_capability(ctx: RequestContext) -> Reply:
    partner = partners.set_capability(
        ctx.conn,
        partner_id=ctx.params["partnerId"],
        capability=ctx.params["capability"],
        status=ctx.body["status"],
        now=ctx.now(),
        actor=ADMIN,
        correlation_id=ctx.correlation_id,
    )
    return Reply(partners.partner_view(ctx.conn, partner))


@admin_api.operation("terminatePartner", write=True)
def terminate_partner(ctx: RequestContext) -> Reply:
    partner, cancelled, terminated = partners.terminate(
        ctx.runtime,
        ctx.conn,
        partner_id=ctx.params["partnerId"],
        now=ctx.now(),
        actor=ADMIN,
        correlation_id=ctx.correlation_id,
    )
    return Reply(
        {
            "partner": partners.partner_view(ctx.conn, partner),
            "cancelledOrders": cancelled,
            "terminatedSubscriptions": terminated,
        }
    )
