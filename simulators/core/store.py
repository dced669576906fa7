"""One SQLAlchemy Core store that every fake registers its tables with.

SQLite (WAL) by default, PostgreSQL by URL. Writers on SQLite take the write
lock at BEGIN so two workers never deadlock upgrading a read lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    MetaData,
    Row,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateColumn

from .sqlite_direct import DirectConnection

metadata = MetaData()

CORE_ROLE = "core"
# SQLite's WAL is copied back into the database by a checkpoint, which syncs the file to
# disk: 10-20 ms on this project's machine. Left to SQLite, every ~1,000th write
# transaction paid for it inside a request (a third of a POST's commit time on average,
# and its p99). A thread per process checkpoints instead, this often; a writer does it
# inline only if that thread falls this many pages behind.
CHECKPOINT_EVERY_S = 0.5
INLINE_CHECKPOINT_PAGES = 10_000
# What the WAL file is cut back to after a checkpoint when a burst has made it larger.
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
ThreadRef = weakref.ref[threading.Thread]


def role_table(role: str, name: str, *columns: Any, **kwargs: Any) -> Table:
    """Declare a table owned by one role, so `reset(role)` knows what to clear."""
    info = dict(kwargs.pop("info", {}))
    info["role"] = role
    return Table(name, metadata, *columns, info=info, **kwargs)


def partner_row(conn: Connection, table: Table, row_id: str | int, partner_id: str) -> Any | None:
    """The row only if it is the partner's own: another partner's is as absent as none."""
    return select_equal(conn, table, id=row_id, partner_id=partner_id).first()


# Statements below are built once per shape and run with bound values: SQLAlchemy spends
# three to five times as long building a statement and its cache key as SQLite takes to run
# a keyed SELECT or UPDATE, and the fakes run dozens of these per request and per step.


@cache
def _select_equal(table: Table, shape: tuple[tuple[str, bool], ...]) -> Any:
    return select(table).where(
        *(
            table.c[name].is_(None) if null else table.c[name] == bindparam(name)
            for name, null in shape
        )
    )


def select_equal(conn: Connection, table: Table, **equal: Any) -> CursorResult[Any]:
    """`SELECT * FROM table WHERE column = value AND ...` (`IS NULL` for a None value)."""
    shape = tuple((name, value is None) for name, value in equal.items())
    return conn.execute(_select_equal(table, shape), equal)


@cache
def _update_equal(table: Table, shape: tuple[tuple[str, bool], ...]) -> Any:
    return table.update().where(
        *(
            table.c[name].is_(None) if null else table.c[name] == bindparam(f"where_{name}")
            for name, null in shape
        )
    )


def update_equal(
    conn: Connection, table: Table, where: dict[str, Any], **values: Any
) -> CursorResult[Any]:
    """`UPDATE table SET column = value, ... WHERE column = value AND ...`; `values` are plain
    values (an SQL expression, such as `column + 1`, needs a statement of its own)."""
    if not values:
        raise ValueError(f"an UPDATE of {table.name} with nothing to set")
    shape = tuple((name, value is None) for name, value in where.items())
    bound = {f"where_{name}": value for name, value in where.items() if value is not None}
    return conn.execute(_update_equal(table, shape), {**values, **bound})


@cache
def _delete_equal(table: Table, names: tuple[str, ...]) -> Any:
    return table.delete().where(*(table.c[name] == bindparam(name) for name in names))


def delete_equal(conn: Connection, table: Table, **equal: Any) -> CursorResult[Any]:
    """`DELETE FROM table WHERE column = value AND ...` (values must not be None); with no
    values, every row. The statement is built once per shape."""
    return conn.execute(_delete_equal(table, tuple(equal)), equal)


def insert_ignoring_conflicts(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str] = ()
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING in the store's dialect: rows a unique constraint
    already holds are skipped (a re-run's rows). `keys` names the constraint's columns;
    none: any unique constraint."""
    if rows:
        conn.execute(_insert_ignoring(conn.dialect.name, table, tuple(keys)), list(rows))


