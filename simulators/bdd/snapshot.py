"""The seeded store kept as rows, so an in-process scenario starts from exactly what a full
reset leaves at a fraction of its cost (reseeding partners row by row took ~100 ms).

Taken once right after a real reset on the scenario start's clock; restored in one
transaction, then the same caches a reset drops are dropped. A snapshot of a store only
this process writes watches the statements its engine runs and puts back only the tables
written since (and the tables referencing them): a scenario touches a handful of the
store's tables, and clearing and refilling all of them was most of a restore's cost.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, event, select

from simulators.core.store import delete_equal
from simulators.core.tenancy import forget_partners

# The table a data-changing statement writes. Every write of the stack is one of these
# (SQLAlchemy's DML and the few statements written by hand); anything else that is not
# plainly a read (DDL, a CTE) counts as writing every table.
_WRITES = re.compile(
    r"\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
    r'\s+"?(\w+)"?',
    re.IGNORECASE,
)
_READS = ("SELECT", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA", "SHOW")
# Marks the connection putting the snapshot back, whose own statements are not changes.
_RESTORING = "handoff_snapshot_restoring"


@dataclass(frozen=True)
class _DriverRows:
    """One SQLite table's rows as the driver reads and writes them."""

    delete: str
    insert: str
    rows: list[tuple[Any, ...]]

    @classmethod
    def read(cls, conn: Any, table: Table) -> _DriverRows:
        quote = conn.dialect.identifier_preparer.quote
        name = quote(table.name)
        columns = ", ".join(quote(column.name) for column in table.columns)
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            rows = cursor.execute(f"SELECT {columns} FROM {name}").fetchall()
        finally:
            cursor.close()
        slots = ", ".join("?" for _column in table.columns)
        return cls(
            delete=f"DELETE FROM {name}",
            insert=f"INSERT INTO {name} ({columns}) VALUES ({slots})",
            rows=rows,
        )


class Snapshot:
    def __init__(self, runtime: Any, *, only_this_process_writes: bool = False) -> None:
        """`only_this_process_writes`: no other process or engine writes the store (the
        step library's private in-process stack), so a restore may put back only the tables
        this runtime's engine wrote; otherwise every table is cleared and refilled."""
        self.runtime = runtime
        self.rows: list[tuple[Table, list[dict[str, Any]]]] = []
        # On SQLite, each table's rows as the driver stores them with the statements that
        # clear and refill it: through SQLAlchemy, binding every value of every row again
        # was most of a restore.
        self._driver_rows: dict[Table, _DriverRows] = {}
        self._stale_by_written: dict[frozenset[str], set[Table]] = {}
        self._watch = only_this_process_writes
        self._watching = False
        self._written: set[str] = set()
        self._everything_written = True
        self._written_lock = threading.Lock()

    def capture(self) -> None:
        store = self.runtime.store
        self.runtime.journal.flush()
        if self._watch and not self._watching:
            event.listen(store.engine, "before_cursor_execute", self._on_statement)
            self._watching = True
        with store.read() as conn:
            self.rows = [
                (table, [dict(row._mapping) for row in conn.execute(select(table))])
                for table in store.tables()
            ]
            if store.is_sqlite:
                self._driver_rows = {
                    table: _DriverRows.read(conn, table) for table, _rows in self.rows
                }
        self._take_written()

    def restore(self) -> None:
        runtime = self.runtime
        # What the previous scenario left buffered must not land in this one's journal; it
        # would only be written to be deleted with the rest of that scenario's rows.
        runtime.journal.discard()
        forget_partners()
        runtime.rate_limits.clear(None)
        with runtime.store.write() as conn:
            # Taken inside the write transaction: a write committed before it was seen.
            stale = self._stale_tables(self._take_written())
            conn.info[_RESTORING] = True
            try:
                if self._driver_rows:
                    self._refill_by_driver(conn, stale)
                else:
                    for table, _rows in reversed(self.rows):
                        if table in stale:
                            delete_equal(conn, table)
                    for table, rows in self.rows:
                        if rows and table in stale:
                            conn.execute(table.insert(), rows)
            finally:
                conn.info.pop(_RESTORING, None)
        runtime.faults.changed()

    def _refill_by_driver(self, conn: Any, stale: set[Table]) -> None:
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            for table, _rows in reversed(self.rows):
                if table in stale:
                    cursor.execute(self._driver_rows[table].delete)
            for table, _rows in self.rows:
                kept = self._driver_rows[table]
                if kept.rows and table in stale:
                    cursor.executemany(kept.insert, kept.rows)
        finally:
            cursor.close()

    def _take_written(self) -> set[str] | None:
        """The tables written since the last call (None: all of them), forgetting them."""
        with self._written_lock:
            written, everything = self._written, self._everything_written
            self._written, self._everything_written = set(), not self._watching
        return None if everything else written

    def _stale_tables(self, written: set[str] | None) -> set[Table]:
        """The written tables and, transitively, the tables whose foreign keys point into
        them: deleting a parent's rows needs its children's rows out of the way first."""
        tables = [table for table, _rows in self.rows]
        if written is None:
            return set(tables)
        # Scenarios write the same few sets of tables over and over.
        key = frozenset(written)
        if key not in self._stale_by_written:
            self._stale_by_written[key] = self._with_children(tables, written)
        return self._stale_by_written[key]

    @staticmethod
    def _with_children(tables: list[Table], written: set[str]) -> set[Table]:
        stale = {table for table in tables if table.name in written}
        grew = True
        while grew:
            children = {
                table
                for table in tables
                if table not in stale and any(fk.column.table in stale for fk in table.foreign_keys)
            }
            stale |= children
            grew = bool(children)
        return stale

    def _on_statement(
        self, conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if statement.startswith("SELECT") or conn.info.get(_RESTORING):
            return
        found = _WRITES.match(statement)
        if found is not None:
            with self._written_lock:
                self._written.add(found[1])
        elif not statement.lstrip()[:9].upper().startswith(_READS):
            with self._written_lock:
                self._everything_written = True
