"""The built-in callback sink: a partner's webhook endpoint the stack serves itself.

A hub subscription whose callback is `<stack>/__sink/<name>` has its deliveries
recorded here with the verdict on their Standard Webhooks signature; the sink can
be told to answer errors or hang, so retries, dead letters and disabled
endpoints show end to end. Signatures are checked with the secrets derived for
the subscriptions that point at the sink: no secret is stored.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    delete,
    func,
    literal_column,
    select,
)
from standardwebhooks.webhooks import WebhookVerificationError

from .clock import Clock
from .group_commit import GroupCommit
from .outbox import hub_table, signer, webhook_secret
from .store import (
    CORE_ROLE,
    Store,
    count_and_page,
    delete_equal,
    role_table,
    update_equal,
)

PREFIX = "/__sink"
BODY_LIMIT = 64 * 1024
WEBHOOK_ID_LIMIT = 256
VALID = "valid"
INVALID = "invalid"
MISSING = "missing"
# Subscriptions pointing at a sink are reread at most this often per process, and at once
# when a signature does not match what is known (a subscription made a moment ago).
SECRETS_TTL_S = 1.0

sink_delivery_table = role_table(
    CORE_ROLE,
    "sink_delivery",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sink", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("webhook_id", String(WEBHOOK_ID_LIMIT), nullable=True),
    Column("webhook_timestamp", String(32), nullable=True),
    Column("event_type", String(120), nullable=True),
    Column("correlation_id", String(256), nullable=True),
    Column("signature", String(10), nullable=False),
    Column("answered_status", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("body_bytes", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_sink_delivery_sink_webhook", "sink", "webhook_id"),
)

sink_behaviour_table = role_table(
    CORE_ROLE,
    "sink_behaviour",
    Column("sink", String(64), primary_key=True),
    Column("status", Integer, nullable=False),
    Column("retry_after", Integer, nullable=True),
    Column("hang_s", Float, nullable=False, default=0.0),
    # Deliveries left to misbehave on; NULL: every one.
    Column("remaining", Integer, nullable=True),
)

_INSERT = sink_delivery_table.insert()
_BEHAVIOUR = select(sink_behaviour_table).where(sink_behaviour_table.c.sink == bindparam("sink"))
# Whether this webhook-id came before, and the sink's behaviour (NULLs when healthy), in
# one statement: a delivery is a handful of statements, and each costs more in SQLAlchemy
# than in SQLite.
_SEEN_AND_BEHAVIOUR = select(
    select(sink_delivery_table.c.id)
    .where(
        sink_delivery_table.c.sink == bindparam("sink"),
        sink_delivery_table.c.webhook_id == bindparam("webhook_id"),
    )
    .exists()
    .label("seen"),
    sink_behaviour_table.c.status,
    sink_behaviour_table.c.retry_after,
    sink_behaviour_table.c.hang_s,
    sink_behaviour_table.c.remaining,
).select_from(
    select(literal_column("1").label("one"))
    .subquery()
    .outerjoin(sink_behaviour_table, sink_behaviour_table.c.sink == bindparam("sink"))
)


@dataclass(frozen=True)
class Behaviour:
    status: int
    retry_after: int | None
    hang_s: float
    remaining: int | None

    def view(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "retryAfter": self.retry_after,
            "hangSeconds": self.hang_s,
            "remaining": self.remaining,
        }


@dataclass(frozen=True)
class Received:
    """What the sink answers for one delivery, decided in the transaction that recorded it."""

    webhook_id: str | None
    signature: str
    duplicate: bool
    behaviour: Behaviour | None

    @property
    def status(self) -> int:
        return self.behaviour.status if self.behaviour else 200


def sink_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}{PREFIX}/{name}"


def _points_at(callback: str, name: str) -> bool:
    try:
        path = urlsplit(callback).path.rstrip("/")
    except ValueError:
        return False
    own = f"{PREFIX}/{name}"
    return path == own or path.startswith(own + "/")


class SignatureCheck:
    """The secrets of the subscriptions whose callback is a sink, cached per process."""

    def __init__(self, secret_key: str) -> None:
        self.secret_key = secret_key
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def _secrets(self, conn: Connection, name: str, fresh: bool) -> list[str]:
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and not fresh and cached[0] > time.monotonic():
            return cached[1]
        # LIKE narrows the rows; the URL's path decides (a `_` in LIKE matches any character).
        rows = conn.execute(
            select(hub_table.c.id, hub_table.c.callback).where(
                hub_table.c.callback.contains(f"{PREFIX}/{name}", autoescape=True)
            )
        ).all()
        secrets = [
            webhook_secret(self.secret_key, row.id)
            for row in rows
            if _points_at(row.callback, name)
        ]
        with self._lock:
            self._cache[name] = (time.monotonic() + SECRETS_TTL_S, secrets)
        return secrets

    def verdict(self, conn: Connection, name: str, body: bytes, headers: dict[str, str]) -> str:
        if not headers.get("webhook-signature"):
            return MISSING
        for fresh in (False, True):
            for secret in self._secrets(conn, name, fresh):
                try:
                    signer(secret).verify(body, headers, json_parse=False)
                    return VALID
                except (WebhookVerificationError, ValueError, UnicodeDecodeError):
                    continue
        return INVALID


def receive(
    conn: Connection,
    *,
    name: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    event_type: str | None,
    signature: str,
    now: float,
) -> Received:
    """Record one delivery and apply the sink's behaviour, in the caller's write transaction."""
    # Cut as stored, so a repeat of a longer id is recognised as the one it was stored as.
    webhook_id = (headers.get("webhook-id") or "")[:WEBHOOK_ID_LIMIT] or None
    found = conn.execute(_SEEN_AND_BEHAVIOUR, {"sink": name, "webhook_id": webhook_id}).one()
    duplicate = webhook_id is not None and bool(found.seen)
    behaviour = None if found.status is None else _take_behaviour(conn, name, found)
    conn.execute(
        _INSERT,
        {
            "sink": name,
            "path": path,
            "webhook_id": webhook_id,
            "webhook_timestamp": (headers.get("webhook-timestamp") or None),
            "event_type": event_type[:120] if event_type else None,
            "correlation_id": headers.get("x-correlation-id") or None,
            "signature": signature,
            "answered_status": behaviour.status if behaviour else 200,
            "received_at": now,
            "body_bytes": len(body),
            "body": body[:BODY_LIMIT].decode("utf-8", "replace").replace("\x00", "\\u0000"),
        },
    )
    return Received(webhook_id, signature, duplicate, behaviour)


def recorder(store: Store, clock: Clock) -> GroupCommit[dict[str, Any], Received]:
    """`receive` for deliveries arriving together in one process, several to a write
    transaction (a storm's deliveries each queued for the store's write turn otherwise);
    each on the clock as its transaction reads it."""

    def record(conn: Connection, delivery: dict[str, Any]) -> Received:
        return receive(conn, now=clock.now(conn), **delivery)

    return GroupCommit(store, record)


def _take_behaviour(conn: Connection, name: str, row: Any) -> Behaviour:
    """The behaviour for this delivery; a counted one is used up, then the sink is healthy."""
    if row.remaining is not None:
        if row.remaining <= 1:
            delete_equal(conn, sink_behaviour_table, sink=name)
        else:
            update_equal(conn, sink_behaviour_table, {"sink": name}, remaining=row.remaining - 1)
    return Behaviour(row.status, row.retry_after, float(row.hang_s or 0.0), row.remaining)


def configure(
    conn: Connection,
    name: str,
    *,
    status: int | None,
    retry_after: int | None,
    hang_s: float,
    count: int | None,
) -> None:
    """Replace the sink's behaviour; nothing to misbehave with makes it healthy."""
    conn.execute(delete(sink_behaviour_table).where(sink_behaviour_table.c.sink == name))
    if status is None and not hang_s and retry_after is None:
        return
    conn.execute(
        sink_behaviour_table.insert().values(
            sink=name,
            status=status or 200,
            retry_after=retry_after,
            hang_s=hang_s,
            remaining=count,
        )
    )


