"""Per-partner rate limits that behave like a vendor's: token buckets from the agreement.

An agreement may hold `rateLimit: {requestsPerSecond, burst}`; without it the partner
is unlimited and this module costs it one dictionary lookup. A bucket belongs to one
partner on one API (a vendor limits its own API) and is shared by every worker: in the
store by default (one atomic upsert per request) or in Redis (one Lua script) when
`HANDOFF_REDIS_URL` is set. Buckets refill on the simulated clock, so a test that
advances the clock by `Retry-After` sees the retry succeed.

The bucket is kept as GCRA (the generic cell rate algorithm of ATM networks, also what
redis-cell implements): one number, the time at which the bucket will be full again,
which is what lets one statement both decide and record. Libraries were considered:
`limits` offers only window counters, PyrateLimiter keeps a row per request and its own
connections, and neither reads a simulated clock.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import redis
from flask import Flask, Response, g, request
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    String,
    and_,
    bindparam,
    case,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from . import audit, tenancy
from .clock import Clock, clock_table
from .contract import Operation
from .problems import Conflict, DomainError
from .store import CORE_ROLE, Store, role_table

if TYPE_CHECKING:
    from .http import Authenticator
    from .runtime import Runtime

log = logging.getLogger("handoff.ratelimit")

# Slack for float rounding of epoch seconds, so that a retry after exactly `Retry-After`
# seconds is admitted even when the arithmetic lands a hair past the bucket's edge.
EPSILON_S = 1e-6
# Redis keys outlive their need by this much of real time; a key that expires early would
# only hand back a full bucket.
REDIS_KEY_SLACK_MS = 3_600_000

bucket_table = role_table(
    CORE_ROLE,
    "rate_limit_bucket",
    # The API the bucket limits (mvne, mno): a vendor counts calls to its own API.
    Column("role", String(16), primary_key=True),
    Column("partner_id", String(64), primary_key=True),
    # GCRA's theoretical arrival time: when the bucket is full again (simulated epoch s).
    Column("tat", Float, nullable=False),
    Column("admitted", Boolean, nullable=False),
    Column("seen_at", Float, nullable=False),
)


@dataclass(frozen=True)
class RateLimit:
    """`burst` requests at once, refilled at `requests_per_second`."""

    requests_per_second: float
    burst: int

    @property
    def interval_s(self) -> float:
        return 1.0 / self.requests_per_second

    @property
    def capacity_s(self) -> float:
        return self.burst * self.interval_s

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> RateLimit | None:
        """The limit of an agreement's `rateLimit` (already checked against the contract)."""
        if not value:
            return None
        return cls(float(value["requestsPerSecond"]), int(value["burst"]))

    def to_json(self) -> dict[str, Any]:
        rate = self.requests_per_second
        return {"requestsPerSecond": int(rate) if rate.is_integer() else rate, "burst": self.burst}