@cache
def _insert_ignoring(dialect_name: str, table: Table, keys: tuple[str, ...]) -> Any:
    insert = postgresql_insert if dialect_name == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing(index_elements=list(keys) or None)


def equal_to(table: Table, **values: Any) -> list[Any]:
    """`column == value` for each filter a caller gave; an empty or absent one filters
    nothing (a list operation's optional query parameters)."""
    return [table.c[name] == value for name, value in values.items() if value]


def _checkpoint_until_stopped(store_ref: weakref.ref[Store], stop: threading.Event) -> None:
    """The checkpoint thread: holds the store weakly, so a store nobody disposed of
    still ends its thread once it is gone."""
    while not stop.wait(CHECKPOINT_EVERY_S):
        store = store_ref()
        if store is None:
            return
        try:
            store.checkpoint()
        except Exception:  # a busy or vanished store: SQLite's inline fallback still holds
            pass
        del store


def count_and_page(
    conn: Connection,
    table: Table,
    conditions: list[Any],
    order_by: list[Any],
    offset: int,
    limit: int,
) -> tuple[int, list[Row[Any]]]:
    """One page of the rows meeting `conditions`, in `order_by`, and how many meet them."""
    total = conn.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
    rows = conn.execute(
        select(table).where(*conditions).order_by(*order_by).offset(offset).limit(limit)
    ).all()
    return int(total), list(rows)


# The advisory lock every write transaction on PostgreSQL takes (any constant: advisory lock
# keys are per database; this one reads "Hand" in ASCII).
POSTGRES_WRITE_TURN_KEY = 0x48616E64


