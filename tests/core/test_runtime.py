"""The simulated clock's driver on a live stack, where another process runs steps too."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import update

from simulators.core.config import Settings
from simulators.core.runtime import Runtime
from simulators.core.tasks import PENDING, RUNNING, Task, task_table


def test_settle_waits_for_a_step_another_dispatcher_holds_and_runs_what_it_leaves_due(
    tmp_path: Path,
) -> None:
    # background=True: the stack has a dispatcher process of its own (here: none runs, the
    # test plays it), so work leased elsewhere is worth waiting for.
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'state.db'}", secret_key="k", background=True,
        state_dir=str(tmp_path),
    )  # fmt: skip
    runtime = Runtime(settings)
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
