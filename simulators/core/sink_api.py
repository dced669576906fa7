"""HTTP of the built-in callback sink: `/__sink/<name>/...` receives, `/__admin/sinks` reports."""

from __future__ import annotations

import time
from typing import Any

from flask import g, request

from . import sink
from .admin import admin_api
from .clock import isoformat
from .http import Reply, RequestContext, RoleApi, paging
from .problems import problem

sink_api = RoleApi("sink")

# The hang a sink is told to show; a test replaces it to observe the wait without taking it.
sleep = time.sleep


def _receive(ctx: RequestContext, name: str, path: str) -> Reply:
    runtime = ctx.runtime
    raw: bytes = g.get("raw_body") or b""
    headers = {key.lower(): value for key, value in request.headers.items()}
    body = ctx.body
    event_type = body.get("eventType") if isinstance(body, dict) else None
    if not isinstance(event_type, str):
        # TMF listeners are `{callback}/listener/{eventName}`.
        head, _, last = path.rpartition("/")
        event_type = last if head.endswith("listener") and last else None
    verdict = runtime.sink_signatures.verdict(ctx.conn, name, raw, headers)
    received = runtime.sink_deliveries.submit(
        {
            "name": name,
            "path": path,
            "headers": headers,
            "body": raw,
            "event_type": event_type,
            "signature": verdict,
        }
    )
    behaviour = received.behaviour
    # Outside the transaction: a slow endpoint holds its own worker, never the store.
    if behaviour is not None and behaviour.hang_s > 0:
        sleep(behaviour.hang_s)
    status = received.status
    answer_headers: dict[str, str] = {}
    if behaviour is not None and behaviour.retry_after is not None:
        answer_headers["Retry-After"] = str(behaviour.retry_after)
    if status >= 400:
        document = problem(
            status,
            "SINK_TOLD_TO_FAIL",
            "The sink was told to answer this status",
            f"Sink {name} answers {status} as configured through /__admin/sinks/{name}",
            correlation_id=ctx.correlation_id,
            instance=request.path,
            retryable=status in (408, 429, 500, 502, 503, 504),
        )
        return Reply(document, status, answer_headers)
    if status == 204:
        return Reply(None, 204, answer_headers)
    return Reply(
        {
            "received": True,
            "sink": name,
            "webhookId": received.webhook_id,
            "signature": received.signature,
            "duplicate": received.duplicate,
        },
        status,
        answer_headers,
    )


@sink_api.operation("receiveCallback")
def receive_callback(ctx: RequestContext) -> Reply:
    return _receive(ctx, ctx.params["name"], "")


@sink_api.operation("receiveCallbackAt")
def receive_callback_at(ctx: RequestContext) -> Reply:
    return _receive(ctx, ctx.params["name"], ctx.params["path"])


# --- control plane --------------------------------------------------------------------------


def _iso(value: float | None) -> str | None:
    return None if value is None else isoformat(value)


def sink_view(ctx: RequestContext, name: str) -> dict[str, Any]:
    found = sink.summary(ctx.conn, name)
    behaviour = found["behaviour"]
    return {
        "name": name,
        "url": sink.sink_url(request.host_url, name),
        "received": found["received"],
        "uniqueWebhookIds": found["unique_webhook_ids"],
        "duplicates": found["duplicates"],
        "invalidSignatures": found["invalid_signatures"],
        "missingSignatures": found["missing_signatures"],
        "firstReceivedAt": _iso(found["first_received_at"]),
        "lastReceivedAt": _iso(found["last_received_at"]),
        "behaviour": behaviour.view() if behaviour else None,
    }


@admin_api.operation("getSink")
def get_sink(ctx: RequestContext) -> Reply:
    return Reply(sink_view(ctx, ctx.params["name"]))


@admin_api.operation("configureSink", write=True)
def configure_sink(ctx: RequestContext) -> Reply:
    body = ctx.body or {}
    name = ctx.params["name"]
    sink.configure(
        ctx.conn,
        name,
        status=body.get("status"),
        retry_after=body.get("retryAfter"),
        hang_s=float(body.get("hangSeconds", 0)),
        count=body.get("count"),
    )
    return Reply(sink_view(ctx, name))


@admin_api.operation("clearSink", write=True)
def clear_sink(ctx: RequestContext) -> Reply:
    sink.clear(ctx.conn, ctx.params["name"])
    return Reply(None, 204)


@admin_api.operation("listSinkDeliveries")
def list_sink_deliveries(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = sink.deliveries(
        ctx.conn,
        ctx.params["name"],
        webhook_id=ctx.params.get("webhookId"),
        event_type=ctx.params.get("eventType"),
        signature=ctx.params.get("signature"),
        limit=limit,
        offset=offset,
    )
    items = [
        {
            "id": row["id"],
            "sink": row["sink"],
            "path": row["path"],
            "webhookId": row["webhook_id"],
            "webhookTimestamp": row["webhook_timestamp"],
            "eventType": row["event_type"],
            "correlationId": row["correlation_id"],
            "signature": row["signature"],
            "answeredStatus": row["answered_status"],
            "receivedAt": isoformat(row["received_at"]),
            "bodyBytes": row["body_bytes"],
            "body": row["body"],
        }
        for row in rows
    ]
    return Reply(items, headers={"X-Total-Count": str(total)})
