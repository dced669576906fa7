"""Scheduled lifecycle steps (an order progressing, a network order completing).

A step is a row with a due time on the simulated clock. Any worker may run
due steps; a wall-clock lease keeps two workers off the same row and lets a
crashed worker's step be picked up again.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    or_,
    select,
)

from .store import CORE_ROLE, Store, role_table, update_equal

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("handoff.tasks")

LEASE_S = 60.0

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"


def claim_indexes(table_name: str) -> tuple[Index, Index]:
    """The indexes the dispatcher's statements seek on: one status's rows in due (or lease)
    order. With an index on status alone, every claim read and sorted all pending rows:
    a burst of 20,000 callbacks made each claim of a few dozen cost 20 ms."""
    return (
        Index(f"ix_{table_name}_status_due", "status", "due_at"),
        Index(f"ix_{table_name}_status_lease", "status", "lease_until"),
    )


task_table = role_table(
    CORE_ROLE,
    "task",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("role", String(16), nullable=False),
    Column("kind", String(60), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("correlation_id", String(256), nullable=True),
    Column("due_at", Float, nullable=False),
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False, default=6),
    Column("lease_until", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    *claim_indexes("task"),
    info={"retired_indexes": ("ix_task_status", "ix_task_due_at")},
)


_INSERT = task_table.insert()


@dataclass(frozen=True)
class Task:
    id: int
    role: str
    kind: str
    payload: dict[str, Any]
    correlation_id: str | None
    attempts: int
    max_attempts: int = 6

    @property
    def last_attempt(self) -> bool:
        """True when a failure now would be final; the step should settle its domain state."""
        return self.attempts + 1 >= self.max_attempts


class Reschedule(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a step that must run again later (e.g. polling a peer)."""

    def __init__(self, delay_s: float, reason: str = "") -> None:
        super().__init__(reason or f"again in {delay_s}s")
        self.delay_s = delay_s


