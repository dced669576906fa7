"""The store: WAL on SQLite, all-or-nothing writes, reset per role, state kept over restarts."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from typing import Any

import pytest
from conftest import ORDERS, PRODUCTS, SIMS, T0, activate, first_sims, order_body
from flask.testing import FlaskClient
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.exc import IntegrityError

from simulators.core.admin import stack_state
from simulators.core.audit import audit_table
from simulators.core.config import Settings
from simulators.core.outbox import outbox_table
from simulators.core.runtime import Runtime
from simulators.core.store import (
    INLINE_CHECKPOINT_PAGES,
    Store,
    delete_equal,
    select_equal,
    update_equal,
)
from simulators.core.tenancy import partners
from simulators.mvne import events
from simulators.mvne.model import order_table, sim_table
from simulators.stack import create_app, runtime_of


def count(store: Store, table: Table) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def rows_per_table(store: Store, role: str) -> dict[str, int]:
    return {table.name: count(store, table) for table in store.tables(role)}


def probe_value(store: Store) -> str | None:
    with store.read() as conn:
        return conn.execute(
            select(stack_state.c.value).where(stack_state.c.key == "probe")
        ).scalar()


# --- SQLite journal mode --------------------------------------------------------------


def test_sqlite_store_file_is_in_wal_mode(runtime: Runtime) -> None:
    if not runtime.store.is_sqlite:
        pytest.skip("WAL is a SQLite journal mode; PostgreSQL has its own")
    database = runtime.store.url.database
    assert database
    # WAL is persistent: any other process opening the file sees it, not only our pool.
    with sqlite3.connect(database) as outsider:
        assert outsider.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with runtime.store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_the_wal_is_copied_back_by_a_thread_not_by_the_writes(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    store.create_all()
    try:
        with store.read() as conn:
            # SQLite's own checkpoint inside a commit is only the fallback, far behind.
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
                INLINE_CHECKPOINT_PAGES
            )
        others = set(threading.enumerate())  # other stores' threads, in this test process
        with store.write() as conn:
            conn.execute(stack_state.insert(), {"key": "written", "value": "1"})
        checkpointers = [
            thread
            for thread in set(threading.enumerate()) - others
            if thread.name == "handoff-wal-checkpoint"
        ]
        assert len(checkpointers) == 1
        busy, frames, copied = store.checkpoint()
        assert (busy, copied) == (0, frames) and frames > 0
    finally:
        store.dispose()
    for thread in checkpointers:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in checkpointers)


# --- transactions ---------------------------------------------------------------------


def test_a_write_that_raises_leaves_nothing(runtime: Runtime) -> None:
    store = runtime.store
    with pytest.raises(RuntimeError, match="crash mid-write"):
        with store.write() as conn:
            conn.execute(stack_state.insert().values(key="probe", value="written"))
            conn.execute(
                partners.update().where(partners.c.id == "mvno-alpha").values(name="Renamed")
            )
            raise RuntimeError("crash mid-write")
    assert probe_value(store) is None
    with store.read() as conn:
        name = conn.execute(select(partners.c.name).where(partners.c.id == "mvno-alpha")).scalar()
    assert name == "Alpha Mobile"


def test_a_write_the_database_refuses_half_way_leaves_nothing(runtime: Runtime) -> None:
    store = runtime.store
    with pytest.raises(IntegrityError):
        with store.write() as conn:
            conn.execute(stack_state.insert().values(key="probe", value="written"))
            # The seed row exists after every reset: a second one breaks the primary key.
            conn.execute(stack_state.insert().values(key="seed", value="1"))
    assert probe_value(store) is None


def test_a_write_that_completes_is_visible_to_a_new_connection(runtime: Runtime) -> None:
    with runtime.store.write() as conn:
        conn.execute(stack_state.insert().values(key="probe", value="written"))
    other = Store(runtime.settings.db_url)
    try:
        assert probe_value(other) == "written"
    finally:
        other.dispose()


def test_a_request_that_fails_after_writing_leaves_no_trace(
    client: FlaskClient,
    runtime: Runtime,
    alpha: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order row, the SIM reservation and the audit record are written before the
    event is queued; a crash while queueing must undo all of them."""

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(events, "order_event", crash)
    iccid = first_sims(client, alpha)[0]
    response = client.post(
        ORDERS,
        json=order_body(iccid),
        headers={**alpha, "X-Correlation-ID": "crash-1"},
    )
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "INTERNAL"
    assert count(runtime.store, order_table) == 0
    with runtime.store.read() as conn:
        status = conn.execute(select(sim_table.c.status).where(sim_table.c.iccid == iccid)).scalar()
        audited = conn.execute(
            select(func.count())
            .select_from(audit_table)
            .where(audit_table.c.correlation_id == "crash-1")
        ).scalar_one()
    assert status == "available"
    assert audited == 0
    assert count(runtime.store, outbox_table) == 0
    # The same order goes through once the fault is gone: nothing half-done blocks it.
    monkeypatch.undo()
    retried = client.post(ORDERS, json=order_body(iccid), headers=alpha)
    assert retried.status_code == 201, retried.get_data(as_text=True)
    assert "Idempotent-Replayed" not in retried.headers


# --- reset per role -------------------------------------------------------------------


