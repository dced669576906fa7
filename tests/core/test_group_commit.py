"""Deliveries arriving together share one write transaction, and each still gets its own
answer only once its record is stored."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from simulators.core import sink
from simulators.core.config import Settings
from simulators.core.group_commit import GroupCommit
from simulators.core.runtime import Runtime

# The first write of a test holds its transaction open until released, so that the other
# deliveries queue behind it.
first_write_started = threading.Event()
release_first_write = threading.Event()


@pytest.fixture(autouse=True)
def fresh_events() -> None:
    first_write_started.clear()
    release_first_write.clear()


@pytest.fixture
def own_runtime(tmp_path: Path) -> Any:
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'state.db'}", secret_key="k", background=False,
        state_dir=str(tmp_path),
    )  # fmt: skip
    runtime = Runtime(settings)
    yield runtime
    runtime.close()


def delivery(webhook_id: str, name: str = "storm") -> dict[str, Any]:
    return {
        "name": name,
        "path": "",
        "headers": {"webhook-id": webhook_id},
        "body": b'{"eventType": "ProductOrderCreateEvent"}',
        "event_type": "ProductOrderCreateEvent",
        "signature": "valid",
    }


def stored(runtime: Runtime, name: str = "storm") -> list[str]:
    table = sink.sink_delivery_table
    with runtime.store.read() as conn:
        query = select(table.c.webhook_id).where(table.c.sink == name).order_by(table.c.id)
        return list(conn.execute(query).scalars())


def holding_the_first(runtime: Runtime, failing: str | None = None) -> Any:
    """The sink's write, holding `msg_1`'s transaction open until released; the delivery
    `failing` fails its transaction after being written."""
    record = sink.recorder(runtime.store, runtime.clock)._write

    def write(conn: Connection, item: dict[str, Any]) -> Any:
        webhook_id = item["headers"]["webhook-id"]
        if webhook_id == "msg_1":
            first_write_started.set()
            assert release_first_write.wait(5)
        answer = record(conn, item)
        if webhook_id == failing:
            raise RuntimeError("the store failed mid-batch")
        return answer

    return write


def submit_while_the_first_write_waits(
    commit: GroupCommit[dict[str, Any], Any], first: Any, others: list[Any]
) -> tuple[list[Any], list[BaseException]]:
    """Submit `first`, and `others` from their own threads while its transaction is open,
    so that they queue behind it; the answers in submission order, and any errors."""
    answers: dict[int, Any] = {}
    errors: list[BaseException] = []

    def submit(index: int, item: Any) -> None:
        try:
            answers[index] = commit.submit(item)
        except BaseException as error:  # noqa: BLE001 - recorded for the test's assertions
            errors.append(error)

    leader = threading.Thread(target=submit, args=(0, first))
    leader.start()
    assert first_write_started.wait(5)
    followers = [
        threading.Thread(target=submit, args=(index, item))
        for index, item in enumerate(others, start=1)
    ]
    for thread in followers:
        thread.start()
    # Every follower is queued (or leading the next batch) before the first write ends.
    while len(commit._queued) < len(others):
        threading.Event().wait(0.001)
    release_first_write.set()
    for thread in [leader, *followers]:
        thread.join(10)
    return [answers.get(index) for index in range(len(others) + 1)], errors


def test_deliveries_that_arrive_together_are_recorded_in_one_transaction_each_with_its_answer(
    own_runtime: Runtime,
) -> None:
    runtime = own_runtime
    commit = GroupCommit(runtime.store, holding_the_first(runtime))
    others = [delivery(f"msg_{n}") for n in range(2, 8)] + [delivery("msg_2")]

    answers, errors = submit_while_the_first_write_waits(commit, delivery("msg_1"), others)

    assert errors == []
    assert [answer.webhook_id for answer in answers] == [f"msg_{n}" for n in range(1, 8)] + [
        "msg_2"
    ]
    # The repeated webhook-id is a duplicate even inside the batch it arrived with.
    assert [answer.duplicate for answer in answers] == [False] * 7 + [True]
    assert sorted(stored(runtime)) == sorted(f"msg_{n}" for n in [*range(1, 8), 2])
    assert commit.transactions == 2


def test_a_failed_transaction_fails_every_delivery_in_it_and_stores_none_of_them(
    own_runtime: Runtime,
) -> None:
    runtime = own_runtime
    commit = GroupCommit(runtime.store, holding_the_first(runtime, failing="msg_bad"))
    answers, errors = submit_while_the_first_write_waits(
        commit, delivery("msg_1"), [delivery("msg_2"), delivery("msg_bad"), delivery("msg_3")]
    )

    assert answers[0].webhook_id == "msg_1"
    assert [str(error) for error in errors] == ["the store failed mid-batch"] * 3
    assert stored(runtime) == ["msg_1"]
    # The next delivery is recorded as usual: the failure did not stick.
    assert commit.submit(delivery("msg_2")).duplicate is False
    assert stored(runtime) == ["msg_1", "msg_2"]


def test_the_runtime_records_sink_deliveries_through_group_commit(own_runtime: Runtime) -> None:
    runtime = own_runtime
    answers = [runtime.sink_deliveries.submit(delivery(f"msg_{n}")) for n in range(3)]
    assert [answer.duplicate for answer in answers] == [False, False, False]
    with runtime.store.read() as conn:
        count = conn.execute(select(func.count()).select_from(sink.sink_delivery_table))
        assert count.scalar_one() == 3
