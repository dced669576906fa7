"""Idempotency-Key handling (IETF httpapi draft, Stripe's conventions).

Keys are scoped per role and partner. The key, the request fingerprint and the
first successful answer are stored in the same transaction as the work, so a
retry replays that answer (same status, same body) and concurrent retries
never create a second resource. A key reused with another request is a 422.
Only successful answers are kept: a refused request changes nothing, so
repeating it refuses it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    delete,
    select,
    text,
)

from .problems import IdempotencyKeyReused
from .store import CORE_ROLE, Store, role_table

idempotency_table = role_table(
    CORE_ROLE,
    "idempotency_key",
    Column("role", String(16), primary_key=True),
    Column("partner_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    # The answer exactly as first sent, so a replay is byte for byte the same.
    Column("body", Text, nullable=True),
    Column("headers", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)


_LOOKUP = select(idempotency_table).where(
    idempotency_table.c.role == bindparam("role"),
    idempotency_table.c.partner_id == bindparam("partner_id"),
    idempotency_table.c.key == bindparam("key"),
)
_INSERT = idempotency_table.insert()


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: Any
    headers: dict[str, str]


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def hold(conn: Connection, store: Store, *, role: str, partner_id: str, key: str) -> None:
    """Serialise twins of one key until this transaction ends.

    SQLite writers are already serialised by BEGIN IMMEDIATE; on PostgreSQL (READ
    COMMITTED) concurrent twins would all miss the key and race on the domain rows,
    so they queue on a transaction-scoped advisory lock and the later ones replay.
    """
    if store.is_sqlite:
        return
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:scope, 0))"),
        {"scope": f"idempotency|{role}|{partner_id}|{key}"},
    )


def lookup(
    conn: Connection,
    *,
    role: str,
    partner_id: str,
    key: str,
    request_fingerprint: str,
    now: float,
    retention_s: float,
) -> StoredAnswer | None:
    """The first answer for this key, None if the key is new (or expired)."""
    row = conn.execute(_LOOKUP, {"role": role, "partner_id": partner_id, "key": key}).first()
    if row is None:
        return None
    if row.created_at < now - retention_s:
        conn.execute(
            delete(idempotency_table).where(
                and_(
                    idempotency_table.c.role == role,
                    idempotency_table.c.partner_id == partner_id,
                    idempotency_table.c.key == key,
                )
            )
        )
        return None
    if row.fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was first used with a different request; use a new key"
        )
    return StoredAnswer(status=row.status, body=row.body, headers=dict(row.headers))


def remember(
    conn: Connection,
    *,
    role: str,
    partner_id: str,
    key: str,
    request_fingerprint: str,
    answer: StoredAnswer,
    now: float,
) -> None:
    conn.execute(
        _INSERT,
        {
            "role": role,
            "partner_id": partner_id,
            "key": key,
            "fingerprint": request_fingerprint,
            "status": answer.status,
            "body": answer.body,
            "headers": answer.headers,
            "created_at": now,
        },
    )
