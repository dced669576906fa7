"""Fulfillment's work on the simulated clock: the SIM vendor's answers, the batch load into
the MVNE, carrier scans, SLA checks, the ICCID mapping handoff, returns, eSIM profiles.

Each step calls the MVNE outside any transaction and records what came back in a
short transaction of its own. A call that got no answer (or a 5xx) is retried by
the step runner with backoff; the last attempt settles the domain state instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from simulators.core.admin import current_seed
from simulators.core.runtime import Runtime
from simulators.core.tasks import Task

from . import events, model, mvne


def queue(
    runtime: Runtime, conn: Connection, schedules: list[model.Schedule], cid: str | None
) -> None:
    for item in schedules:
        runtime.tasks.schedule(
            conn,
            role=model.ROLE,
            kind=item.kind,
            payload=item.payload,
            due_at=item.due_at,
            correlation_id=cid,
            max_attempts=item.max_attempts,
        )


def commit(
    runtime: Runtime,
    conn: Connection,
    outcome: model.Outcome | None,
    cid: str | None,
    now: float,
) -> None:
    """Publish the outcome's events and queue its steps, in the caller's transaction."""
    if outcome is None:
        return
    events.publish(runtime, conn, outcome, cid, now)
    queue(runtime, conn, outcome.schedules, cid)


def _simple(change: Any) -> Any:
    """A step that only changes state: run `change(conn, payload, now, cid)` and commit."""

    def run(runtime: Runtime, task: Task) -> None:
        with runtime.store.write() as conn:
            now = runtime.clock.now(conn)
            outcome = change(conn, task.payload, now, task.correlation_id)
            commit(runtime, conn, outcome, task.correlation_id, now)

    return run


# --- production --------------------------------------------------------------------------------


def vendor_deliver(runtime: Runtime, task: Task) -> None:
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        seed = current_seed(conn, runtime.settings.faker_seed)
        cid = task.correlation_id
        outcome = model.vendor_deliver(conn, task.payload["orderId"], now, seed, cid)
        commit(runtime, conn, outcome, cid, now)


def batch_load(runtime: Runtime, task: Task) -> None:
    """Load the vendor file into the MVNE. The MVNE keys the load on the batch number and
    the file's SHA-256, so sending it again after a lost answer loads nothing twice."""
    order_id, cid = task.payload["orderId"], task.correlation_id
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        outcome, job = model.begin_load(conn, order_id, now, cid)
        commit(runtime, conn, outcome, cid, now)
    if job is None:
        return
    try:
        answer = mvne.load_batch(runtime, job.partner_id, job.batch_number, job.text, cid)
    except mvne.MvneUnavailable as unavailable:
        if not task.last_attempt:
            raise
        with runtime.store.write() as conn:
            now = runtime.clock.now(conn)
            outcome = model.record_load_unreachable(
                conn, order_id, unavailable.status, str(unavailable), now, cid
            )
            commit(runtime, conn, outcome, cid, now)
        return
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        if answer.refused:
            outcome = model.record_load_refused(conn, order_id, answer.error(), now, cid)
        else:
            batch = answer.body
            sim_batch = {
                "href": str(batch.get("href", "")),
                "batchNumber": str(batch.get("batchNumber", job.batch_number)),
                "sha256": str(batch.get("sha256", "")),
            }
            if batch.get("loadedAt"):
                sim_batch["loadedAt"] = str(batch["loadedAt"])
            outcome = model.record_loaded(conn, order_id, sim_batch, now, cid)
        commit(runtime, conn, outcome, cid, now)


# --- the ICCID mapping handoff -------------------------------------------------------------------


