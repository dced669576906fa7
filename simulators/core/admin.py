"""The control plane (`/__admin`): health, reset, seed, clock, journal, audit, outbox,
callback endpoints, steps.

Role packages add their own admin operations (partner lifecycle, traffic) to
`admin_api`; this module holds only what every stack has.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Any

from flask import request
from sqlalchemy import Column, Connection, String, delete, select

from . import ratelimit
from .clock import isoformat, parse_iso
from .http import Reply, RequestContext, RoleApi, paging
from .idempotency import idempotency_table
from .outbox import endpoint_table, hub_table, outbox_table
from .problems import PermissionDenied
from .store import CORE_ROLE, role_table
from .tasks import task_table
from .tenancy import forget_partners

admin_api = RoleApi("admin")

stack_state = role_table(
    CORE_ROLE,
    "stack_state",
    Column("key", String(40), primary_key=True),
    Column("value", String(200), nullable=False),
)

Seeder = Callable[[Any, Connection, int], None]
_ROLE_SCOPED_CORE_TABLES = (
    task_table,
    outbox_table,
    endpoint_table,
    hub_table,
    idempotency_table,
    ratelimit.bucket_table,
)


class AdminForbidden(PermissionDenied):
    code = "ADMIN_FORBIDDEN"
    title = "The control plane only answers loopback callers or a valid admin token"


def admin_authenticator(runtime: Any, _conn: Connection, _operation: Any) -> None:
    """Loopback callers pass; others need X-Admin-Token equal to HANDOFF_ADMIN_TOKEN."""
    token = runtime.settings.admin_token
    supplied = request.headers.get("X-Admin-Token", "")
    if token and supplied and hmac.compare_digest(token.encode(), supplied.encode()):
        return None
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise AdminForbidden("Call from loopback or send X-Admin-Token")
    return None


_SEED = select(stack_state.c.value).where(stack_state.c.key == "seed")


def current_seed(conn: Connection, default: int) -> int:
    value = conn.execute(_SEED).scalar()
    return int(value) if value is not None else default


def _save_seed(conn: Connection, seed: int) -> None:
    conn.execute(delete(stack_state).where(stack_state.c.key == "seed"))
    conn.execute(stack_state.insert().values(key="seed", value=str(seed)))


def seed_all(runtime: Any, conn: Connection, roles: list[str] | None = None) -> int:
    """Run each role's seeder (they only add what is missing)."""
    seed = current_seed(conn, runtime.settings.faker_seed)
    for role, seeder in runtime.seeders.items():
        if roles is None or role in roles:
            seeder(runtime, conn, seed)
    return seed


def reset_state(runtime: Any, role: str | None, seed: int | None = None) -> tuple[list[str], int]:
    forget_partners()
    runtime.rate_limits.clear(role)
    store = runtime.store
    with store.write() as conn:
        keep_seed = current_seed(conn, runtime.settings.faker_seed) if seed is None else seed
        if role is None:
            store.clear(conn)  # fault rules included: a full reset switches every fault off
            _save_seed(conn, keep_seed)
            seed_all(runtime, conn)
        else:
            _reset_role(runtime, conn, role)
    # Again now that the reset is committed: a worker that read a partner in between holds
    # the state from before it.
    forget_partners()
    if role is None:
        runtime.faults.changed()
        return ["core", *runtime.role_operations], keep_seed
    return [role], keep_seed


def _reset_role(runtime: Any, conn: Connection, role: str) -> None:
    """One role's data back to seeded; fault rules and partners stay."""
    runtime.store.clear(conn, role)
    for table in _ROLE_SCOPED_CORE_TABLES:
        conn.execute(table.delete().where(table.c.role == role))
    seed_all(runtime, conn, [role])


def _iso_or_none(value: float | None) -> str | None:
    return None if value is None else isoformat(value)


@admin_api.operation("getHealth")
def get_health(ctx: RequestContext) -> Reply:
    runtime = ctx.runtime
    return Reply(
        {
            "status": "ok",
            "roles": list(runtime.role_operations),
            "store": runtime.store.url.get_backend_name(),
            "clock": runtime.clock.describe(),
        }
    )


@admin_api.operation("resetState")
def reset(ctx: RequestContext) -> Reply:
    role = (ctx.body or {}).get("role")
    roles, seed = reset_state(ctx.runtime, role)
    return Reply({"reset": roles, "seed": seed})


@admin_api.operation("seedState")
def seed(ctx: RequestContext) -> Reply:
    roles, seed_value = reset_state(ctx.runtime, None, seed=int(ctx.body["seed"]))
    return Reply({"reset": roles, "seed": seed_value})


@admin_api.operation("getClock")
def get_clock(ctx: RequestContext) -> Reply:
    return Reply(ctx.runtime.clock.describe())


@admin_api.operation("setClock")
def set_clock(ctx: RequestContext) -> Reply:
    body = ctx.body or {}
    epoch = parse_iso(body["now"]) if "now" in body else None
    ctx.runtime.clock.set(epoch, body.get("frozen"))
    ctx.runtime.settle()
    return Reply(ctx.runtime.clock.describe())


@admin_api.operation("advanceClock")
def advance_clock(ctx: RequestContext) -> Reply:
    ctx.runtime.advance(float(ctx.body["seconds"]))
    return Reply(ctx.runtime.clock.describe())


@admin_api.operation("settle")
def settle(ctx: RequestContext) -> Reply:
    ran = ctx.runtime.settle()
    return Reply({"ran": ran, "pendingSteps": ctx.runtime.tasks.pending_count()})


