"""Event hubs and the callback outbox.

A partner subscribes through a TMF hub; a state change writes one outbox row
per matching subscription in its own transaction; a dispatcher delivers the
rows signed with Standard Webhooks headers, retrying with exponential backoff
and jitter, and dead-letters a row after a bounded number of attempts. An
endpoint that answers 410 or dead-letters several deliveries in a row is
disabled: its deliveries are skipped until an operator enables it again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import posixpath
import re
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    case,
    func,
    select,
)
from standardwebhooks import Webhook

from .. import __version__
from .clock import isoformat
from .faults import (
    CALLBACKS_ROLE,
    NO_FAULTS,
    PUBLISH_EFFECTS,
    SEND_EFFECTS,
    Decision,
    FaultEngine,
    Sample,
)
from .problems import DomainError, NotFound
from .store import CORE_ROLE, Store, delete_equal, role_table, select_equal, update_equal
from .tasks import (
    DONE,
    FAILED,
    LEASE_S,
    PENDING,
    RUNNING,
    claim_due,
    claim_indexes,
    due_among,
    retry_after_seconds,
    running_elsewhere,
)
from .webhook_http import DeliveryError, WebhookClient, requests_is_mocked

if TYPE_CHECKING:
    from .runtime import Runtime

DELIVERED = DONE
DEAD = FAILED
# A delivery for a disabled endpoint: kept, never sent until an operator redrives it.
SKIPPED = "skipped"
RESPONSE_LIMIT = 64 * 1024
# Senders of webhooks name themselves (receivers' firewalls and logs go by it).
USER_AGENT = f"Handoff-Webhooks/{__version__}"
# Standard Webhooks retry guide: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
RETRY_SCHEDULE_S = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
# Outcomes written per transaction while a batch is still being sent.
RECORD_BATCH = 64
GONE = "gone"
DEAD_LETTERS = "deadLetters"

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
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("due_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    # The resource the event is about: its deliveries to one subscription go out in order.
    Column("subject", String(128), nullable=True),
    Index("ix_outbox_hub_subject", "hub_id", "subject"),
    *claim_indexes("outbox"),
    info={"retired_indexes": ("ix_outbox_status",)},
)

# The health of a subscription's endpoint; a row exists once something went wrong.
endpoint_table = role_table(
    CORE_ROLE,
    "callback_endpoint",
    Column("hub_id", String(40), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("consecutive_dead", Integer, nullable=False, default=0),
    Column("disabled_at", Float, nullable=True),
    # "gone" (the receiver answered 410) or "deadLetters" (K dead letters in a row).
    Column("disabled_reason", String(20), nullable=True),
)

_HUBS_OF = (
    select(hub_table, endpoint_table.c.disabled_at)
    .outerjoin(endpoint_table, endpoint_table.c.hub_id == hub_table.c.id)
    .where(
        hub_table.c.role == bindparam("role"),
        hub_table.c.api == bindparam("api"),
        hub_table.c.partner_id == bindparam("partner_id"),
    )
)

_FORBIDDEN_NETWORKS = [
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, cloud metadata services
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba metadata
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IPv6 metadata
    ipaddress.ip_network("0.0.0.0/8"),
]


@lru_cache(maxsize=4096)
def webhook_secret(secret_key: str, hub_id: str) -> str:
    """Derived per subscription, so no signing secret is ever stored (kept in memory only,
    as every callback to the subscription is signed with it)."""
    digest = hmac.new(secret_key.encode(), f"webhook:{hub_id}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(digest[:24]).decode()


@lru_cache(maxsize=4096)
def signer(secret: str) -> Webhook:
    """The Standard Webhooks signer of one secret, made once (it decodes the secret)."""
    return Webhook(secret)


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
    if _is_control_plane(parts.path):
        # A loopback callback reaches this stack, whose control plane trusts loopback
        # callers: the dispatcher must never become a partner's way into it.
        raise CallbackRefused(
            "callback may not point at the stack's control plane (/__admin)", field="callback"
        )
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


# Where the stack serves its control plane (simulators/stack.py).
ADMIN_PREFIX = "/__admin"


def _is_control_plane(path: str) -> bool:
    """Whether a request to `path` could reach /__admin, however it is spelt (percent
    encoding, repeated slashes, dot segments, case)."""
    decoded = re.sub("/+", "/", unquote(path))
    normal = posixpath.normpath(decoded or "/").lower()
    return normal == ADMIN_PREFIX or normal.startswith(ADMIN_PREFIX + "/")


def listener_url(callback: str, listener: str) -> str:
    """`{callback}/listener/{name}` (TMF hubs) with the listener added to the callback's
    path: a query the callback carries (a receiver's token) stays the query, and a
    fragment, which no request carries, is dropped."""
    parts = urlsplit(callback)
    path = parts.path.rstrip("/") + f"/listener/{listener}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


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


def new_hub_id() -> str:
    """32 hex digits without a run of 13 decimal ones: an API that refuses card numbers
    anywhere in a request (the payment gateway) must never take its own hub id for one."""
    while True:
        hub_id = uuid.uuid4().hex
        if not _LONG_DIGIT_RUN.search(hub_id):
            return hub_id


_LONG_DIGIT_RUN = re.compile(r"[0-9]{13}")


def hub_view(row: Any) -> dict[str, Any]:
    return {"id": row.id, "callback": row.callback, "query": row.query}


class Outbox:
    def __init__(self, store: Store, faults: FaultEngine | None = None) -> None:
        self.store = store
        self.faults = faults
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._pool_lock = threading.Lock()
        self._local = threading.local()
        self._client = WebhookClient(RESPONSE_LIMIT)

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
        hub_id = new_hub_id()
        conn.execute(
            hub_table.insert(),
            {
                "id": hub_id,
                "role": role,
                "api": api,
                "partner_id": partner_id,
                "callback": callback,
                "query": query,
                "created_at": now,
            },
        )
        return select_equal(conn, hub_table, id=hub_id).one()

    def get_hub(
        self, conn: Connection, *, role: str, api: str, partner_id: str, hub_id: str
    ) -> Any:
        row = select_equal(
            conn, hub_table, id=hub_id, role=role, api=api, partner_id=partner_id
        ).first()
        if row is None:
            raise NotFound(f"No hub subscription {hub_id}")
        return row

    def unsubscribe(
        self, conn: Connection, *, role: str, api: str, partner_id: str, hub_id: str
    ) -> None:
        self.get_hub(conn, role=role, api=api, partner_id=partner_id, hub_id=hub_id)
        delete_equal(conn, hub_table, id=hub_id)
        delete_equal(conn, endpoint_table, hub_id=hub_id)
        # Nothing more goes to it: deliveries waiting for a retry stay on record, not sent.
        conn.execute(
            outbox_table.update()
            .where(outbox_table.c.hub_id == hub_id, outbox_table.c.status == PENDING)
            .values(status=SKIPPED, last_error="The subscription was deleted")
        )

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
            subject = resource.get("id")
            delivery = {
                "message_id": f"msg_{event_id}",
                "role": role,
                "partner_id": partner_id,
                "hub_id": hub.id,
                "event_type": event_type,
                "url": listener_url(hub.callback, listener),
                "subject": None if subject is None else str(subject)[:128],
                "payload": envelope,
                "correlation_id": correlation_id,
                # A disabled endpoint's events are kept for a redrive, not sent.
                "status": PENDING if hub.disabled_at is None else SKIPPED,
                "attempts": 0,
                "due_at": now,
                "created_at": now,
            }
            deliveries = [delivery]
            if hub.disabled_at is None and self._callback_rules():
                sample = Sample(role=CALLBACKS_ROLE, partner=partner_id, event=event_type)
                assert self.faults is not None
                decision = self.faults.decide(sample, lambda: now, PUBLISH_EFFECTS, conn)
                deliveries = _as_faults_say(conn, decision, delivery, now)
            conn.execute(outbox_table.insert(), deliveries)
            queued += 1
        return queued

    def _callback_rules(self) -> bool:
        return self.faults is not None and bool(self.faults.rule_set().candidates(CALLBACKS_ROLE))

    # --- delivery -----------------------------------------------------------------

    def deliver_due(
        self, runtime: Runtime, limit: int | None = None, *, checked: bool = False
    ) -> int:
        """Claim a batch of due deliveries, send them concurrently, record the outcomes in
        batched writes; return how many were claimed. `checked`: the caller has just seen
        one due."""
        settings = runtime.settings
        concurrency = max(1, settings.callback_concurrency)
        if limit is None:
            # Each sending thread works through its share of the batch one timeout at a time
            # at worst; the whole batch must finish well inside the lease, or another
            # dispatcher could take a row that is still being sent.
            per_thread = max(1, int(LEASE_S / 2 / max(settings.callback_timeout_s, 0.1)))
            limit = concurrency * min(per_thread, 8)
        now = runtime.clock.now()
        if not checked and not self.due(now):
            return 0
        with self.store.write() as conn:
            rows = claim_due(conn, self.store, outbox_table, now, limit)
            rows = _after_earlier_events(conn, rows, now)
            # A subscription deleted since its events were queued gets none of them.
            disabled = _disabled_or_gone_hubs(conn, {row.hub_id for row in rows}) if rows else set()
        if not rows:
            return 0
        outcomes: list[Outcome] = [
            Outcome(row, skipped=True) for row in rows if row.hub_id in disabled
        ]
        groups = _in_order_groups([row for row in rows if row.hub_id not in disabled])
        if len(groups) == 1 or concurrency == 1:
            for group in groups:
                outcomes.extend(self._send_group(runtime, group))
        else:
            # One task per sending thread, each taking the next group as it finishes one
            # (deque.popleft is atomic): a future per group cost more than its sending.
            waiting = deque(groups)

            def drain() -> list[Outcome]:
                sent: list[Outcome] = []
                while True:
                    try:
                        group = waiting.popleft()
                    except IndexError:
                        return sent
                    sent.extend(self._send_group(runtime, group))

            pool = self._executor(concurrency)
            pending = [pool.submit(drain) for _ in range(min(concurrency, len(groups)))]
            for future in as_completed(pending):
                outcomes.extend(future.result())
                if len(outcomes) >= RECORD_BATCH:
                    self._record(runtime, outcomes)
                    outcomes = []
        self._record(runtime, outcomes)
        return len(rows)

    def _executor(self, concurrency: int) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None or self._pool_size != concurrency:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)
                self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="handoff-callback")
                self._pool_size = concurrency
            return self._pool

    def _session(self) -> requests.Session:
        """One session per sending thread: connections are reused, never shared."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # Straight to the host the SSRF guard checked: no proxy or netrc from the
            # environment (and no scan of the environment on every request).
            session.trust_env = False
        return session

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self._client.close()

    def _send_group(self, runtime: Runtime, rows: list[Any]) -> list[Outcome]:
        """One resource's deliveries to one subscription, in order; once one is not
        accepted, the later ones are not sent before it (they wait for its retry)."""
        max_attempts = runtime.settings.callback_max_attempts
        outcomes: list[Outcome] = []
        for row in rows:
            if outcomes and outcomes[-1].holds_back(max_attempts) and row.subject is not None:
                outcomes.append(Outcome(row, held=True))
                continue
            outcomes.append(self._send(runtime, row))
        return outcomes

    def _send(self, runtime: Runtime, row: Any) -> Outcome:
        settings = runtime.settings
        faults: Decision = NO_FAULTS
        if self._callback_rules():
            assert self.faults is not None
            sample = Sample(role=CALLBACKS_ROLE, partner=row.partner_id, event=row.event_type)
            faults = self.faults.decide(sample, runtime.clock.now, SEND_EFFECTS)
        kinds = {firing.kind for firing in faults.callbacks}
        body = json.dumps(row.payload, separators=(",", ":"))
        # Wall time, not simulated: receivers check it against their own clock (5 min window).
        sent_at = time.time()
        # The badSignature fault signs with a secret the receiver does not hold.
        secret_key = settings.secret_key + ("/wrong" if "badSignature" in kinds else "")
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": row.message_id,
            "webhook-timestamp": str(int(sent_at)),
            "webhook-signature": signer(webhook_secret(secret_key, row.hub_id)).sign(
                row.message_id, datetime.fromtimestamp(int(sent_at), UTC), body
            ),
        }
        if "missingSignature" in kinds:
            del headers["webhook-signature"]
        if row.correlation_id:
            # An empty X-Correlation-ID is refused by receivers that check it (ours do).
            headers["x-correlation-id"] = row.correlation_id
        outcome = Outcome(row, no_backoff="noBackoff" in kinds)
        started = time.perf_counter()
        try:
            check_callback_url(row.url, settings.callback_allow_hosts)
            if requests_is_mocked():
                outcome.status, retry_after = self._send_through_requests(
                    row.url, headers, body, settings.callback_timeout_s
                )
            else:
                answer = self._client.post(
                    row.url, headers, body.encode(), settings.callback_timeout_s
                )
                outcome.status, retry_after = answer.status, answer.retry_after
            outcome.retry_after = retry_after_seconds(retry_after)
        except DeliveryError as exc:
            outcome.error = str(exc)[:500]
        except (requests.RequestException, DomainError) as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"[:500]
        runtime.journal.record(
            role=row.role,
            direction="callback",
            method="POST",
            url=row.url,
            status=outcome.status,
            correlation_id=row.correlation_id,
            partner_id=row.partner_id,
            duration_ms=(time.perf_counter() - started) * 1000,
            request_body=body[:4096],
            error=outcome.error,
            extra={
                "webhookId": row.message_id,
                "attempt": row.attempts + 1,
                **({"faults": faults.fired} if faults.fired else {}),
            },
        )
        return outcome

    def _send_through_requests(
        self, url: str, headers: dict[str, str], body: str, timeout: float
    ) -> tuple[int, str | None]:
        """The callback through `requests`' transport adapter, for a test suite that mocks
        `requests`: straight to the adapter, since a webhook needs none of what
        Session.request adds (merged settings, cookies, hooks, redirects)."""
        prepared = requests.PreparedRequest()
        prepared.prepare(method="POST", url=url, headers=headers, data=body)
        adapter = self._session().get_adapter(url)
        with adapter.send(
            prepared,
            stream=True,
            timeout=timeout,
            verify=True,
            cert=None,
            proxies={},
        ) as response:
            response.raw.read(RESPONSE_LIMIT, decode_content=True)
            return response.status_code, response.headers.get("retry-after")

    def _record(self, runtime: Runtime, outcomes: list[Outcome]) -> None:
        """Store a batch of outcomes in one transaction, and keep each endpoint's health."""
        if not outcomes:
            return
        settings = runtime.settings
        now = runtime.clock.now()
        updates = [outcome.values(now, settings.callback_max_attempts) for outcome in outcomes]
        with self.store.write() as conn:
            conn.execute(_RECORD_OUTCOME, updates)
            _track_endpoints(conn, outcomes, updates, now, settings.callback_disable_after)

    # --- endpoints ----------------------------------------------------------------

    def endpoints(
        self, conn: Connection, *, partner_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """Each hub subscription with its deliveries counted by outcome and its health."""
        conditions = [hub_table.c.partner_id == partner_id] if partner_id else []
        total = conn.execute(
            select(func.count()).select_from(hub_table).where(*conditions)
        ).scalar_one()
        hubs = conn.execute(
            select(
                hub_table,
                endpoint_table.c.consecutive_dead,
                endpoint_table.c.disabled_at,
                endpoint_table.c.disabled_reason,
            )
            .outerjoin(endpoint_table, endpoint_table.c.hub_id == hub_table.c.id)
            .where(*conditions)
            .order_by(hub_table.c.created_at, hub_table.c.id)
            .offset(offset)
            .limit(limit)
        ).all()
        if not hubs:
            return total, []
        retrying = (outbox_table.c.attempts > 0) & outbox_table.c.status.in_([PENDING, RUNNING])
        counts = conn.execute(
            select(
                outbox_table.c.hub_id,
                func.sum(case((outbox_table.c.status == DELIVERED, 1), else_=0)),
                func.sum(case((retrying, 1), else_=0)),
                func.min(case((retrying, outbox_table.c.due_at), else_=None)),
                func.sum(case((outbox_table.c.status == DEAD, 1), else_=0)),
                func.sum(case((outbox_table.c.status == SKIPPED, 1), else_=0)),
                func.sum(
                    case(
                        (
                            (outbox_table.c.attempts == 0)
                            & outbox_table.c.status.in_([PENDING, RUNNING]),
                            1,
                        ),
                        else_=0,
                    )
                ),
            )
            .where(outbox_table.c.hub_id.in_([hub.id for hub in hubs]))
            .group_by(outbox_table.c.hub_id)
        ).all()
        by_hub = {row[0]: row[1:] for row in counts}
        found = []
        for hub in hubs:
            delivered, retries, next_at, dead, skipped, queued = by_hub.get(
                hub.id, (0, 0, None, 0, 0, 0)
            )
            found.append(
                {
                    "hub": hub,
                    "delivered": int(delivered or 0),
                    "queued": int(queued or 0),
                    "retrying": int(retries or 0),
                    "next_attempt_at": None if next_at is None else float(next_at),
                    "dead_lettered": int(dead or 0),
                    "skipped": int(skipped or 0),
                }
            )
        return total, found

    def endpoint(self, conn: Connection, hub_id: str) -> dict[str, Any]:
        hub = conn.execute(select(hub_table.c.partner_id).where(hub_table.c.id == hub_id)).first()
        if hub is None:
            raise NotFound(f"No hub subscription {hub_id}")
        _total, found = self.endpoints(conn, partner_id=hub.partner_id, limit=1_000_000)
        return next(item for item in found if item["hub"].id == hub_id)

    def enable(self, conn: Connection, hub_id: str) -> None:
        """Send this subscription's new events again; its run of dead letters starts over."""
        if conn.execute(select(hub_table.c.id).where(hub_table.c.id == hub_id)).first() is None:
            raise NotFound(f"No hub subscription {hub_id}")
        conn.execute(endpoint_table.delete().where(endpoint_table.c.hub_id == hub_id))

    def redrive(self, conn: Connection, hub_id: str, now: float) -> int:
        """Enable the endpoint and queue its dead-lettered and skipped deliveries again,
        attempts reset; return how many were queued."""
        self.enable(conn, hub_id)
        result = conn.execute(
            outbox_table.update()
            .where(outbox_table.c.hub_id == hub_id, outbox_table.c.status.in_([DEAD, SKIPPED]))
            .values(status=PENDING, due_at=now, attempts=0, lease_until=None)
        )
        return int(result.rowcount)

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

    def running_elsewhere(self) -> bool:
        return running_elsewhere(self.store, outbox_table)

    def due(self, now: float) -> bool:
        """Whether a delivery is due at `now` and free to be taken."""
        return due_among(self.store, (outbox_table,), now)[0]

    def redeliver(self, conn: Connection, delivery_id: int, now: float) -> None:
        updated = conn.execute(
            outbox_table.update()
            .where(outbox_table.c.id == delivery_id)
            .values(status=PENDING, due_at=now, attempts=0, lease_until=None)
        )
        if updated.rowcount == 0:
            raise NotFound(f"No outbox delivery {delivery_id}")


_RECORD_OUTCOME = (
    outbox_table.update()
    .where(outbox_table.c.id == bindparam("_id"))
    .values(
        status=bindparam("_status"),
        attempts=bindparam("_attempts"),
        last_status=bindparam("_last_status"),
        last_error=bindparam("_last_error"),
        due_at=bindparam("_due_at"),
        delivered_at=bindparam("_delivered_at"),
        lease_until=None,
    )
)


@dataclass
class Outcome:
    """What one claimed delivery came to: sent (with an answer or an error) or skipped."""

    row: Any
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    skipped: bool = False
    no_backoff: bool = False  # the noBackoff fault: a failure is retried at once
    held: bool = False  # not sent: an earlier event about its resource was not accepted

    def status_after(self, max_attempts: int) -> str:
        """The delivery's status once this outcome is recorded."""
        if self.skipped:
            return SKIPPED
        if self.held:
            return PENDING
        if self.status is not None and 200 <= self.status < 300:
            return DELIVERED
        if self.status == 410 or self.row.attempts + 1 >= max_attempts:
            # 410 Gone: the receiver asked us to stop (Standard Webhooks).
            return DEAD
        return PENDING

    def holds_back(self, max_attempts: int) -> bool:
        """Whether the resource's later events must wait for this one: it will be sent
        again (a delivered event, a dead letter or a 410 holds nothing back)."""
        return self.status_after(max_attempts) == PENDING

    def values(self, now: float, max_attempts: int) -> dict[str, Any]:
        row = self.row
        status = self.status_after(max_attempts)
        values: dict[str, Any] = {
            "_id": row.id,
            "_status": status,
            "_attempts": row.attempts,
            "_last_status": row.last_status,
            "_last_error": row.last_error,
            "_due_at": row.due_at,
            "_delivered_at": None,
        }
        if self.skipped:
            return values
        if self.held:
            # Due at once: the next claim hands it back until its earlier event has gone.
            values["_due_at"] = now
            return values
        values.update(_attempts=row.attempts + 1, _last_status=self.status, _last_error=self.error)
        if status == DELIVERED:
            values["_delivered_at"] = now
        elif status == PENDING:
            base = RETRY_SCHEDULE_S[min(row.attempts + 1, len(RETRY_SCHEDULE_S) - 1)]
            delay = max(base * (0.8 + 0.4 * _jitter()), self.retry_after or 0.0)
            values["_due_at"] = now + (0.0 if self.no_backoff else delay)
        return values


def _as_faults_say(
    conn: Connection, decision: Decision, delivery: dict[str, Any], now: float
) -> list[dict[str, Any]]:
    """The deliveries one event becomes under the callback faults that fired on it: held
    back (delay, outOfOrder), sent again under the same webhook-id (duplicate, storm), or
    preceded by the subscription's earlier events sent once more (replay)."""
    first = dict(delivery)
    extra: list[dict[str, Any]] = []
    for firing in decision.callbacks:
        effect = firing.effect
        if firing.kind == "delay":
            first["due_at"] += float(effect.get("seconds", 60))
        elif firing.kind == "outOfOrder":
            # Later events about the same resource overtake this one.
            first["due_at"] += float(effect.get("seconds", 30))
        elif firing.kind == "duplicate":
            extra += [dict(first) for _ in range(int(effect.get("copies", 1)))]
        elif firing.kind == "storm":
            rate, seconds = int(effect["perSecond"]), float(effect["seconds"])
            extra += [
                {**first, "due_at": first["due_at"] + n / rate}
                for n in range(1, int(rate * seconds))
            ]
        elif firing.kind == "replay":
            earlier = conn.execute(
                select(outbox_table)
                .where(outbox_table.c.hub_id == delivery["hub_id"], outbox_table.c.status == DONE)
                .order_by(outbox_table.c.id.desc())
                .limit(int(effect.get("count", 3)))
            ).all()
            for old in reversed(earlier):
                replayed = {key: getattr(old, key) for key in delivery}
                extra.append({**replayed, "status": PENDING, "attempts": 0, "due_at": now})
    if decision.callbacks:
        # Sent out of turn on purpose (held back, repeated, replayed): they neither wait
        # for the resource's earlier events nor hold its later ones back.
        return [{**row, "subject": None} for row in (first, *extra)]
    return [first, *extra]


_UNSENT_OF_SUBJECTS = select(
    outbox_table.c.id,
    outbox_table.c.hub_id,
    outbox_table.c.subject,
    outbox_table.c.status,
    outbox_table.c.due_at,
).where(
    outbox_table.c.hub_id.in_(bindparam("hub_ids", expanding=True)),
    outbox_table.c.subject.in_(bindparam("subjects", expanding=True)),
    outbox_table.c.status.in_((PENDING, RUNNING)),
    outbox_table.c.id.not_in(bindparam("claimed", expanding=True)),
)
# A claimed delivery handed back: due again once the event before it has gone.
_HAND_BACK = (
    outbox_table.update()
    .where(outbox_table.c.id == bindparam("_id"))
    .values(status=PENDING, lease_until=None, due_at=bindparam("_due_at"))
)
# How soon to look again at a delivery whose earlier event another dispatcher is sending.
WAIT_FOR_SENDER_S = 1.0


def _after_earlier_events(conn: Connection, rows: list[Any], now: float) -> list[Any]:
    """The claimed deliveries whose resource has no earlier event to the same subscription
    still unsent; the others are handed back, due when that event is (a retry's backoff),
    so a receiver that failed `inProgress` does not get `completed` first. A dead-lettered
    event holds nothing back."""
    about = [row for row in rows if row.subject is not None]
    if not about:
        return rows
    unsent = conn.execute(
        _UNSENT_OF_SUBJECTS,
        {
            "hub_ids": sorted({row.hub_id for row in about}),
            "subjects": sorted({row.subject for row in about}),
            "claimed": [row.id for row in rows],
        },
    ).all()
    if not unsent:
        return rows
    waiting: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for earlier in unsent:
        waiting[(earlier.hub_id, earlier.subject)].append(earlier)
    kept: list[Any] = []
    handed_back: list[dict[str, Any]] = []
    held: dict[tuple[str, str], float] = {}
    for row in sorted(rows, key=lambda row: row.id):
        key = (row.hub_id, row.subject)
        before = [e for e in waiting.get(key, ()) if e.id < row.id] if row.subject else []
        due = held.get(key)
        for earlier in before:
            at = now + WAIT_FOR_SENDER_S if earlier.status == RUNNING else earlier.due_at
            due = at if due is None else max(due, at)
        if due is None:
            kept.append(row)
            continue
        held[key] = due  # the resource's later events in this claim wait as well
        handed_back.append({"_id": row.id, "_due_at": max(due, row.due_at)})
    if handed_back:
        conn.execute(_HAND_BACK, handed_back)
    kept_ids = {row.id for row in kept}
    return [row for row in rows if row.id in kept_ids]


def _in_order_groups(rows: list[Any]) -> list[list[Any]]:
    """Deliveries about one resource to one subscription, oldest first, go out one after
    the other, so a partner never sees `completed` before `inProgress`; the groups run
    side by side."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        event = row.payload.get("event") if isinstance(row.payload, dict) else None
        resource = next(iter(event.values()), None) if isinstance(event, dict) and event else None
        subject = resource.get("id") if isinstance(resource, dict) else None
        groups[(row.hub_id, str(subject) if subject is not None else row.message_id)].append(row)
    return list(groups.values())


_DISABLED_AMONG = select(endpoint_table.c.hub_id).where(
    endpoint_table.c.hub_id.in_(bindparam("hub_ids", expanding=True)),
    endpoint_table.c.disabled_at.is_not(None),
)
_PRESENT_AMONG = select(hub_table.c.id).where(
    hub_table.c.id.in_(bindparam("hub_ids", expanding=True))
)
_REACHED_AGAIN = (
    endpoint_table.update()
    .where(
        endpoint_table.c.hub_id.in_(bindparam("hub_ids", expanding=True)),
        endpoint_table.c.consecutive_dead > 0,
    )
    .values(consecutive_dead=0)
)


def _disabled_or_gone_hubs(conn: Connection, hub_ids: set[str]) -> set[str]:
    ordered = {"hub_ids": sorted(hub_ids)}
    disabled = set(conn.execute(_DISABLED_AMONG, ordered).scalars())
    present = set(conn.execute(_PRESENT_AMONG, ordered).scalars())
    return disabled | (hub_ids - present)


def _track_endpoints(
    conn: Connection,
    outcomes: list[Outcome],
    updates: list[dict[str, Any]],
    now: float,
    disable_after: int,
) -> None:
    """A delivery reaching its endpoint resets the run of dead letters; the K-th dead letter
    in a row, or one 410, disables the endpoint (Standard Webhooks: 410 = disable)."""
    reached: set[str] = set()
    dead: dict[str, list[Outcome]] = defaultdict(list)
    for outcome, update in zip(outcomes, updates, strict=True):
        if update["_status"] == DELIVERED:
            reached.add(outcome.row.hub_id)
        elif update["_status"] == DEAD:
            dead[outcome.row.hub_id].append(outcome)
    healthy = reached - set(dead)
    if healthy:
        conn.execute(_REACHED_AGAIN, {"hub_ids": sorted(healthy)})
    for hub_id, letters in dead.items():
        current = select_equal(conn, endpoint_table, hub_id=hub_id).first()
        count = (current.consecutive_dead if current is not None else 0) + len(letters)
        reason = None
        if any(letter.status == 410 for letter in letters):
            reason = GONE
        elif disable_after > 0 and count >= disable_after:
            reason = DEAD_LETTERS
        values: dict[str, Any] = {"consecutive_dead": count}
        if reason and (current is None or current.disabled_at is None):
            values.update(disabled_at=now, disabled_reason=reason)
        if current is None:
            conn.execute(
                endpoint_table.insert(), {"hub_id": hub_id, "role": letters[0].row.role, **values}
            )
        else:
            update_equal(conn, endpoint_table, {"hub_id": hub_id}, **values)


def _jitter() -> float:
    return uuid.uuid4().int % 1000 / 1000.0
