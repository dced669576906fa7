"""Group commit: writes that arrive together in one process share one write transaction.

Every write to the store waits for the store's single write turn (SQLite has one writer
at a time; the turn is a lock file shared by every worker). Under a storm of callbacks
the sink took one turn per delivery, and its threads spent most of their time queued for
it. Here the first writer to arrive leads: it takes every write queued so far, runs them
in one transaction and wakes their threads, each with its own result, once that
transaction has committed; writes that arrived meanwhile get the next leader. Nothing
answers before its write has committed, as with a transaction of its own.

No maintained library batches writers onto one SQLAlchemy transaction; this is the
leader/follower form of group commit that databases use for their own logs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.engine import Connection

from .store import Store

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Waiting(Generic[Item, Result]):
    """One submitted write: whether its thread leads the next transaction, and its outcome."""

    __slots__ = ("item", "woken", "leads", "done", "result", "error")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.woken = threading.Event()
        self.leads = False
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """Runs `write(conn, item)` for each submitted item, several items to a transaction.

    A transaction that fails fails every write in it: each submitter gets the error, as
    if its own transaction had failed (callers answer so that the sender retries)."""

    def __init__(self, store: Store, write: Callable[[Connection, Item], Result]) -> None:
        self.store = store
        self._write = write
        self._lock = threading.Lock()
        self._queued: list[_Waiting[Item, Result]] = []
        self._leader_busy = False
        self.transactions = 0  # how many transactions the writes took (observability, tests)

    def submit(self, item: Item) -> Result:
        """Write `item`; returns its result once the transaction holding it committed."""
        waiting: _Waiting[Item, Result] = _Waiting(item)
        with self._lock:
            self._queued.append(waiting)
            if not self._leader_busy:
                self._leader_busy = waiting.leads = True
        if not waiting.leads:
            waiting.woken.wait()
        if not waiting.done:  # woken to lead the writes queued behind the last transaction
            self._lead()
        if waiting.error is not None:
            raise waiting.error
        return waiting.result  # type: ignore[return-value]

    def _lead(self) -> None:
        with self._lock:
            batch, self._queued = self._queued, []
        try:
            with self.store.write() as conn:
                results = [self._write(conn, waiting.item) for waiting in batch]
        except BaseException as error:  # every submitter of the batch re-raises it
            for waiting in batch:
                waiting.error = error
        else:
            for waiting, result in zip(batch, results, strict=True):
                waiting.result = result
        finally:
            with self._lock:
                self.transactions += 1
                successor = self._queued[0] if self._queued else None
                if successor is None:
                    self._leader_busy = False
                else:
                    successor.leads = True
            for waiting in batch:
                waiting.done = True
                waiting.woken.set()
            if successor is not None:
                successor.woken.set()
