"""Event hubs and the callback outbox.

A partner subscribes through a TMF hub; a state change writes one outbox row
per matching subscription in its own transaction; a dispatcher delivers the
rows signed with Standard Webhooks headers, retrying with exponential backoff
and jitter, and dead-letters a row after a bounded number of attempts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    Integer,
    String,
    Text,
    bindparam,
    func,
    select,
)
from standardwebhooks import Webhook

from .clock import isoformat
from .problems import DomainError, NotFound
from .store import CORE_ROLE, Store, role_table
from .tasks import DONE, FAILED, PENDING, claim_due, next_due_at

if TYPE_CHECKING:
    from .runtime import Runtime

DELIVERED = DONE
DEAD = FAILED
RESPONSE_LIMIT = 64 * 1024
# Standard Webhooks retry guide: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
RETRY_SCHEDULE_S = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)

hub_table = role_table(
    CORE_ROLE,
    "hub_subscription",
    Column("id", String(40), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("api", String(60), nullable=False),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("callback", Text, nullable=False),
    Column("query", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

outbox_table = role_table(
    CORE_ROLE,
    "outbox",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("hub_id", String(40), nullable=False),
    Column("event_type", String(80), nullable=False),
    Column("url", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("correlation_id", String(256), nullable=True),
    Column("status", String(10), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("due_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
)

_HUBS_OF = select(hub_table).where(
    hub_table.c.role == bindparam("role"),
    hub_table.c.api == bindparam("api"),
    hub_table.c.partner_id == bindparam("partner_id"),
)

_FORBIDDEN_NETWORKS = [
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, cloud metadata services
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba metadata
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IPv6 metadata
    ipaddress.ip_network("0.0.0.0/8"),
]


def webhook_secret(secret_key: str, hub_id: str) -> str:
    """Derived per subscription, so no signing secret is ever stored."""
    digest = hmac.new(secret_key.encode(), f"webhook:{hub_id}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(digest[:24]).decode()


def check_callback_url(url: str, allow_hosts: tuple[str, ...]) -> None:
    """Refuse targets outside loopback and the allow-list (OWASP API7, SSRF).

    Only allow-listed names and `localhost` are resolved, and even they may not
    land on link-local or metadata addresses; other names are refused unresolved.
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme
        host = (parts.hostname or "").lower()
        port = parts.port or 80
    except ValueError:
        scheme, host, port = "", "", 0
    if scheme not in ("http", "https") or not host:
        raise CallbackRefused("callback must be an absolute http(s) URL", field="callback")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host not in allow_hosts and host != "localhost":
            raise CallbackRefused(
                f"callback host {host} is neither loopback nor in the allow-list "
                "(HANDOFF_CALLBACK_ALLOW_HOSTS)",
                field="callback",
            ) from None
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        except (OSError, ValueError):
            addresses = []
    if any(address in network for address in addresses for network in _FORBIDDEN_NETWORKS):
        raise CallbackRefused(f"callback host {host} is a forbidden address", field="callback")
    if host in allow_hosts or (addresses and all(address.is_loopback for address in addresses)):
        return
    raise CallbackRefused(
        f"callback host {host} is neither loopback nor in the allow-list "
        "(HANDOFF_CALLBACK_ALLOW_HOSTS)",
        field="callback",
    )


class CallbackRefused(DomainError):
    code = "CALLBACK_NOT_ALLOWED"
    status = 422
    title = "The callback URL is not an allowed target"


def _event_filter(query: str | None) -> set[str] | None:
    """TMF hub query `eventType=A,B`; anything else means every event."""
    if not query:
        return None
    for clause in query.split("&"):
        name, _, value = clause.partition("=")
        if name.strip() == "eventType" and value:
            return {item.strip() for item in value.split(",") if item.strip()}
    return None


