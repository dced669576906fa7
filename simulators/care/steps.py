"""The care BPO's clock-driven checks: SLA deadlines and tier thresholds."""

from __future__ import annotations

from simulators.core.runtime import Runtime
from simulators.core.tasks import Task

from . import events, model
from .api import queue


def run_sla_check(runtime: Runtime, task: Task) -> None:
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        row, schedules = model.sla_check(
            conn, task.payload["ticket_id"], float(task.payload["due"]), now
        )
        queue(runtime, conn, schedules, task.correlation_id)
        if row is not None:
            events.ticket_event(
                runtime,
                conn,
                row,
                "TroubleTicketAttributeValueChangeEvent",
                task.correlation_id,
                now,
            )


def run_tier_check(runtime: Runtime, task: Task) -> None:
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        row, schedules = model.tier_check(
            conn, task.payload["ticket_id"], str(task.payload["tier"]), now
        )
        queue(runtime, conn, schedules, task.correlation_id)
        if row is not None:
            events.ticket_event(
                runtime,
                conn,
                row,
                "TroubleTicketAttributeValueChangeEvent",
                task.correlation_id,
                now,
            )