class Store:
    """Connection factory, schema owner and reset for the whole stack."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine()
        self._kept_by_thread: dict[tuple[int, str], tuple[ThreadRef, Connection]] = {}
        self._kept_lock = threading.Lock()
        self._thread_write_lock = threading.RLock()
        self._turn = threading.local()
        database = self.url.database or ""
        self._lock_path = (
            f"{database}.write-lock" if self.is_sqlite and database not in ("", ":memory:") else ""
        )
        self._lock_fd: tuple[int, int] | None = None  # (pid, descriptor) of the lock file
        self._checkpoints: tuple[int, threading.Event] | None = None  # (pid, stop) of the thread

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            # A request holds its connection while it waits on a peer of the same server
            # (care -> MVNE -> MNO): a worker's 32 server threads may each hold one, and
            # connections past the ten kept are closed when given back.
            engine = create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=40)

            @event.listens_for(engine, "before_cursor_execute", retval=True)
            def _no_nul(
                _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
            ) -> tuple[str, Any]:
                # PostgreSQL text cannot hold U+0000. Bodies carrying it are refused upstream;
                # an id or filter carrying it cannot match anything stored, so look up U+FFFD.
                if isinstance(parameters, dict) and any(
                    isinstance(v, str) and "\x00" in v for v in parameters.values()
                ):
                    parameters = {
                        k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v
                        for k, v in parameters.items()
                    }
                return statement, parameters

            return engine
        database = self.url.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            connect_args={"timeout": 30, "check_same_thread": False},
            # Each thread keeps a reader and a writer (see `_kept`): never make one wait.
            pool_size=8,
            max_overflow=-1,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite quirk).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint={INLINE_CHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            if options.get("handoff_read"):
                return  # autocommit reads: WAL gives each statement the last committed state
            # Straight to the driver: through SQLAlchemy's statement machinery BEGIN cost as
            # much as the statement the transaction is for.
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            dbapi.execute("BEGIN IMMEDIATE" if options.get("handoff_write") else "BEGIN")

        # Repeated statements skip SQLAlchemy's per-execution work (see sqlite_direct).
        engine._connection_cls = DirectConnection
        return engine

    def _kept(self, kind: str) -> Connection:
        """This thread's long-lived SQLite connection of one kind ("reader" or "writer").

        Connecting and closing around every statement cost as much as the statement;
        connections of threads that have ended are closed on the next call.
        """
        ident = threading.get_ident()
        with self._kept_lock:
            kept = self._kept_by_thread.get((ident, kind))
            if kept is not None and kept[0]() is threading.current_thread() and not kept[1].closed:
                return kept[1]
            for key, (thread, conn) in list(self._kept_by_thread.items()):
                alive = thread()
                if alive is None or not alive.is_alive():
                    del self._kept_by_thread[key]
                    conn.close()
        conn = self.engine.connect()
        conn.execution_options(**{"handoff_write" if kind == "writer" else "handoff_read": True})
        with self._kept_lock:
            self._kept_by_thread[(ident, kind)] = (weakref.ref(threading.current_thread()), conn)
        return conn

    @contextmanager
    def _sqlite_write_turn(self) -> Iterator[None]:
        """Queue writers on a lock file before BEGIN IMMEDIATE.

        SQLite's own busy handler makes a waiting writer sleep and poll (1, 2, 5, ... 100
        ms); with several workers that turned into seconds of tail latency. A blocking
        flock wakes the next writer the moment the lock is released.
        """
        with self._thread_write_lock:
            if getattr(self._turn, "held", False):  # this thread already has the turn
                yield
                return
            fd = self._lock_file()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._turn.held = True
                yield
            finally:
                self._turn.held = False
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def _postgres_write_turn(self) -> Iterator[Connection]:
        """A write transaction on PostgreSQL that holds the store's write turn: a
        transaction-scoped advisory lock, released when the transaction ends.

        The domain rules read, decide and write (a balance, a subscription's state, whether
        a SIM change is already under way) as SQLite's single writer lets them. Under
        PostgreSQL's READ COMMITTED, concurrent writers read the same row and one's write
        was lost: top-ups and charges vanished from balances, two SIM changes of one line
        were both accepted. One writer at a time, in every process, restores the rules'
        premise; reads still run beside the writer.
        """
        # This process's writers queue on a thread lock before they take a connection, so
        # those waiting for the turn hold none: a server's many threads would otherwise
        # each hold one while they wait, and exhaust the pool.
        with self._thread_write_lock:
            outermost = not getattr(self._turn, "held", False)
            with self._write() as conn:
                if not outermost:  # a write nested inside this thread's turn
                    yield conn
                    return
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({POSTGRES_WRITE_TURN_KEY})")
                self._turn.held = True
                try:
                    yield conn
                finally:
                    self._turn.held = False

    def _lock_file(self) -> int:
        """This process's descriptor of the lock file, opened once (opening and closing it
        around every write cost more than the lock). Per process: a descriptor inherited
        across a fork shares its lock with the parent, so it would exclude nobody."""
        held = self._lock_fd
        if held is None or held[0] != os.getpid():
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            held = self._lock_fd = (os.getpid(), fd)
        return held[1]

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy the SQLite WAL into the database as far as readers allow, without waiting
        for them: (busy, frames in the WAL, frames copied), as SQLite reports them."""
        with self.read() as conn:
            busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(busy), int(frames), int(copied)

    def _keep_checkpointing(self) -> None:
        """Start this process's checkpoint thread, once per process (a thread does not
        survive a fork: each gunicorn worker starts its own on its first write)."""
        held = self._checkpoints
        pid = os.getpid()
        if held is not None and held[0] == pid:
            return
        with self._kept_lock:
            if self._checkpoints is not None and self._checkpoints[0] == pid:
                return
            stop = threading.Event()
            self._checkpoints = (pid, stop)
        threading.Thread(
            target=_checkpoint_until_stopped,
            args=(weakref.ref(self), stop),
            name="handoff-wal-checkpoint",
            daemon=True,
        ).start()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write: all or nothing."""
        if self.is_sqlite and self._lock_path:
            self._keep_checkpointing()
            with self._sqlite_write_turn(), self._write() as conn:
                yield conn
        elif not self.is_sqlite:
            with self._postgres_write_turn() as conn:
                yield conn
        else:
            with self._write() as conn:
                yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        writer = self._kept("writer") if self.is_sqlite else None
        if writer is None or writer.in_transaction():
            # PostgreSQL, or a write nested inside another on this thread.
            with self.engine.connect() as conn:
                conn.execution_options(handoff_write=True)
                with conn.begin():
                    yield conn
            return
        try:
            with writer.begin():
                yield writer
        except BaseException:
            if writer.invalidated:
                writer.close()
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Read-only access. On SQLite without a transaction around the statements: each
        still sees only committed data (WAL), and a GET costs one statement."""
        if not self.is_sqlite:
            with self.engine.connect() as pooled, pooled.begin():
                yield pooled
            return
        reader = self._kept("reader")
        try:
            yield reader
        except BaseException:
            reader.close()  # never reuse a connection a failure may have left half-used
            raise

    def create_all(self) -> None:
        metadata.create_all(self.engine)
        self._upgrade_kept_tables()

    def _upgrade_kept_tables(self) -> None:
        """Bring a store written by an earlier version up to date: a column added since is
        added to its table (such columns are nullable, so the rows already kept stay
        valid), an index added since is built and one retired since is dropped (a table
        names those in `info["retired_indexes"]`). `create_all` only creates whole tables."""
        inspector = inspect(self.engine)
        # Read for all tables at once: table by table, PostgreSQL's catalog took ~0.9 s of
        # every start (two queries for each of some seventy tables).
        kept_columns = {name: found for (_, name), found in inspector.get_multi_columns().items()}
        kept_indexes = {name: found for (_, name), found in inspector.get_multi_indexes().items()}
        with self.engine.begin() as conn:
            for table in metadata.sorted_tables:
                if table.name not in kept_columns:
                    continue
                present = {column["name"] for column in kept_columns[table.name]}
                missing = [column for column in table.columns if column.name not in present]
                for column in missing:
                    if not column.nullable and column.server_default is None:
                        raise RuntimeError(
                            f"The store {self.url.render_as_string()} predates this version: "
                            f"{table.name} lacks {column.name}, which cannot be added to kept "
                            "rows; start from a new store (another --db, or delete this one)"
                        )
                    conn.exec_driver_sql(
                        f"ALTER TABLE {self.engine.dialect.identifier_preparer.format_table(table)}"
                        f" ADD COLUMN {CreateColumn(column).compile(dialect=self.engine.dialect)}"
                    )
                indexed = {index["name"] for index in kept_indexes.get(table.name, ())}
                for index in table.indexes:
                    if index.name not in indexed:
                        index.create(conn)
                # An index a newer one replaced costs every write and serves no statement.
                for name in set(table.info.get("retired_indexes", ())) & indexed:
                    conn.exec_driver_sql(
                        f"DROP INDEX {self.engine.dialect.identifier_preparer.quote(name)}"
                    )

    def tables(self, role: str | None = None) -> list[Table]:
        return [t for t in metadata.sorted_tables if role is None or t.info.get("role") == role]

    def clear(self, conn: Connection, role: str | None = None) -> None:
        """Delete every row of one role's tables (or all), children first, in `conn`."""
        for table in reversed(self.tables(role)):
            delete_equal(conn, table)

    def reset(self, role: str | None = None) -> None:
        """`clear` in a transaction of its own."""
        with self.write() as conn:
            self.clear(conn, role)

    def ping(self) -> bool:
        with self.read() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        with self._kept_lock:
            kept, self._kept_by_thread = list(self._kept_by_thread.values()), {}
            checkpoints, self._checkpoints = self._checkpoints, None
        if checkpoints is not None:
            checkpoints[1].set()
        for _thread, conn in kept:
            conn.close()
        self.engine.dispose()
        with self._thread_write_lock:
            held, self._lock_fd = self._lock_fd, None
        if held is not None and held[0] == os.getpid():
            os.close(held[1])
