"""One SQLAlchemy Core store that every fake registers its tables with.

SQLite (WAL) by default, PostgreSQL by URL. Writers on SQLite take the write
lock at BEGIN so two workers never deadlock upgrading a read lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, text
from sqlalchemy.engine import make_url

metadata = MetaData()

CORE_ROLE = "core"


def role_table(role: str, name: str, *columns: Any, **kwargs: Any) -> Table:
    """Declare a table owned by one role, so `reset(role)` knows what to clear."""
    info = dict(kwargs.pop("info", {}))
    info["role"] = role
    return Table(name, metadata, *columns, info=info, **kwargs)


class Store:
    """Connection factory, schema owner and reset for the whole stack."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine()
        self._local = threading.local()

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        database = self.url.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            connect_args={"timeout": 30, "check_same_thread": False},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite quirk).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            if options.get("handoff_read"):
                return  # autocommit reads: WAL gives each statement the last committed state
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("handoff_write") else "BEGIN")

        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write: all or nothing."""
        with self.engine.connect() as conn:
            conn.execution_options(handoff_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Read-only access. On SQLite each thread keeps one reading connection with no
        transaction around its statements: each still sees only committed data (WAL),
        and a GET costs one statement instead of connect, BEGIN, SELECT, COMMIT, close."""
        if not self.is_sqlite:
            with self.engine.connect() as pooled, pooled.begin():
                yield pooled
            return
        reader: Connection | None = getattr(self._local, "reader", None)
        if reader is None or reader.closed:
            reader = self.engine.connect()
            reader.execution_options(handoff_read=True)
            self._local.reader = reader
        try:
            yield reader
        except BaseException:
            reader.close()  # never reuse a connection a failure may have left half-used
            raise

    def create_all(self) -> None:
        metadata.create_all(self.engine)

    def tables(self, role: str | None = None) -> list[Table]:
        return [t for t in metadata.sorted_tables if role is None or t.info.get("role") == role]

    def reset(self, role: str | None = None) -> None:
        """Delete every row of one role's tables (or all), children first."""
        with self.write() as conn:
            for table in reversed(self.tables(role)):
                conn.execute(table.delete())

    def ping(self) -> bool:
        with self.read() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        reader = getattr(self._local, "reader", None)
        if reader is not None:
            reader.close()
        self.engine.dispose()
