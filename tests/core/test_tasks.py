"""Claiming due work: which rows a dispatcher takes, in what order, and at what cost."""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.dialects import sqlite

from simulators.core.outbox import outbox_table
from simulators.core.runtime import Runtime
from simulators.core.store import Store
from simulators.core.tasks import (
    PENDING,
    RUNNING,
    _statements,
    claim_due,
    next_due_among,
    retry_after_seconds,
    task_table,
)


def _schedule(runtime: Runtime, n: int, due_at: float) -> None:
    with runtime.store.write() as conn:
        runtime.tasks.schedule(
            conn, role="mvne", kind="test.step", payload={"n": n}, due_at=due_at,
            correlation_id=None,
        )  # fmt: skip


def _ns(rows: list) -> list[int]:
    return [row.payload["n"] for row in rows]


def test_a_claim_takes_due_and_abandoned_rows_oldest_due_first_up_to_its_limit(
    runtime: Runtime,
) -> None:
    now = runtime.clock.now()
    for n, due_at in enumerate([now - 5, now - 50, now - 1, now + 60, now - 20, now - 30]):
        _schedule(runtime, n, due_at)
    with runtime.store.write() as conn:
        ids = {row.payload["n"]: row.id for row in conn.execute(select(task_table)).all()}
        # n=5 was taken by a worker that died (lease over); n=4 by one still at work.
        conn.execute(
            update(task_table).where(task_table.c.id == ids[5])
            .values(status=RUNNING, lease_until=time.time() - 1)
        )  # fmt: skip
        conn.execute(
            update(task_table).where(task_table.c.id == ids[4])
            .values(status=RUNNING, lease_until=time.time() + 60)
        )  # fmt: skip

    with runtime.store.write() as conn:
        first = claim_due(conn, runtime.store, task_table, now, 3)
    assert _ns(first) == [1, 5, 0]  # due 50 s ago, 30 s ago (abandoned), 5 s ago
    with runtime.store.write() as conn:
        second = claim_due(conn, runtime.store, task_table, now, 3)
    # The rest that is due; n=3 is not due yet and n=4's worker still holds its lease.
    assert _ns(second) == [2]
    with runtime.store.read() as conn:
        statuses = dict(conn.execute(select(task_table.c.id, task_table.c.status)).all())
    assert [statuses[ids[n]] for n in range(6)] == [RUNNING] * 3 + [PENDING] + [RUNNING] * 2
    assert next_due_among(runtime.store, (task_table,)) == now + 60


def test_an_abandoned_row_due_earlier_comes_first_in_a_claim_below_its_limit(
    runtime: Runtime,
) -> None:
    now = runtime.clock.now()
    _schedule(runtime, 0, now - 5)
    _schedule(runtime, 1, now - 30)
    with runtime.store.write() as conn:
        conn.execute(
            update(task_table).where(task_table.c.payload["n"].as_integer() == 1)
            .values(status=RUNNING, lease_until=time.time() - 1)
        )  # fmt: skip
    with runtime.store.write() as conn:
        claimed = claim_due(conn, runtime.store, task_table, now, 10)
    assert _ns(claimed) == [1, 0]


def test_claims_and_next_due_seek_an_index_however_much_is_queued(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.create_all()
    try:
        with store.read() as conn:
            for table in (task_table, outbox_table):
                statements = _statements(table, False)
                for statement in (statements.pending, statements.next_due):
                    compiled = statement.compile(dialect=sqlite.dialect())
                    values = {"now": 0.0, "limit": 10, "param_1": 0, "status_1": PENDING}
                    plan = " / ".join(
                        row[3]
                        for row in conn.exec_driver_sql(
                            f"EXPLAIN QUERY PLAN {compiled}",
                            tuple(values[name] for name in compiled.positiontup or ()),
                        ).all()
                    )
                    # A range of the (status, due_at) index, already in due order: no scan
                    # of every pending row, no sort of them.
                    assert f"INDEX ix_{table.name}_status_due" in plan, plan
                    assert "TEMP B-TREE" not in plan, plan
    finally:
        store.dispose()


def test_an_earlier_store_trades_its_status_indexes_for_the_claim_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    old = Store(url)
    old.create_all()
    with old.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_outbox_status_due"))
        conn.execute(text("DROP INDEX ix_task_status_lease"))
        # What the earlier version had instead.
        conn.execute(text("CREATE INDEX ix_outbox_status ON outbox (status)"))
        conn.execute(text("CREATE INDEX ix_task_status ON task (status)"))
        conn.execute(text("CREATE INDEX ix_task_due_at ON task (due_at)"))
    old.dispose()

    store = Store(url)
    store.create_all()
    with store.read() as conn:
        names = {row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master").all()}
    store.dispose()
    assert {"ix_outbox_status_due", "ix_task_status_lease"} <= names
    assert not {"ix_outbox_status", "ix_task_status", "ix_task_due_at"} & names


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_retry_after_in_delay_seconds_is_read_as_is_and_garbage_as_absent(
    value: str | None, expected: float | None
) -> None:
    assert retry_after_seconds(value) == expected


def test_retry_after_as_an_http_date_is_the_wall_time_until_that_date() -> None:
    # RFC 9110 section 10.2.3: `Retry-After: Sat, 05 Dec 2026 02:34:27 GMT` is as valid
    # as delay-seconds; the date has whole seconds, so an hour ahead reads 3599-3600 s.
    an_hour_ahead = time.time() + 3600
    fixdate = formatdate(an_hour_ahead, usegmt=True)
    asctime = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(an_hour_ahead))
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(an_hour_ahead))
    for value in (fixdate, asctime, rfc850):
        wait = retry_after_seconds(value)
        assert wait is not None and 3590 <= wait <= 3600, value


def test_retry_after_as_a_past_http_date_means_no_wait_and_a_bad_date_none() -> None:
    assert retry_after_seconds(formatdate(time.time() - 600, usegmt=True)) == 0.0
    assert retry_after_seconds("Sat, 05 Dec 2026 25:61:00 GMT") is None