def mapping_send(runtime: Runtime, task: Task) -> None:
    """PUT the ICCID mapping with the partner's key (twice, under MAPPING_SENT_TWICE)."""
    shipment_id = task.payload["shipmentId"]
    with runtime.store.read() as conn:
        job = model.mapping_job(conn, shipment_id)
    if job is None:
        return
    calls: list[dict[str, Any]] = []
    result: str | None
    code: str | None = None
    try:
        for _ in range(2 if job.twice else 1):
            answer = mvne.map_iccid(
                runtime,
                job.partner_id,
                job.iccid,
                account_id=job.account_id,
                shipment_id=job.shipment_id,
                subscriber_name=job.subscriber_name,
                correlation_id=job.correlation_id,
            )
            refusal = answer.code if answer.refused else None
            calls.append(
                _call("PUT", runtime, job.iccid, answer.status, refusal, job.correlation_id)
            )
            if answer.refused:
                break
        result = model.MAPPING_FAILED if answer.refused else model.SENT
        code = answer.code if answer.refused else None
    except mvne.MvneUnavailable as unavailable:
        calls.append(_call("PUT", runtime, job.iccid, unavailable.status, None, job.correlation_id))
        if calls[0]["httpStatus"] in (200, 201):
            result = model.SENT  # the repeat went unanswered; the mapping itself is made
        elif task.last_attempt:
            result, code = model.MAPPING_FAILED, "MVNE_UNREACHABLE"
        else:
            result = None
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        outcome = model.record_mapping(conn, shipment_id, calls, result=result, code=code, now=now)
        commit(runtime, conn, outcome, job.correlation_id, now)
    if result is None:
        raise mvne.MvneUnavailable("the MVNE did not take the mapping; trying again")


def mapping_withdraw(runtime: Runtime, task: Task) -> None:
    """DELETE the mapping of a SIM that came back or was lost."""
    shipment_id = task.payload["shipmentId"]
    with runtime.store.read() as conn:
        job = model.withdraw_job(conn, shipment_id)
    if job is None:
        return
    result: str | None
    code: str | None
    try:
        answer = mvne.unmap_iccid(runtime, job.partner_id, job.iccid, job.correlation_id)
        # 404: nothing maps the SIM any more, which is what was wanted.
        done = answer.status in (200, 204, 404)
        result, code = (model.WITHDRAWN, None) if done else (model.MAPPING_FAILED, answer.code)
        status: int | None = answer.status
    except mvne.MvneUnavailable as unavailable:
        status = unavailable.status
        result, code = None, ("MVNE_UNREACHABLE" if task.last_attempt else None)
    call = _call("DELETE", runtime, job.iccid, status, code, job.correlation_id)
    with runtime.store.write() as conn:
        now = runtime.clock.now(conn)
        outcome = model.record_withdrawal(
            conn, shipment_id, call, result=result, code=code, now=now
        )
        commit(runtime, conn, outcome, job.correlation_id, now)
    if result is None and not task.last_attempt:
        raise mvne.MvneUnavailable("the MVNE did not take the unmapping; trying again")


def _call(
    method: str, runtime: Runtime, iccid: str, status: int | None, code: str | None, cid: str
) -> dict[str, Any]:
    return model.mapping_call(runtime.clock.now(), method, iccid, status, code, cid)


# --- registration --------------------------------------------------------------------------------


def register(runtime: Runtime) -> None:
    tasks = runtime.tasks
    tasks.register(
        model.VENDOR_ACCEPT,
        _simple(lambda conn, p, now, cid: model.vendor_accept(conn, p["orderId"], now, cid)),
    )
    tasks.register(model.VENDOR_DELIVER, vendor_deliver)
    tasks.register(model.BATCH_LOAD, batch_load)
    tasks.register(
        model.CARRIER_SCAN,
        _simple(
            lambda conn, p, now, cid: model.carrier_scan(
                conn, p["shipmentId"], int(p["position"]), now, cid
            )
        ),
    )
    tasks.register(
        model.SLA_CHECK,
        _simple(lambda conn, p, now, cid: model.sla_check(conn, p["shipmentId"], now, cid)),
    )
    tasks.register(model.MAPPING_SEND, mapping_send)
    tasks.register(model.MAPPING_WITHDRAW, mapping_withdraw)
    tasks.register(
        model.RETURN_RECEIVE,
        _simple(lambda conn, p, now, cid: model.return_received(conn, p["shipmentId"], now, cid)),
    )
    tasks.register(
        model.PROFILE_PROGRESS,
        _simple(
            lambda conn, p, now, cid: model.profile_progress(conn, p["iccid"], p["state"], now, cid)
        ),
    )
