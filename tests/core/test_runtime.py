"""The simulated clock's driver on a live stack, where another process runs steps too."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from simulators.core.config import Settings
from simulators.core.journal import journal_table
from simulators.core.runtime import Runtime
from simulators.core.store import Store
from simulators.core.tasks import PENDING, RUNNING, Task, task_table


def stack_runtime(tmp_path: Path, *, background: bool) -> Runtime:
    """A stack's runtime on its own store; `background`: one served by several processes."""
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'state.db'}", secret_key="k", background=background,
        state_dir=str(tmp_path),
    )  # fmt: skip
    return Runtime(settings)


def test_settle_waits_for_a_step_another_dispatcher_holds_and_runs_what_it_leaves_due(
    tmp_path: Path,
) -> None:
    # background=True: the stack has a dispatcher process of its own (here: none runs, the
    # test plays it), so work leased elsewhere is worth waiting for.
    runtime = stack_runtime(tmp_path, background=True)
    ran: list[int] = []

    def step(_runtime: Runtime, task: Task) -> None:
        ran.append(task.payload["n"])

    runtime.tasks.register("test.step", step)
    with runtime.store.write() as conn:
        runtime.tasks.schedule(
            conn, role="mvne", kind="test.step", payload={"n": 1},
            due_at=runtime.clock.now(), correlation_id=None,
        )  # fmt: skip
        conn.execute(update(task_table).values(status=RUNNING, lease_until=time.time() + 60))

    def other_dispatcher_gives_it_back() -> None:
        time.sleep(0.3)  # a failed attempt, due again at once (a retry without backoff)
        with runtime.store.write() as conn:
            conn.execute(update(task_table).values(status=PENDING, lease_until=None))

    other = threading.Thread(target=other_dispatcher_gives_it_back)
    other.start()
    try:
        assert runtime.settle() == 1
    finally:
        other.join()
        runtime.close()
    assert ran == [1]


class RecordedStop:
    """Stands in for the dispatcher's stop event: records each wait, stops after `rounds`."""

    def __init__(self, rounds: int) -> None:
        self.waits: list[float] = []
        self.rounds = rounds
        self.stopped = threading.Event()

    def is_set(self) -> bool:
        return self.stopped.is_set()

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        if len(self.waits) >= self.rounds:
            self.stopped.set()
        return self.stopped.is_set()

    def set(self) -> None:
        self.stopped.set()


def test_the_dispatcher_looks_again_soon_after_work_and_backs_off_while_quiet(
    tmp_path: Path,
) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'state.db'}", secret_key="k")
    runtime = Runtime(settings)
    ran = iter([3, 0, 0, 0, 0, 0, 0, 2, 0, 0])
    runtime.tick = lambda: next(ran, 0)  # type: ignore[method-assign]
    stop = runtime._stop = RecordedStop(rounds=9)  # type: ignore[assignment]
    runtime.start_background(interval_s=0.1)
    assert stop.stopped.wait(10)
    runtime.close()
    # Work found: 5 ms, doubling while nothing is due, never past the interval; work again
    # starts over at 5 ms.
    assert stop.waits == [0.005, 0.01, 0.02, 0.04, 0.08, 0.1, 0.005, 0.01, 0.02]


def _journaled_request(runtime: Runtime, url: str) -> None:
    runtime.journal.record(
        role="mvne", direction="inbound", method="GET", url=url, status=200, correlation_id="c"
    )


def _stored_journal_urls(db_url: str) -> list[str]:
    """The journal as another process of the stack reads it: from the store alone."""
    other = Store(db_url)
    try:
        with other.read() as conn:
            return list(conn.execute(select(journal_table.c.url)).scalars())
    finally:
        other.dispose()


@pytest.mark.parametrize("move_the_clock", [False, True], ids=["settle", "advance"])
def test_on_a_live_stack_what_settled_work_journaled_is_visible_to_the_other_processes(
    tmp_path: Path, move_the_clock: bool
) -> None:
    runtime = stack_runtime(tmp_path, background=True)
    try:
        _journaled_request(runtime, "/seen-by-others")
        if move_the_clock:
            runtime.advance(60)
        else:
            runtime.settle()
        # Read at once: the journal's own periodic flush is a quarter of a second away.
        assert _stored_journal_urls(runtime.settings.db_url) == ["/seen-by-others"]
    finally:
        runtime.close()


def test_a_stack_alone_with_its_store_reads_its_own_journal_after_settling(
    tmp_path: Path,
) -> None:
    runtime = stack_runtime(tmp_path, background=False)
    try:
        _journaled_request(runtime, "/mine")
        runtime.advance(60)
        total, entries = runtime.journal.query()
        assert (total, [entry["url"] for entry in entries]) == (1, ["/mine"])
    finally:
        runtime.close()