def test_reset_of_one_role_clears_only_its_tables(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    activate(client, runtime, alpha)
    runtime.journal.flush()  # nothing left for the background flusher to add mid-test
    store = runtime.store
    mno_before = rows_per_table(store, "mno")
    core_before = rows_per_table(store, "core")
    assert rows_per_table(store, "mvne")["mvne_product_order"] == 1
    assert mno_before["mno_service"] == 1

    store.reset("mvne")

    assert set(rows_per_table(store, "mvne").values()) == {0}
    assert rows_per_table(store, "mno") == mno_before
    assert rows_per_table(store, "core") == core_before
    # Partners are core state: the partner still authenticates, its MVNE data is gone.
    answer = client.get(SIMS, headers=alpha)
    assert answer.status_code == 200
    assert answer.get_json() == []


def test_reset_of_the_mno_leaves_the_mvne_alone(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    product = activate(client, runtime, alpha)
    mvne_before = rows_per_table(runtime.store, "mvne")

    runtime.store.reset("mno")

    assert set(rows_per_table(runtime.store, "mno").values()) == {0}
    assert rows_per_table(runtime.store, "mvne") == mvne_before
    assert client.get(f"{PRODUCTS}/{product['id']}", headers=alpha).status_code == 200


def test_reset_without_role_clears_every_table(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    activate(client, runtime, alpha)
    runtime.journal.flush()
    runtime.store.reset()
    assert {table.name: count(runtime.store, table) for table in runtime.store.tables()} == {
        table.name: 0 for table in runtime.store.tables()
    }


# --- restart --------------------------------------------------------------------------


def test_a_restarted_stack_sees_everything_the_first_one_stored(
    client: FlaskClient, runtime: Runtime, settings: Settings, alpha: dict[str, str]
) -> None:
    product = activate(client, runtime, alpha)
    order_id = product["productOrder"]["id"]
    order = client.get(f"{ORDERS}/{order_id}", headers=alpha).get_json()
    runtime.journal.flush()

    restarted_app = create_app(settings)
    restarted = runtime_of(restarted_app)
    try:
        assert restarted is not runtime
        again = restarted_app.test_client()
        assert again.get(f"{ORDERS}/{order_id}", headers=alpha).get_json() == order
        assert again.get(f"{PRODUCTS}/{product['id']}", headers=alpha).get_json() == product
        # The simulated clock lives in the store too (`activate` advanced it 5 s): a restart
        # does not jump back to wall time.
        assert restarted.clock.now() == T0 + 5
        assert restarted.clock.describe()["frozen"] is True
        # Starting on a seeded store adds nothing: still one order, same SIM pool.
        assert count(restarted.store, order_table) == 1
        assert count(restarted.store, sim_table) == count(runtime.store, sim_table)
    finally:
        restarted.close()


def test_a_new_runtime_on_the_same_settings_shares_the_store(
    runtime: Runtime, settings: Settings
) -> None:
    other = Runtime(settings)
    try:
        with other.store.write() as conn:
            conn.execute(stack_state.insert().values(key="probe", value="from-other"))
        other.clock.advance(60)
        assert probe_value(runtime.store) == "from-other"
        assert runtime.clock.now() == T0 + 60
    finally:
        other.close()


def test_a_forked_worker_waits_for_the_write_turn_its_parent_holds(tmp_path: Any) -> None:
    """Workers forked from one process (gunicorn) each open the lock file themselves: a
    descriptor inherited across the fork would share the parent's lock and exclude nobody."""
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    with store.write():
        pass  # the parent has opened its descriptor before the fork, as a preloaded app would
    context = multiprocessing.get_context("fork")
    held, done = context.Event(), context.Event()

    def child() -> None:
        held.wait(10)
        with store._sqlite_write_turn():
            done.set()

    worker = context.Process(target=child)
    worker.start()
    with store._sqlite_write_turn():
        held.set()
        assert not done.wait(0.5), "the child took the write turn its parent holds"
    assert done.wait(10), "the child never got the write turn once it was free"
    worker.join(10)
    store.dispose()


def _keyed_store(tmp_path: Any) -> tuple[Store, Table]:
    store = Store(f"sqlite:///{tmp_path / 'keyed.db'}")
    table = Table(
        "keyed",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("owner", String(20), nullable=True),
        Column("state", String(20), nullable=False),
        Column("details", JSON, nullable=True),
    )
    table.create(store.engine)
    with store.write() as conn:
        conn.execute(
            table.insert(),
            [
                {"id": 1, "owner": "alpha", "state": "new", "details": {"n": 1}},
                {"id": 2, "owner": "beta", "state": "new", "details": None},
                {"id": 3, "owner": None, "state": "new", "details": None},
            ],
        )
    return store, table


def test_keyed_helpers_match_none_as_null_and_touch_only_the_rows_named(tmp_path: Any) -> None:
    store, table = _keyed_store(tmp_path)
    with store.write() as conn:
        assert [row.id for row in select_equal(conn, table, owner=None)] == [3]
        assert select_equal(conn, table, id=1, owner="beta").first() is None
        assert select_equal(conn, table, id=1, owner="alpha").one().details == {"n": 1}
        updated = update_equal(
            conn, table, {"id": 2, "owner": "beta"}, state="done", details={"x": 2}
        )
        assert updated.rowcount == 1
        assert update_equal(conn, table, {"owner": None}, state="orphan").rowcount == 1
        assert delete_equal(conn, table, id=1).rowcount == 1
    with store.read() as conn:
        rows = {row.id: (row.owner, row.state, row.details) for row in conn.execute(select(table))}
    assert rows == {2: ("beta", "done", {"x": 2}), 3: (None, "orphan", None)}
    store.dispose()


def test_an_update_with_nothing_to_set_is_refused_before_it_reaches_the_store(
    tmp_path: Any,
) -> None:
    store, table = _keyed_store(tmp_path)
    with pytest.raises(ValueError, match="nothing to set"), store.write() as conn:
        update_equal(conn, table, {"id": 1})
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 3
    store.dispose()