def behaviour(conn: Connection, name: str) -> Behaviour | None:
    row = conn.execute(_BEHAVIOUR, {"sink": name}).first()
    if row is None:
        return None
    return Behaviour(row.status, row.retry_after, float(row.hang_s or 0.0), row.remaining)


def clear(conn: Connection, name: str) -> None:
    conn.execute(delete(sink_delivery_table).where(sink_delivery_table.c.sink == name))
    conn.execute(delete(sink_behaviour_table).where(sink_behaviour_table.c.sink == name))


def summary(conn: Connection, name: str) -> dict[str, Any]:
    table = sink_delivery_table
    received, unique, invalid, missing, first, last = conn.execute(
        select(
            func.count(),
            func.count(func.distinct(table.c.webhook_id)),
            func.coalesce(func.sum((table.c.signature == INVALID).cast(Integer)), 0),
            func.coalesce(func.sum((table.c.signature == MISSING).cast(Integer)), 0),
            func.min(table.c.received_at),
            func.max(table.c.received_at),
        ).where(table.c.sink == name)
    ).one()
    without_id = conn.execute(
        select(func.count()).where(table.c.sink == name, table.c.webhook_id.is_(None))
    ).scalar_one()
    return {
        "received": int(received),
        "unique_webhook_ids": int(unique),
        # Every delivery beyond the first with its webhook-id; unidentified ones are not.
        "duplicates": int(received) - int(without_id) - int(unique),
        "invalid_signatures": int(invalid),
        "missing_signatures": int(missing),
        "first_received_at": first,
        "last_received_at": last,
        "behaviour": behaviour(conn, name),
    }


def deliveries(
    conn: Connection,
    name: str,
    *,
    webhook_id: str | None = None,
    event_type: str | None = None,
    signature: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    table = sink_delivery_table
    conditions = [table.c.sink == name]
    if webhook_id:
        conditions.append(table.c.webhook_id == webhook_id)
    if event_type:
        conditions.append(table.c.event_type == event_type)
    if signature:
        conditions.append(table.c.signature == signature)
    total, rows = count_and_page(conn, table, conditions, [table.c.id], offset, limit)
    return int(total), [dict(row._mapping) for row in rows]