@admin_api.operation("listJournal")
def list_journal(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = ctx.runtime.journal.query(
        correlation_id=ctx.params.get("correlationId"),
        role=ctx.params.get("role"),
        partner_id=ctx.params.get("partnerId"),
        direction=ctx.params.get("direction"),
        limit=limit,
        offset=offset,
    )
    entries = [
        {
            "id": row["id"],
            "at": isoformat(row["at"]),
            "role": row["role"],
            "direction": row["direction"],
            "method": row["method"],
            "url": row["url"],
            "operationId": row["operation_id"],
            "status": row["status"],
            "correlationId": row["correlation_id"],
            "partnerId": row["partner_id"],
            "durationMs": row["duration_ms"],
            "requestBody": row["request_body"],
            "responseBody": row["response_body"],
            "error": row["error"],
            "extra": row["extra"],
        }
        for row in rows
    ]
    return Reply(entries, headers={"X-Total-Count": str(total)})


@admin_api.operation("listAudit")
def list_audit(ctx: RequestContext) -> Reply:
    from . import audit

    offset, limit = paging(ctx)
    total, rows = audit.query(
        ctx.conn,
        correlation_id=ctx.params.get("correlationId"),
        partner_id=ctx.params.get("partnerId"),
        entity_id=ctx.params.get("entityId"),
        limit=limit,
        offset=offset,
    )
    records = [
        {
            "id": row["id"],
            "at": isoformat(row["at"]),
            "role": row["role"],
            "actor": row["actor"],
            "partnerId": row["partner_id"],
            "action": row["action"],
            "entityType": row["entity_type"],
            "entityId": row["entity_id"],
            "correlationId": row["correlation_id"],
            "details": row["details"],
        }
        for row in rows
    ]
    return Reply(records, headers={"X-Total-Count": str(total)})


def delivery_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "webhookId": row["message_id"],
        "partnerId": row["partner_id"],
        "eventType": row["event_type"],
        "url": row["url"],
        "status": row["status"],
        "attempts": row["attempts"],
        "dueAt": isoformat(row["due_at"]),
        "lastStatus": row["last_status"],
        "lastError": row["last_error"],
        "correlationId": row["correlation_id"],
        "deliveredAt": _iso_or_none(row["delivered_at"]),
        "payload": row["payload"],
    }


@admin_api.operation("listOutbox")
def list_outbox(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = ctx.runtime.outbox.list(
        status=ctx.params.get("status"),
        partner_id=ctx.params.get("partnerId"),
        limit=limit,
        offset=offset,
    )
    return Reply([delivery_view(row) for row in rows], headers={"X-Total-Count": str(total)})


@admin_api.operation("redeliverCallback", write=True)
def redeliver(ctx: RequestContext) -> Reply:
    delivery_id = int(ctx.params["deliveryId"])
    ctx.runtime.outbox.redeliver(ctx.conn, delivery_id, ctx.now())
    row = ctx.conn.execute(select(outbox_table).where(outbox_table.c.id == delivery_id)).one()
    return Reply(delivery_view(dict(row._mapping)))


@admin_api.operation("setPartnerRateLimit", write=True)
def set_partner_rate_limit(ctx: RequestContext) -> Reply:
    partner = ratelimit.set_limit(
        ctx.runtime,
        ctx.conn,
        partner_id=ctx.params["partnerId"],
        limit=ratelimit.RateLimit.from_json(ctx.body["rateLimit"]),
        now=ctx.now(),
        actor="admin",
        correlation_id=ctx.correlation_id,
    )
    return Reply(ratelimit.limit_view(partner))


def endpoint_view(item: dict[str, Any]) -> dict[str, Any]:
    hub = item["hub"]
    return {
        "hubId": hub.id,
        "partnerId": hub.partner_id,
        "role": hub.role,
        "api": hub.api,
        "callback": hub.callback,
        "delivered": item["delivered"],
        "queued": item["queued"],
        "retrying": item["retrying"],
        "nextAttemptAt": _iso_or_none(item["next_attempt_at"]),
        "deadLettered": item["dead_lettered"],
        "skipped": item["skipped"],
        "consecutiveDeadLetters": hub.consecutive_dead or 0,
        "disabled": hub.disabled_at is not None,
        "disabledAt": _iso_or_none(hub.disabled_at),
        "disabledReason": hub.disabled_reason,
    }


@admin_api.operation("listCallbacks")
def list_callbacks(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, found = ctx.runtime.outbox.endpoints(
        ctx.conn, partner_id=ctx.params.get("partnerId"), limit=limit, offset=offset
    )
    return Reply([endpoint_view(item) for item in found], headers={"X-Total-Count": str(total)})


@admin_api.operation("enableCallback", write=True)
def enable_callback(ctx: RequestContext) -> Reply:
    hub_id = ctx.params["hubId"]
    ctx.runtime.outbox.enable(ctx.conn, hub_id)
    return Reply(endpoint_view(ctx.runtime.outbox.endpoint(ctx.conn, hub_id)))


@admin_api.operation("redriveCallbacks", write=True)
def redrive_callbacks(ctx: RequestContext) -> Reply:
    hub_id = ctx.params["hubId"]
    queued = ctx.runtime.outbox.redrive(ctx.conn, hub_id, ctx.now())
    endpoint = endpoint_view(ctx.runtime.outbox.endpoint(ctx.conn, hub_id))
    return Reply({"requeued": queued, "endpoint": endpoint})


@admin_api.operation("listTasks")
def list_tasks(ctx: RequestContext) -> Reply:
    rows = ctx.runtime.tasks.list(ctx.params.get("status"), int(ctx.params.get("limit", 100)))
    return Reply(
        [
            {
                "id": row["id"],
                "role": row["role"],
                "kind": row["kind"],
                "status": row["status"],
                "attempts": row["attempts"],
                "dueAt": isoformat(row["due_at"]),
                "correlationId": row["correlation_id"],
                "lastError": row["last_error"],
            }
            for row in rows
        ]
    )