def hub_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "callback": row.callback, "query": row.query}


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- hub subscriptions --------------------------------------------------------

    def subscribe(
        self,
        conn: Connection,
        *,
        role: str,
        api: str,
        partner_id: str,
        callback: str,
        query: str | None,
        now: float,
        allow_hosts: tuple[str, ...],
    ) -> Any:
        check_callback_url(callback, allow_hosts)
        hub_id = uuid.uuid4().hex
        conn.execute(
            hub_table.insert().values(
                id=hub_id,
                role=role,
                api=api,
                partner_id=partner_id,
                callback=callback,
                query=query,
                created_at=now,
            )
        )
        return conn.execute(select(hub_table).where(hub_table.c.id == hub_id)).one()

    def get_hub(
        self, conn: Connection, *, role: str, api: str, partner_id: str, hub_id: str
    ) -> Any:
        row = conn.execute(
            select(hub_table).where(
                hub_table.c.id == hub_id,
                hub_table.c.role == role,
                hub_table.c.api == api,
                hub_table.c.partner_id == partner_id,
            )
        ).first()
        if row is None:
            raise NotFound(f"No hub subscription {hub_id}")
        return row

    def unsubscribe(
        self, conn: Connection, *, role: str, api: str, partner_id: str, hub_id: str
    ) -> None:
        self.get_hub(conn, role=role, api=api, partner_id=partner_id, hub_id=hub_id)
        conn.execute(hub_table.delete().where(hub_table.c.id == hub_id))

    # --- events -------------------------------------------------------------------

    def publish(
        self,
        conn: Connection,
        *,
        role: str,
        api: str,
        partner_id: str,
        event_type: str,
        resource_name: str,
        resource: dict[str, Any],
        correlation_id: str | None,
        now: float,
    ) -> int:
        """Queue one signed delivery per matching subscription, in the caller's transaction."""
        hubs = conn.execute(_HUBS_OF, {"role": role, "api": api, "partner_id": partner_id}).all()
        queued = 0
        for hub in hubs:
            wanted = _event_filter(hub.query)
            if wanted is not None and event_type not in wanted:
                continue
            event_id = uuid.uuid4().hex
            envelope = {
                "eventId": event_id,
                "eventTime": isoformat(now),
                "eventType": event_type,
                "correlationId": correlation_id,
                "domain": role,
                "event": {resource_name: resource},
            }
            listener = event_type[0].lower() + event_type[1:]
            conn.execute(
                outbox_table.insert().values(
                    message_id=f"msg_{event_id}",
                    role=role,
                    partner_id=partner_id,
                    hub_id=hub.id,
                    event_type=event_type,
                    url=hub.callback.rstrip("/") + f"/listener/{listener}",
                    payload=envelope,
                    correlation_id=correlation_id,
                    status=PENDING,
                    attempts=0,
                    due_at=now,
                    created_at=now,
                )
            )
            queued += 1
        return queued

    # --- delivery -----------------------------------------------------------------

    def deliver_due(self, runtime: Runtime, limit: int = 50) -> int:
        now = runtime.clock.now()
        with self.store.write() as conn:
            rows = claim_due(conn, self.store, outbox_table, now, limit)
        for row in rows:
            self._deliver(runtime, row)
        return len(rows)

    def _deliver(self, runtime: Runtime, row: Any) -> None:
        settings = runtime.settings
        body = json.dumps(row.payload, separators=(",", ":"))
        # Wall time, not simulated: receivers check it against their own clock (5 min window).
        sent_at = time.time()
        headers = {
            "content-type": "application/json",
            "webhook-id": row.message_id,
            "webhook-timestamp": str(int(sent_at)),
            "webhook-signature": Webhook(webhook_secret(settings.secret_key, row.hub_id)).sign(
                row.message_id, datetime.fromtimestamp(int(sent_at), UTC), body
            ),
            "x-correlation-id": row.correlation_id or "",
        }
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        started = time.perf_counter()
        try:
            check_callback_url(row.url, settings.callback_allow_hosts)
            with requests.post(
                row.url,
                data=body,
                headers=headers,
                timeout=settings.callback_timeout_s,
                allow_redirects=False,
                stream=True,
            ) as response:
                status = response.status_code
                response.raw.read(RESPONSE_LIMIT, decode_content=True)
                retry_after = _retry_after(response.headers.get("retry-after"))
        except (requests.RequestException, DomainError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        runtime.journal.record(
            role=row.role,
            direction="callback",
            method="POST",
            url=row.url,
            status=status,
            correlation_id=row.correlation_id,
            partner_id=row.partner_id,
            duration_ms=(time.perf_counter() - started) * 1000,
            request_body=body[:4096],
            error=error,
            extra={"webhookId": row.message_id, "attempt": row.attempts + 1},
        )
        attempts = row.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": status,
            "last_error": error,
            "lease_until": None,
        }
        if status is not None and 200 <= status < 300:
            values.update(status=DELIVERED, delivered_at=runtime.clock.now())
        elif status == 410 or attempts >= settings.callback_max_attempts:
            # 410 Gone: the receiver asked us to stop (Standard Webhooks).
            values["status"] = DEAD
        else:
            base = RETRY_SCHEDULE_S[min(attempts, len(RETRY_SCHEDULE_S) - 1)]
            delay = max(base * (0.8 + 0.4 * _jitter()), retry_after or 0.0)
            values.update(status=PENDING, due_at=runtime.clock.now() + delay)
        with self.store.write() as conn:
            conn.execute(outbox_table.update().where(outbox_table.c.id == row.id).values(**values))

    def list(
        self,
        *,
        status: str | None = None,
        partner_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        conditions = []
        if status:
            conditions.append(outbox_table.c.status == status)
        if partner_id:
            conditions.append(outbox_table.c.partner_id == partner_id)
        with self.store.read() as conn:
            total = conn.execute(
                select(func.count()).select_from(outbox_table).where(*conditions)
            ).scalar_one()
            rows = conn.execute(
                select(outbox_table)
                .where(*conditions)
                .order_by(outbox_table.c.id)
                .offset(offset)
                .limit(limit)
            ).all()
        return total, [dict(row._mapping) for row in rows]

    def next_due(self) -> float | None:
        with self.store.read() as conn:
            return next_due_at(conn, outbox_table)

    def redeliver(self, conn: Connection, delivery_id: int, now: float) -> None:
        updated = conn.execute(
            outbox_table.update()
            .where(outbox_table.c.id == delivery_id)
            .values(status=PENDING, due_at=now, attempts=0, lease_until=None)
        )
        if updated.rowcount == 0:
            raise NotFound(f"No outbox delivery {delivery_id}")


def _jitter() -> float:
    return uuid.uuid4().int % 1000 / 1000.0


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
