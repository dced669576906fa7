"""The simulated clock: wall time plus an offset the admin API moves, or frozen.

Domain code never calls `datetime.now()`; it asks this clock, so SLA timers,
async lifecycles and retries can be driven forward in a test.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Boolean, Column, Connection, Float, Integer, select

from .problems import Unprocessable
from .store import CORE_ROLE, Store, role_table, update_equal

# The times the clock may show. Every timestamp the stack writes is a datetime, whose last
# year is 9999; periods, SLAs and retries reach months past the clock, so it stops well
# short of that. Nothing in the stack predates the Unix epoch.
EARLIEST = 0.0
LATEST = datetime(9000, 1, 1, tzinfo=UTC).timestamp()


class ClockOutOfRange(Unprocessable):
    code = "CLOCK_OUT_OF_RANGE"
    title = "The simulated clock cannot show that time"


def check_in_range(epoch: float, field: str = "now") -> float:
    """`epoch` if the clock may show it; refused, naming the range and `field`, otherwise."""
    if not EARLIEST <= epoch < LATEST:
        raise ClockOutOfRange(
            "The simulated clock runs from 1970-01-01T00:00:00Z up to 9000-01-01T00:00:00Z",
            field=field,
        )
    return epoch


clock_table = role_table(
    CORE_ROLE,
    "clock",
    Column("id", Integer, primary_key=True),
    Column("offset_s", Float, nullable=False, default=0.0),
    Column("frozen", Boolean, nullable=False, default=False),
    Column("frozen_at", Float, nullable=True),
)


_STATE = select(clock_table.c.offset_s, clock_table.c.frozen, clock_table.c.frozen_at).where(
    clock_table.c.id == 1
)
# The same query as the driver runs it. Every step, request and dispatcher pass reads the
# clock, and SQLAlchemy's own work per statement took eight times SQLite's.
_STATE_SQL: dict[str, str] = {}


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@lru_cache(maxsize=4096)
def isoformat(epoch: float) -> str:
    """RFC 3339 in UTC with milliseconds, the form every contract uses.

    Kept for the last few thousand instants: a resource polled again and again renders
    the same timestamps each time, and building the datetime was a few percent of a GET."""
    return to_datetime(epoch).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Clock:
    """Shared by every worker through the store; a single row holds its state."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _state(self, conn: Connection) -> tuple[float, bool, float | None]:
        dialect = conn.dialect
        sql = _STATE_SQL.get(dialect.name)
        if sql is None:
            sql = _STATE_SQL[dialect.name] = str(
                _STATE.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            )
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            return 0.0, False, None
        offset_s, frozen, frozen_at = row
        return float(offset_s), bool(frozen), None if frozen_at is None else float(frozen_at)

    def now(self, conn: Connection | None = None) -> float:
        """Simulated epoch seconds."""
        if conn is None:
            with self.store.read() as own:
                return self.now(own)
        offset, frozen, frozen_at = self._state(conn)
        if frozen and frozen_at is not None:
            return float(frozen_at)
        return time.time() + offset

    def describe(self) -> dict[str, object]:
        with self.store.read() as conn:
            offset, frozen, _ = self._state(conn)
            now = self.now(conn)
        return {"now": isoformat(now), "epoch": now, "offsetSeconds": offset, "frozen": frozen}

    def _save(self, conn: Connection, offset: float, frozen: bool, frozen_at: float | None) -> None:
        values = {"offset_s": offset, "frozen": frozen, "frozen_at": frozen_at}
        if update_equal(conn, clock_table, {"id": 1}, **values).rowcount == 0:
            conn.execute(clock_table.insert(), {"id": 1, **values})

    def advance(self, seconds: float) -> float:
        with self.store.write() as conn:
            offset, frozen, frozen_at = self._state(conn)
            frozen_at = frozen_at + seconds if frozen and frozen_at is not None else frozen_at
            self._save(conn, offset + seconds, frozen, frozen_at)
            return self.now(conn)

    def set(self, epoch: float | None = None, frozen: bool | None = None) -> float:
        """Jump to `epoch` (default: keep the time) and optionally freeze or thaw."""
        with self.store.write() as conn:
            return self.set_in(conn, epoch, frozen)

    def set_in(self, conn: Connection, epoch: float | None, frozen: bool | None) -> float:
        """`set` inside the caller's transaction."""
        _offset, was_frozen, _ = self._state(conn)
        target = self.now(conn) if epoch is None else check_in_range(epoch)
        keep_frozen = was_frozen if frozen is None else frozen
        self._save(conn, target - time.time(), keep_frozen, target if keep_frozen else None)
        return self.now(conn)
