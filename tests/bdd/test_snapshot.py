"""An in-process scenario starts from exactly the seeded store, whatever the last one did."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from simulators.bdd.steps.mvne import activate
from simulators.bdd.target import Target
from simulators.bdd.world import World
from simulators.core.tenancy import partners


def every_row(target: Target) -> dict[str, list[tuple[Any, ...]]]:
    store = target.runtime.store  # type: ignore[union-attr]
    with store.read() as conn:
        return {
            table.name: sorted(map(tuple, conn.execute(select(table))), key=repr)
            for table in store.tables()
        }


def test_the_next_scenario_starts_from_the_seeded_rows_of_every_table(
    handoff_target: Target, handoff: World
) -> None:
    seeded = every_row(handoff_target)
    subscription = activate(handoff, "po-gb-payg")
    handoff.advance(3600)
    with handoff_target.runtime.store.write() as conn:  # type: ignore[union-attr]
        conn.execute(update(partners).values(status="suspended"))
    changed = every_row(handoff_target)
    assert changed != seeded
    assert subscription["status"] == "active"

    handoff.start_scenario()

    assert every_row(handoff_target) == seeded


def test_what_the_last_scenario_journaled_is_not_in_the_next_ones_journal(
    handoff_target: Target, handoff: World
) -> None:
    activate(handoff, "po-gb-payg")
    journal = handoff_target.runtime.journal  # type: ignore[union-attr]
    assert journal.query()[0] > 0

    handoff.start_scenario()

    assert journal.query() == (0, [])
