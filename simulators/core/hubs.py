"""TMF event hubs over HTTP: register, read and remove a listener, the same for every role.

Each role's `api.py` names its hub (role, the TMF API the events belong to, the hub's
path) and the partner it speaks for; the outbox keeps the subscriptions and delivers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .http import Reply, RequestContext
from .outbox import hub_view, webhook_secret


@dataclass(frozen=True)
class Hub:
    """One role's event hub: `api` scopes its subscriptions, `path` is where it is served
    (relative to the role's base URL, ending in `/hub`)."""

    role: str
    api: str
    path: str

    def register(self, ctx: RequestContext, partner_id: str | None = None) -> Reply:
        """Subscribe the caller's callback; the answer carries the signing secret, once."""
        row = ctx.runtime.outbox.subscribe(
            ctx.conn,
            role=self.role,
            api=self.api,
            partner_id=partner_id or ctx.partner_id,
            callback=ctx.body["callback"],
            query=ctx.body.get("query"),
            now=ctx.now(),
            allow_hosts=ctx.runtime.settings.callback_allow_hosts,
        )
        body = hub_view(row)
        body["secret"] = webhook_secret(ctx.runtime.settings.secret_key, row.id)
        return Reply(body, 201, {"Location": ctx.href(f"{self.path}/{row.id}")})

    def get(self, ctx: RequestContext, partner_id: str | None = None) -> Reply:
        """One of the caller's own listeners (another partner's answers 404)."""
        row = ctx.runtime.outbox.get_hub(
            ctx.conn,
            role=self.role,
            api=self.api,
            partner_id=partner_id or ctx.partner_id,
            hub_id=ctx.params["id"],
        )
        return Reply(hub_view(row))

    def unregister(self, ctx: RequestContext, partner_id: str | None = None) -> Reply:
        """Remove one of the caller's own listeners; nothing more is delivered to it."""
        ctx.runtime.outbox.unsubscribe(
            ctx.conn,
            role=self.role,
            api=self.api,
            partner_id=partner_id or ctx.partner_id,
            hub_id=ctx.params["id"],
        )
        return Reply(None, 204)