@dataclass(frozen=True)
class Decision:
    """One request's outcome and what the IETF RateLimit headers tell the partner."""

    admitted: bool
    limit: RateLimit
    remaining: int
    reset_s: int
    retry_after_s: int | None

    def headers(self) -> dict[str, str]:
        # draft-ietf-httpapi-ratelimit-headers-07, the three-header form client libraries
        # and API gateways parse today: the quota is the burst, Reset is the seconds until
        # the bucket is full again.
        headers = {
            "RateLimit-Limit": str(self.limit.burst),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


def _whole_seconds(seconds: float) -> int:
    return max(0, math.ceil(seconds - EPSILON_S / 2))


def decide(limit: RateLimit, tat: float, now: float, admitted: bool) -> Decision:
    """Turn a bucket's state after a request into the answer's numbers."""
    owed = max(tat - now, 0.0)
    remaining = math.floor((limit.capacity_s - owed) / limit.interval_s + EPSILON_S)
    retry_after = None
    if not admitted:
        # Honest by construction: at now + this, one more request fits (for this caller).
        retry_after = max(1, _whole_seconds(owed + limit.interval_s - limit.capacity_s))
    return Decision(admitted, limit, max(0, remaining), _whole_seconds(owed), retry_after)


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    status = 429
    title = "Too many requests for this partner's rate limit"
    retryable = True


class PartnerTerminated(Conflict):
    code = "PARTNER_TERMINATED"
    title = "The partner is terminated"


class Buckets(Protocol):
    def take(self, role: str, partner_id: str, limit: RateLimit) -> Decision | None:
        """Spend one request of the bucket; None when the bucket cannot be reached."""

    def forget(self, conn: Connection, partner_id: str) -> None:
        """Start the partner's buckets full again (its limit changed), within `conn`."""

    def clear(self, role: str | None) -> None:
        """Drop every bucket (of one API) kept outside the store, on reset."""


def _simulated_now() -> Any:
    """Clock.now() as SQL, so the bucket's statement reads the clock itself."""
    wall = bindparam("wall", type_=Float)
    clock_now = (
        select(
            case(
                (
                    and_(clock_table.c.frozen, clock_table.c.frozen_at.is_not(None)),
                    clock_table.c.frozen_at,
                ),
                else_=wall + clock_table.c.offset_s,
            )
        )
        .where(clock_table.c.id == 1)
        .scalar_subquery()
    )
    return func.coalesce(clock_now, wall)


def _take_statement(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    interval = bindparam("interval", type_=Float)
    capacity = bindparam("capacity", type_=Float)
    now = _simulated_now()
    statement = insert(bucket_table).values(
        role=bindparam("role"),
        partner_id=bindparam("partner_id"),
        tat=now + interval,
        admitted=True,
        seen_at=now,
    )
    seen = statement.excluded.seen_at
    tat = bucket_table.c.tat
    # A bucket "fuller than full" (clock moved back, limit lowered) counts as empty.
    base = case(
        (tat < seen, seen),
        (tat > seen + capacity, seen + capacity),
        else_=tat,
    )
    fits = base + interval - seen <= capacity + EPSILON_S
    return statement.on_conflict_do_update(
        index_elements=[bucket_table.c.role, bucket_table.c.partner_id],
        set_={"tat": case((fits, base + interval), else_=base), "admitted": fits, "seen_at": seen},
    ).returning(bucket_table.c.tat, bucket_table.c.admitted, bucket_table.c.seen_at)


class StoreBuckets:
    """Buckets as rows of the store: each request is one INSERT ... ON CONFLICT DO UPDATE,
    atomic on SQLite (one writer) and PostgreSQL (the conflicting row is locked), so
    concurrent workers never lose a spent request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._take = _take_statement(store.engine.dialect.name)

    def take(self, role: str, partner_id: str, limit: RateLimit) -> Decision | None:
        params = {
            "role": role,
            "partner_id": partner_id,
            "interval": limit.interval_s,
            "capacity": limit.capacity_s,
            "wall": time.time(),
        }
        with self.store.write() as conn:
            row = conn.execute(self._take, params).one()
        return decide(limit, float(row.tat), float(row.seen_at), bool(row.admitted))

    def forget(self, conn: Connection, partner_id: str) -> None:
        conn.execute(delete(bucket_table).where(bucket_table.c.partner_id == partner_id))

    def clear(self, role: str | None) -> None:
        """Nothing to do: the store's own reset clears the bucket table."""


# GCRA, as in the store statement. Numbers travel as strings: Redis turns a Lua number
# into an integer, and Lua's tostring keeps only 14 digits of an epoch with a fraction.
_REDIS_TAKE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local epsilon = tonumber(ARGV[4])
local slack_ms = tonumber(ARGV[5])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then
  tat = now
elseif tat > now + capacity then
  tat = now + capacity
end
if tat + interval - now <= capacity + epsilon then
  tat = tat + interval
  local ttl = math.ceil((tat - now) * 1000) + slack_ms
  redis.call('SET', KEYS[1], string.format('%.17g', tat), 'PX', ttl)
  return {1, string.format('%.17g', tat)}
end
return {0, string.format('%.17g', tat)}
"""


class RedisBuckets:
    """Buckets as Redis keys, one Lua script per request (atomic on the server). Keys are
    namespaced by the store's URL, so stacks sharing a Redis never share buckets while
    workers of one stack do."""

    def __init__(self, url: str, store: Store, clock: Clock) -> None:
        self.client = redis.Redis.from_url(url)
        self.clock = clock
        identity = store.url.render_as_string(hide_password=False).encode()
        self.prefix = f"handoff:{hashlib.sha256(identity).hexdigest()[:16]}:ratelimit:"
        self._script = self.client.register_script(_REDIS_TAKE)

    def _key(self, role: str, partner_id: str) -> str:
        return f"{self.prefix}{role}:{partner_id}"

    def take(self, role: str, partner_id: str, limit: RateLimit) -> Decision | None:
        now = self.clock.now()
        args = [now, limit.interval_s, limit.capacity_s, EPSILON_S, REDIS_KEY_SLACK_MS]
        try:
            admitted, tat = self._script(keys=[self._key(role, partner_id)], args=args)
        except redis.RedisError as exc:
            # A limiter that cannot count lets traffic through rather than take the
            # stack down with it; the log says why limits stopped applying.
            log.warning("rate-limit buckets unreachable (%s); request not counted", exc)
            return None
        return decide(limit, float(tat), now, bool(admitted))

    def forget(self, conn: Connection, partner_id: str) -> None:
        try:
            keys = list(self.client.scan_iter(match=f"{self.prefix}*:{partner_id}"))
            if keys:
                self.client.delete(*keys)
        except redis.RedisError as exc:
            log.warning("rate-limit buckets unreachable (%s); old bucket kept", exc)

    def clear(self, role: str | None) -> None:
        pattern = f"{self.prefix}{role}:*" if role else f"{self.prefix}*"
        try:
            keys = list(self.client.scan_iter(match=pattern))
            if keys:
                self.client.delete(*keys)
        except redis.RedisError as exc:
            log.warning("rate-limit buckets unreachable (%s); not cleared", exc)


def buckets_for(redis_url: str, store: Store, clock: Clock) -> Buckets:
    return RedisBuckets(redis_url, store, clock) if redis_url else StoreBuckets(store)


# --- the request pipeline -----------------------------------------------------------------


def _caller(runtime: Runtime, role: str, caller: str, api_key: str) -> tenancy.Partner | None:
    """The active partner behind the key, from the cache the pipeline's own authentication
    fills, so an unlimited partner costs no statement; None if the pipeline will refuse."""
    tenancy_role = tenancy.api_role(role, caller)
    partner = tenancy.cached_partner(tenancy_role, api_key)
    if partner is None:
        with runtime.store.read() as conn:
            try:
                partner = tenancy.authenticate(conn, tenancy_role, api_key)
            except DomainError:
                return None
    return partner if partner.status == tenancy.PARTNER_ACTIVE else None


def _authenticated(
    runtime: Runtime, operation: Operation, authenticate: Authenticator
) -> tenancy.Partner | None:
    """The active partner a credential other than an API key proves (OAuth 2.0: Basic at
    the token endpoint, a Bearer token on a CAMARA API); None if the pipeline will refuse."""
    with runtime.store.read() as conn:
        try:
            partner = authenticate(runtime, conn, operation)
        except DomainError:
            return None
    return partner if partner is not None and partner.status == tenancy.PARTNER_ACTIVE else None


def admit(
    runtime: Runtime,
    role: str,
    operation: Operation,
    authenticate: Authenticator | None = None,
) -> None:
    """Spend one request of the calling partner's bucket, or refuse it with 429.

    Runs before the request's transaction: a request that later fails validation still
    counted (a vendor's gateway counts what reaches it), and the bucket's statement
    never waits behind the request's own write lock. Unauthenticated requests count
    against no one: a caller with another's client id but not its secret or token cannot
    spend that client's requests.
    """
    if not operation.secured:
        return
    api_key = request.headers.get("X-API-Key")
    if api_key:
        partner = _caller(runtime, role, operation.caller, api_key)
    elif authenticate is not None and request.headers.get("Authorization"):
        partner = _authenticated(runtime, operation, authenticate)
    else:
        return
    limit = RateLimit.from_json(partner.agreement.get("rateLimit")) if partner else None
    if partner is None or limit is None:
        return
    decision = runtime.rate_limits.take(role, partner.id, limit)
    if decision is None:
        return
    g.partner_id = partner.id
    g.rate_limit_headers = decision.headers()
    if not decision.admitted:
        raise RateLimited(
            f"Partner {partner.id} may send {limit.burst} requests at once to the "
            f"{role.upper()} API, refilled at {_rate(limit)} per second; "
            f"retry after {decision.retry_after_s} s",
            headers=g.rate_limit_headers,
            rateLimit=limit.to_json(),
        )


def _rate(limit: RateLimit) -> str:
    return f"{Decimal(repr(limit.requests_per_second)).normalize():f}"


def install(app: Flask) -> None:
    """Send the RateLimit headers on every answer to a rate-limited partner, errors too."""

    @app.after_request
    def _rate_limit_headers(response: Response) -> Response:
        for name, value in g.get("rate_limit_headers", {}).items():
            response.headers[name] = value
        return response


# --- the control plane ---------------------------------------------------------------------


def api_of(partner: tenancy.Partner) -> str:
    """The API a partner calls: `mvne-network` (the network on the MVNE) calls the MVNE."""
    return partner.role.split("-", 1)[0]


def set_limit(
    runtime: Runtime,
    conn: Connection,
    *,
    partner_id: str,
    limit: RateLimit | None,
    now: float,
    actor: str,
    correlation_id: str | None,
) -> tenancy.Partner:
    """Replace one partner's rate limit (None: unlimited), leaving the rest of its agreement.

    Its bucket starts full under the new limit, as a gateway's does after a plan change.
    """
    partner = tenancy.get_partner(conn, partner_id)
    if partner.status == tenancy.PARTNER_TERMINATED:
        raise PartnerTerminated(f"Partner {partner_id} is terminated")
    before = partner.agreement.get("rateLimit")
    agreement = dict(partner.agreement)
    if limit is None:
        agreement.pop("rateLimit", None)
    else:
        agreement["rateLimit"] = limit.to_json()
    tenancy.set_agreement(conn, partner_id, agreement)
    runtime.rate_limits.forget(conn, partner_id)
    audit.record(
        conn,
        at=now,
        role=api_of(partner),
        actor=actor,
        partner_id=partner_id,
        action="partner.rateLimitChanged",
        entity_type="partner",
        entity_id=partner_id,
        correlation_id=correlation_id,
        details={"from": before, "to": agreement.get("rateLimit")},
    )
    return tenancy.get_partner(conn, partner_id)


def limit_view(partner: tenancy.Partner) -> dict[str, Any]:
    return {
        "partnerId": partner.id,
        "role": api_of(partner),
        "rateLimit": partner.agreement.get("rateLimit"),
    }
