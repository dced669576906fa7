"""The seeded store kept as rows, so an in-process scenario starts from exactly what a full
reset leaves at a fraction of its cost (reseeding partners row by row took ~100 ms).

Taken once right after a real reset on the scenario start's clock; restored in one
transaction with one insert per table, then the same caches a reset drops are dropped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from simulators.core.tenancy import forget_partners


class Snapshot:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.rows: list[tuple[Any, list[dict[str, Any]]]] = []

    def capture(self) -> None:
        store = self.runtime.store
        self.runtime.journal.flush()
        with store.read() as conn:
            self.rows = [
                (table, [dict(row._mapping) for row in conn.execute(select(table))])
                for table in store.tables()
            ]

    def restore(self) -> None:
        runtime = self.runtime
        # What the previous scenario left buffered must not land in this one's journal.
        runtime.journal.flush()
        forget_partners()
        runtime.rate_limits.clear(None)
        with runtime.store.write() as conn:
            runtime.store.clear(conn)
            for table, rows in self.rows:
                if rows:
                    conn.execute(table.insert(), rows)
        runtime.faults.changed()
