"""The simulated clock: frozen, advanced, set, and stepping scheduled work in order."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import T0

from simulators.core.clock import Clock, isoformat, parse_iso
from simulators.core.runtime import Runtime
from simulators.core.store import Store
from simulators.core.tasks import Reschedule, Task

PROBE = "test.clock.probe"


@pytest.fixture
def ran(runtime: Runtime) -> Iterator[list[tuple[str, float]]]:
    """A throwaway step kind that records (name, simulated time) each time it runs."""
    seen: list[tuple[str, float]] = []
    reruns: dict[str, int] = {}

    def probe(rt: Runtime, task: Task) -> None:
        name = task.payload["name"]
        seen.append((name, rt.clock.now()))
        wanted = int(task.payload.get("reschedule", 0))
        if reruns.get(name, 0) < wanted:
            reruns[name] = reruns.get(name, 0) + 1
            raise Reschedule(float(task.payload["every"]))

    runtime.tasks.register(PROBE, probe)
    yield seen
    runtime.tasks.handlers.pop(PROBE, None)


def schedule(runtime: Runtime, name: str, due_at: float, **payload: object) -> None:
    with runtime.store.write() as conn:
        runtime.tasks.schedule(
            conn,
            role="test",
            kind=PROBE,
            payload={"name": name, **payload},
            due_at=due_at,
            correlation_id=f"corr-{name}",
        )


def probe_statuses(runtime: Runtime) -> dict[str, str]:
    return {
        row["correlation_id"].removeprefix("corr-"): row["status"]
        for row in runtime.tasks.list(limit=1000)
        if row["kind"] == PROBE
    }


# --- the clock itself -------------------------------------------------------------------


def test_a_frozen_clock_does_not_move_with_wall_time(runtime: Runtime) -> None:
    assert runtime.clock.now() == T0
    time.sleep(0.05)
    assert runtime.clock.now() == T0
    described = runtime.clock.describe()
    assert described["now"] == "2026-03-02T09:00:00.000Z"
    assert described["epoch"] == T0
    assert described["frozen"] is True


def test_advance_moves_a_frozen_clock_exactly_and_keeps_it_frozen(runtime: Runtime) -> None:
    assert runtime.clock.advance(90) == T0 + 90
    assert runtime.clock.advance(0.5) == T0 + 90.5
    time.sleep(0.05)
    assert runtime.clock.now() == T0 + 90.5
    assert runtime.clock.describe()["frozen"] is True


def test_set_jumps_to_a_time_and_keeps_the_frozen_state(runtime: Runtime) -> None:
    target = parse_iso("2026-12-31T23:59:59Z")
    assert runtime.clock.set(target) == target
    assert runtime.clock.now() == target
    assert runtime.clock.describe()["now"] == "2026-12-31T23:59:59.000Z"
    # Backwards is allowed too: a scenario may rewind to replay a day.
    assert runtime.clock.set(T0 - 3600) == T0 - 3600
    assert runtime.clock.describe()["frozen"] is True


def test_a_thawed_clock_runs_on_from_where_it_was_set(runtime: Runtime) -> None:
    runtime.clock.set(T0, frozen=False)
    first = runtime.clock.now()
    time.sleep(0.05)
    second = runtime.clock.now()
    assert T0 <= first < second < T0 + 5
    assert runtime.clock.describe()["frozen"] is False
    # Freezing again without a time keeps the current simulated time.
    frozen_at = runtime.clock.set(frozen=True)
    assert second <= frozen_at < T0 + 5
    time.sleep(0.05)
    assert runtime.clock.now() == frozen_at


def test_advance_moves_a_thawed_clock_by_the_offset(runtime: Runtime) -> None:
    runtime.clock.set(T0, frozen=False)
    moved = runtime.clock.advance(3600)
    assert T0 + 3600 <= moved < T0 + 3605
    assert runtime.clock.describe()["offsetSeconds"] == pytest.approx(moved - time.time(), abs=1.0)


def test_every_worker_reads_the_same_clock_through_the_store(runtime: Runtime) -> None:
    """A second process (another store on the same database) sees the moves of the first."""
    other_store = Store(runtime.settings.db_url)
    try:
        other = Clock(other_store)
        assert other.now() == T0
        runtime.clock.advance(120)
        assert other.now() == T0 + 120
        other.set(T0 + 7200)
        assert runtime.clock.now() == T0 + 7200
    finally:
        other_store.dispose()


def test_isoformat_is_rfc3339_utc_with_milliseconds() -> None:
    assert isoformat(T0 + 0.25) == "2026-03-02T09:00:00.250Z"
    assert parse_iso("2026-03-02T09:00:00.250Z") == T0 + 0.25
    assert parse_iso("2026-03-02T10:00:00+01:00") == T0


# --- scheduled steps on the simulated clock ---------------------------------------------


def test_advance_runs_each_due_step_at_its_due_time_in_order(
    runtime: Runtime, ran: list[tuple[str, float]]
) -> None:
    # Scheduled out of order on purpose; two share a due time (they run in schedule order).
    schedule(runtime, "third", T0 + 30)
    schedule(runtime, "first", T0 + 10)
    schedule(runtime, "second-a", T0 + 20)
    schedule(runtime, "second-b", T0 + 20)
    schedule(runtime, "later", T0 + 100)

    assert runtime.advance(60) == T0 + 60

    assert ran == [
        ("first", T0 + 10),
        ("second-a", T0 + 20),
        ("second-b", T0 + 20),
        ("third", T0 + 30),
    ]
    assert runtime.clock.now() == T0 + 60
    assert probe_statuses(runtime) == {
        "first": "done",
        "second-a": "done",
        "second-b": "done",
        "third": "done",
        "later": "pending",
    }

    runtime.advance(40)
    assert ran[-1] == ("later", T0 + 100)
    assert probe_statuses(runtime)["later"] == "done"


def test_nothing_runs_before_it_is_due(runtime: Runtime, ran: list[tuple[str, float]]) -> None:
    schedule(runtime, "at-ten", T0 + 10)
    runtime.settle()
    assert ran == []
    runtime.advance(9.999)
    assert ran == []
    runtime.advance(0.001)
    assert ran == [("at-ten", T0 + 10)]


def test_a_step_due_in_the_past_runs_on_settle_at_the_current_time(
    runtime: Runtime, ran: list[tuple[str, float]]
) -> None:
    schedule(runtime, "overdue", T0 - 60)
    runtime.settle()
    assert ran == [("overdue", T0)]


def test_a_rescheduled_step_runs_again_at_each_new_due_time(
    runtime: Runtime, ran: list[tuple[str, float]]
) -> None:
    """A polling step (Reschedule) is a chain of events, each at its own simulated moment."""
    schedule(runtime, "poll", T0 + 1, reschedule=3, every=2.5)
    schedule(runtime, "between", T0 + 4)

    runtime.advance(30)

    assert ran == [
        ("poll", T0 + 1),
        ("poll", T0 + 3.5),
        ("between", T0 + 4),
        ("poll", T0 + 6),
        ("poll", T0 + 8.5),
    ]
    assert probe_statuses(runtime) == {"poll": "done", "between": "done"}


def test_advance_with_nothing_scheduled_still_moves_the_clock(runtime: Runtime) -> None:
    assert runtime.advance(86400) == T0 + 86400
    assert runtime.clock.now() == T0 + 86400