class RetryLater(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a step whose peer asked to be called again no sooner than `delay_s`
    (its `Retry-After`): the attempt counts, and the next waits at least that long."""

    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header as seconds from now; None when absent or unreadable.

    RFC 9110 section 10.2.3 allows delay-seconds or an HTTP-date; a date is taken
    on the wall clock, as the receiver that sent it means it, and one already
    past means no wait.
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        # IMF-fixdate and the obsolete RFC 850 and asctime forms (RFC 9110 section 5.6.7).
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:  # asctime carries no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


Handler = Callable[["Runtime", Task], None]


def _pending_due(table: Table) -> Any:
    """Rows due on the simulated clock."""
    return (table.c.status == PENDING) & (table.c.due_at <= bindparam("now"))


def _lease_ended(table: Table) -> Any:
    """Rows whose worker's lease ran out (on the wall clock): a crashed worker's."""
    return (table.c.status == RUNNING) & (table.c.lease_until < bindparam("wall"))


@dataclass(frozen=True)
class _DispatchStatements:
    pending: Any  # due rows in due order, up to :limit
    lease_ended: Any  # rows of an ended lease in due order, up to :limit
    lease: Any
    any_due: Any  # a boolean column: is anything due?
    next_due: Any


@cache
def _statements(table: Table, lock_rows: bool) -> _DispatchStatements:
    """The dispatcher's statements on one table, built once: building a statement cost
    several times what SQLite takes to run it, and they run several times a tick.

    Pending and lease-ended rows are read by two statements, each an index range in due
    order: one statement with OR between them cannot walk an index in order, so it read
    every pending row and sorted them to keep a few."""

    def claim(condition: Any) -> Any:
        query = (
            select(table)
            .where(condition)
            .order_by(table.c.due_at, table.c.id)
            .limit(bindparam("limit"))
        )
        return query.with_for_update(skip_locked=True) if lock_rows else query

    lease = (
        table.update()
        .where(table.c.id.in_(bindparam("ids", expanding=True)))
        .values(status=RUNNING, lease_until=bindparam("lease_until"))
    )
    any_due = or_(
        select(table.c.id).where(_pending_due(table)).exists(),
        select(table.c.id).where(_lease_ended(table)).exists(),
    )
    next_due = select(func.min(table.c.due_at)).where(table.c.status == PENDING)
    return _DispatchStatements(
        claim(_pending_due(table)), claim(_lease_ended(table)), lease, any_due, next_due
    )


def claim_due(conn: Connection, store: Store, table: Table, now: float, limit: int) -> list[Any]:
    """Take up to `limit` due rows, oldest due first, leasing them so no other worker
    runs them."""
    wall = time.time()
    statements = _statements(table, not store.is_sqlite)
    rows = list(conn.execute(statements.pending, {"now": now, "limit": limit}).all())
    abandoned = conn.execute(statements.lease_ended, {"wall": wall, "limit": limit}).all()
    if abandoned:
        rows = sorted([*rows, *abandoned], key=lambda row: (row.due_at, row.id))[:limit]
    if rows:
        conn.execute(
            statements.lease, {"ids": [row.id for row in rows], "lease_until": wall + LEASE_S}
        )
    return rows


@cache
def _due_among(tables: tuple[Table, ...]) -> Any:
    # Labelled: unnamed columns would keep the statement off the direct SQLite path.
    return select(*(_statements(table, False).any_due.label(table.name) for table in tables))


def due_among(store: Store, tables: tuple[Table, ...], now: float) -> tuple[bool, ...]:
    """For each table, whether a claim would find a row, in one read: an idle dispatcher
    pass takes no write lock (the claim itself still decides, under the lock, which rows
    are taken), and the dispatcher asks after every pass, where a statement costs more in
    SQLAlchemy than in SQLite."""
    with store.read() as conn:
        found = conn.execute(_due_among(tables), {"now": now, "wall": time.time()}).one()
    return tuple(bool(value) for value in found)


@cache
def _next_due_among(tables: tuple[Table, ...]) -> Any:
    return select(
        *(
            _statements(table, False).next_due.scalar_subquery().label(table.name)
            for table in tables
        )
    )


def next_due_among(store: Store, tables: tuple[Table, ...]) -> float | None:
    """The earliest pending due time across several tables, in one read."""
    with store.read() as conn:
        found = conn.execute(_next_due_among(tables)).one()
    dues = [float(value) for value in found if value is not None]
    return min(dues) if dues else None


def running_elsewhere(store: Store, table: Table) -> bool:
    """Whether some process holds a live lease on a row of `table`: a step or delivery it
    is running right now."""
    held = select(table.c.id).where(
        (table.c.status == RUNNING) & (table.c.lease_until >= time.time())
    )
    with store.read() as conn:
        return conn.execute(held.limit(1)).first() is not None


def backoff_s(attempt: int, base: float = 1.0, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter (AWS architecture blog), never below base/2."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return max(base / 2, random.uniform(0, ceiling))


class Tasks:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.handlers: dict[str, Handler] = {}

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def schedule(
        self,
        conn: Connection,
        *,
        role: str,
        kind: str,
        payload: dict[str, Any],
        due_at: float,
        correlation_id: str | None,
        max_attempts: int = 6,
    ) -> None:
        conn.execute(
            _INSERT,
            {
                "role": role,
                "kind": kind,
                "payload": payload,
                "correlation_id": correlation_id,
                "due_at": due_at,
                "status": PENDING,
                "attempts": 0,
                "max_attempts": max_attempts,
                "created_at": due_at,
            },
        )

    def run_due(self, runtime: Runtime, limit: int = 50, *, checked: bool = False) -> int:
        """Run every step due now on the simulated clock; return how many ran. `checked`:
        the caller has just seen one due, so the claim need not be preceded by a look."""
        now = runtime.clock.now()
        if not checked and not self.due(now):
            return 0
        with self.store.write() as conn:
            rows = claim_due(conn, self.store, task_table, now, limit)
        outcomes: list[tuple[int, dict[str, Any]]] = []
        try:
            for row in rows:
                task = Task(
                    row.id,
                    row.role,
                    row.kind,
                    dict(row.payload),
                    row.correlation_id,
                    row.attempts,
                    row.max_attempts,
                )
                outcomes.append((task.id, self._run_one(runtime, task, row.max_attempts)))
        finally:
            # One transaction for the batch's outcomes: a step whose outcome a crash loses
            # here runs again when its lease ends, as one cut off mid-step always has.
            if outcomes:
                with self.store.write() as conn:
                    for task_id, values in outcomes:
                        update_equal(conn, task_table, {"id": task_id}, **values)
        return len(rows)

    def _run_one(self, runtime: Runtime, task: Task, max_attempts: int) -> dict[str, Any]:
        """Run one step; the values its task row takes (done, again later, or failed)."""
        handler = self.handlers.get(task.kind)
        values: dict[str, Any]
        try:
            if handler is None:
                raise LookupError(f"no handler for step {task.kind}")
            handler(runtime, task)
            values = {"status": DONE, "lease_until": None}
        except Reschedule as again:
            values = {
                "status": PENDING,
                "due_at": runtime.clock.now() + again.delay_s,
                "lease_until": None,
                "last_error": str(again),
            }
        except Exception as exc:  # a failing step must not stop the others
            attempts = task.attempts + 1
            log.warning("step %s #%s failed: %s", task.kind, task.id, exc)
            values = {
                "attempts": attempts,
                "lease_until": None,
                "last_error": "".join(traceback.format_exception_only(exc)).strip()[:2000],
                "status": FAILED if attempts >= max_attempts else PENDING,
                "due_at": runtime.clock.now() + max(backoff_s(attempts), _asked_delay(exc)),
            }
        return values

    def running_elsewhere(self) -> bool:
        return running_elsewhere(self.store, task_table)

    def due(self, now: float) -> bool:
        """Whether a step is due at `now` and free to be taken."""
        return due_among(self.store, (task_table,), now)[0]

    def pending_count(self) -> int:
        with self.store.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(task_table)
                    .where(task_table.c.status == PENDING)
                ).scalar_one()
            )

    def list(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = select(task_table).order_by(task_table.c.id).limit(limit)
        if status:
            query = query.where(task_table.c.status == status)
        with self.store.read() as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]


def _asked_delay(exc: BaseException) -> float:
    return (exc.delay_s or 0.0) if isinstance(exc, RetryLater) else 0.0
