"""The network's usage: what subscribers use, the feed to the MVNE's real-time charging,
and the copy that goes to wholesale settlement.

Every usage record, whether an operator asks for it (`POST /__admin/traffic`) or the usage
generator makes it on the simulated clock, takes one path: the network records it (with
the visited network when the subscriber roams), asks the MVNE to charge it over the MVNE's
contract, records the answer, and hands what the network carried to wholesale mediation
(`rating`), in that same transaction.

The usage data faults act on that path, matched on the record's `msisdn`, `usageType` and
`visitedMcc` (and `partner`, the wholesale partner):

- DUPLICATE_USAGE: the record is delivered twice, to charging and to mediation;
- LATE_USAGE: it is delivered `delaySeconds` after it happened (after its day closed);
- WRONG_UNIT: the charging feed carries data in KB and voice in seconds under the
  contract's MB and minutes (SMS have no smaller unit and are unaffected);
- MISSING_STOP: a data session's STOP record never comes: the network holds an open
  session, nothing is charged or settled (generated data sessions only).

Roaming: each usage row keeps the MCC of the network the subscriber used (`visited_mcc`,
None at home) and its time (`usage_date`); `last_network` answers where a line was last
seen, which is what a Device Roaming Status query needs.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from flask import current_app, has_app_context
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    String,
    bindparam,
    select,
)

from simulators.core.clock import isoformat
from simulators.core.faults import DATA_EFFECT, NO_FAULTS, Decision, Sample
from simulators.core.runtime import PeerCallFailed, Runtime
from simulators.core.store import role_table, select_equal, update_equal
from simulators.core.tasks import Reschedule, Task
from simulators.core.tenancy import MNO_NETWORK, peer_api_key

from . import model, partners, rating
from .errors import ChargingUnavailable, ServiceNotActive, ServiceNotFound

ROLE = "mno"
GENERATE = "mno.usage.generate"
CHARGING_PATH = "/tmf-api/usageManagement/v4/usage"
# WRONG_UNIT: how many of the smaller unit make one rated unit (KB per MB, s per min).
SMALLER_UNIT_FACTOR = {"data": 1024, "voice": 60, "sms": 1}
SESSION_OPEN = "open"
SESSION_CLOSED = "closed"

DEFAULT_PROFILE: dict[str, Any] = {
    "intervalSeconds": 3600,
    "perService": {"dataSessions": 1, "voiceCalls": 1, "smsMessages": 1},
    "dataMb": {"min": 1, "max": 200},
    "voiceMinutes": {"min": 1, "max": 20},
    "roaming": {"share": 0.0, "visitedMccs": []},
    "seed": 1,
}

generator_table = role_table(
    ROLE,
    "mno_usage_generator",
    Column("id", Integer, primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("profile", JSON, nullable=False),
    # The generation a scheduled run belongs to: a run of an older one stops quietly.
    Column("generation", Integer, nullable=False),
    Column("window_start", Float, nullable=False),
    Column("runs", Integer, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

sessions = role_table(
    ROLE,
    "mno_data_session",
    Column("id", String(40), primary_key=True),
    Column("service_id", String(40), nullable=False, index=True),
    Column("partner_id", String(64), nullable=True, index=True),
    Column("msisdn", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("visited_mcc", String(3), nullable=True),
    Column("state", String(8), nullable=False),
    Column("stopped_at", Float, nullable=True),
    Column("usage_id", String(40), nullable=True),
)

# Built once and run with bound values: see simulators/core/store.py.
_MVNO_OF_LINE = select(model.services.c.mvno_id).where(
    model.services.c.id == bindparam("service_id")
)
_LATEST_USAGE_OF_LINE = (
    select(model.usages.c.usage_date, model.usages.c.visited_mcc)
    .where(model.usages.c.service_id == bindparam("service_id"))
    .order_by(model.usages.c.usage_date.desc())
    .limit(1)
)
_LATEST_SESSION_OF_LINE = (
    select(sessions.c.started_at, sessions.c.visited_mcc)
    .where(sessions.c.service_id == bindparam("service_id"))
    .order_by(sessions.c.started_at.desc())
    .limit(1)
)
_MVNO_PARTNERS = select(
    partners.wholesale_partners.c.id, partners.wholesale_partners.c.mvne_partner_id
)
_ACTIVE_LINES = (
    select(model.services.c.id, model.services.c.msisdn, model.services.c.mvno_id)
    .where(model.services.c.state == model.SERVICE_ACTIVE)
    .order_by(model.services.c.pk)
)
_WINDOW_DONE = (
    generator_table.update()
    .where(generator_table.c.id == 1, generator_table.c.generation == bindparam("of_generation"))
    .values(
        window_start=bindparam("next_start"),
        runs=generator_table.c.runs + 1,
        records=generator_table.c.records + bindparam("produced"),
    )
)
_OPEN_SESSIONS = (
    select(sessions)
    .where(
        sessions.c.partner_id == bindparam("partner_id"),
        sessions.c.state == SESSION_OPEN,
        sessions.c.started_at < bindparam("older_than"),
    )
    .order_by(sessions.c.started_at)
)


# --- real-time charging over the MVNE's contract -----------------------------------------------


def charge_over_http(
    runtime: Runtime, usage: model.Usage, correlation_id: str | None
) -> model.ChargingOutcome:
    """Ask the MVNE to rate one usage; a silent, failing or off-contract answer is a 502."""
    payload = {
        "externalId": usage.id,
        "usageType": usage.usage_type,
        "usageDate": isoformat(usage.usage_date),
        "msisdn": usage.msisdn,
        "quantity": usage.quantity,
    }

    def call() -> requests.Response:
        return runtime.call_peer(
            caller="mno",
            peer="mvne",
            method="POST",
            path=CHARGING_PATH,
            api_key=peer_api_key(runtime.settings, MNO_NETWORK),
            correlation_id=correlation_id,
            json_body=payload,
        )

    try:
        if has_app_context():
            # In-process the peer is served by this same Flask app on this thread: a fresh
            # app context keeps its request from sharing (and overwriting) this one's `g`.
            with current_app.app_context():
                response = call()
        else:
            response = call()
    except PeerCallFailed as exc:
        raise ChargingUnavailable(
            f"The MVNE charging API did not answer ({exc}); usage {usage.id} stays received",
            usageId=usage.id,
        ) from exc
    if not 200 <= response.status_code < 300:
        raise ChargingUnavailable(
            f"The MVNE charging API answered {response.status_code}; "
            f"usage {usage.id} stays received",
            usageId=usage.id,
            peerStatus=response.status_code,
        )
    try:
        return parse_charging_answer(response, usage)
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise ChargingUnavailable(
            f"The MVNE charging API answered outside its contract ({exc}); "
            f"usage {usage.id} stays received",
            usageId=usage.id,
            peerStatus=response.status_code,
        ) from exc


def parse_charging_answer(response: requests.Response, usage: model.Usage) -> model.ChargingOutcome:
    answer = response.json(parse_float=Decimal)
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    status = answer["status"]
    if status not in (model.USAGE_RATED, model.USAGE_REJECTED):
        raise ValueError(f"status {status!r} is neither rated nor rejected")
    granted = answer.get("grantedQuantity", usage.quantity if status == model.USAGE_RATED else 0)
    if (
        isinstance(granted, bool)
        or not isinstance(granted, int)
        or not 0 <= granted <= usage.quantity
    ):
        raise ValueError(f"grantedQuantity {granted!r} is not between 0 and {usage.quantity}")
    rated = answer.get("ratedProductUsage") or []
    amounts = [_money(entry["taxExcludedRatingAmount"]) for entry in rated]
    charge = None
    if amounts:
        charge = model.Money(sum((m.amount for m in amounts), Decimal(0)), amounts[0].units)
    balance = answer.get("balanceAfter")
    reason = answer.get("reason")
    return model.ChargingOutcome(
        status=status,
        granted_quantity=granted,
        charge=charge,
        balance_after=_money(balance) if balance is not None else None,
        barred=bool(answer.get("barred", False)),
        reason=str(reason) if reason else None,
    )


def _money(value: Any) -> model.Money:
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a money object")
    amount = value["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int | Decimal):
        raise ValueError(f"amount {amount!r} is not a number")
    return model.Money(Decimal(str(amount)), str(value["units"]))


# --- one usage record, end to end ----------------------------------------------------------------


def usage_faults(
    runtime: Runtime,
    *,
    msisdn: str,
    usage_type: str,
    visited_mcc: str | None,
    partner_id: str | None,
) -> Decision:
    """The data faults that fire on one usage record of the network."""
    fields = {"msisdn": (msisdn,), "usagetype": (usage_type,)}
    if visited_mcc:
        fields["visitedmcc"] = (visited_mcc,)
    sample = Sample(role=ROLE, method="POST", partner=partner_id, fields=fields)
    if not runtime.faults.rule_set().candidates(ROLE):
        return NO_FAULTS
    return runtime.faults.decide(sample, runtime.clock.now, kinds=(DATA_EFFECT,))


def settle_charged_usage(
    conn: Connection,
    runtime: Runtime,
    usage: model.Usage,
    copies: int,
    correlation_id: str | None,
) -> rating.IngestOutcome | None:
    """Hand what the network carried (the granted quantity) to wholesale mediation."""
    if not usage.granted_quantity:
        return None
    mvno_id = conn.execute(_MVNO_OF_LINE, {"service_id": usage.service_id}).scalar()
    partner_id = partners.by_mvno(conn, mvno_id) if mvno_id is not None else None
    if partner_id is None:
        return None
    record = rating.NetworkUsage(
        network_event_id=usage.id,
        partner_id=partner_id,
        service_id=usage.service_id,
        msisdn=usage.msisdn,
        usage_type=usage.usage_type,
        event_time=usage.usage_date,
        quantity=usage.granted_quantity,
        unit=usage.unit,
        visited_mcc=usage.visited_mcc,
    )
    return rating.ingest(
        conn,
        [record] * copies,
        now=runtime.clock.now(conn),
        tasks=runtime.tasks,
        correlation_id=correlation_id,
    )


def deliver(
    runtime: Runtime,
    *,
    msisdn: str,
    usage_type: str,
    quantity: int,
    correlation_id: str | None,
    faults: Decision,
    at: float | None = None,
    visited_mcc: str | None = None,
) -> model.TrafficResult:
    """Record one usage, charge it at the MVNE and settle it, with the faults that fired."""
    late = faults.data_fault("LATE_USAGE")
    wrong_unit = faults.data_fault("WRONG_UNIT") is not None

    def charge(usage: model.Usage) -> model.ChargingOutcome:
        return charge_over_http(runtime, usage, correlation_id)

    def settle(conn: Connection, usage: model.Usage, copies: int) -> None:
        settle_charged_usage(conn, runtime, usage, copies, correlation_id)

    return model.simulate_traffic(
        runtime,
        msisdn=msisdn,
        usage_type=usage_type,
        quantity=quantity,
        correlation_id=correlation_id,
        charge=charge,
        late_by_s=float(late.effect.get("delaySeconds", 3600)) if late else 0.0,
        duplicate=faults.data_fault("DUPLICATE_USAGE") is not None,
        at=at,
        visited_mcc=visited_mcc,
        feed_factor=SMALLER_UNIT_FACTOR[usage_type] if wrong_unit else 1,
        on_charged=settle,
    )


def last_network(conn: Connection, service_id: str) -> tuple[str | None, float] | None:
    """Where the network last saw a line: (visited MCC or None at home, when), or None if
    it never used the network."""
    seen: list[tuple[float, str | None]] = []
    usage = conn.execute(_LATEST_USAGE_OF_LINE, {"service_id": service_id}).first()
    if usage is not None:
        seen.append((usage.usage_date, usage.visited_mcc))
    session = conn.execute(_LATEST_SESSION_OF_LINE, {"service_id": service_id}).first()
    if session is not None:
        seen.append((session.started_at, session.visited_mcc))
    if not seen:
        return None
    at, mcc = max(seen, key=lambda pair: pair[0])
    return mcc, at


# --- the usage generator --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedUsage:
    service_id: str
    partner_id: str | None
    msisdn: str
    usage_type: str
    quantity: int
    # When the record is produced: a call's or message's time, a data session's STOP.
    at: float
    visited_mcc: str | None
    session_start: float | None = None


def generator_state(conn: Connection) -> Any | None:
    return select_equal(conn, generator_table, id=1).first()


def configure(
    runtime: Runtime, conn: Connection, *, enabled: bool, profile: dict[str, Any], now: float
) -> Any:
    """Switch the generator on or off; on, its first window starts now."""
    # Request bodies carry exact decimals; the stored profile keeps plain JSON numbers.
    merged = json.loads(json.dumps({**DEFAULT_PROFILE, **profile}, default=float))
    state = generator_state(conn)
    generation = 1 if state is None else int(state.generation) + 1
    values = {
        "enabled": enabled,
        "profile": merged,
        "generation": generation,
        "window_start": now,
        "updated_at": now,
    }
    if state is None:
        conn.execute(generator_table.insert(), {"id": 1, "runs": 0, "records": 0, **values})
    else:
        update_equal(conn, generator_table, {"id": 1}, **values)
    if enabled:
        runtime.tasks.schedule(
            conn,
            role=ROLE,
            kind=GENERATE,
            payload={"generation": generation},
            due_at=now + float(merged["intervalSeconds"]),
            correlation_id=None,
            max_attempts=3,
        )
    return generator_state(conn)


def _count(rng: random.Random, expected: float) -> int:
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def _planned(
    service: Any,
    visited: str | None,
    usage_type: str,
    quantity: int,
    at: float,
    session_start: float | None = None,
) -> PlannedUsage:
    return PlannedUsage(
        service.id,
        service.partner_id,
        service.msisdn,
        usage_type,
        quantity,
        at,
        visited,
        session_start,
    )


def plan_window(
    services: Sequence[Any], profile: dict[str, Any], start: float, end: float
) -> list[PlannedUsage]:
    """What every active line does in [start, end): reproducible from the profile's seed."""
    planned: list[PlannedUsage] = []
    per = profile["perService"]
    roaming = profile.get("roaming") or {}
    mccs = list(roaming.get("visitedMccs") or [])
    length = end - start
    for service in services:
        rng = random.Random(f"{profile['seed']}:{service.id}:{round(start)}")
        visited = (
            rng.choice(mccs) if mccs and rng.random() < float(roaming.get("share", 0)) else None
        )

        for _ in range(_count(rng, float(per.get("dataSessions", 0)))):
            begin = start + rng.random() * length * 0.9
            stop = begin + rng.random() * (end - begin) * 0.9
            volume = rng.randint(int(profile["dataMb"]["min"]), int(profile["dataMb"]["max"]))
            planned.append(_planned(service, visited, "data", volume, stop, begin))
        for _ in range(_count(rng, float(per.get("voiceCalls", 0)))):
            minutes = rng.randint(
                int(profile["voiceMinutes"]["min"]), int(profile["voiceMinutes"]["max"])
            )
            planned.append(
                _planned(service, visited, "voice", minutes, start + rng.random() * length)
            )
        for _ in range(_count(rng, float(per.get("smsMessages", 0)))):
            planned.append(_planned(service, visited, "sms", 1, start + rng.random() * length))
    planned.sort(key=lambda usage: (usage.at, usage.service_id, usage.usage_type))
    return planned


@dataclass(frozen=True)
class Line:
    id: str
    msisdn: str
    # The wholesale partner the line is settled with, if any.
    partner_id: str | None


def active_lines(conn: Connection) -> list[Line]:
    mvnos = {row.mvne_partner_id: row.id for row in conn.execute(_MVNO_PARTNERS)}
    rows = conn.execute(_ACTIVE_LINES).all()
    return [Line(row.id, row.msisdn, mvnos.get(row.mvno_id)) for row in rows]


def run_generator(runtime: Runtime, task: Task) -> None:
    """Task handler: generate the window that just ended, then come back after the next."""
    with runtime.store.read() as conn:
        state = generator_state(conn)
        if state is None or not state.enabled or state.generation != task.payload["generation"]:
            return
        profile = dict(state.profile)
        start = float(state.window_start)
        end = start + float(profile["intervalSeconds"])
        services = active_lines(conn)
    produced = 0
    for usage in plan_window(services, profile, start, end):
        produced += generate_one(runtime, usage, task.correlation_id)
    with runtime.store.write() as conn:
        conn.execute(
            _WINDOW_DONE,
            {"of_generation": task.payload["generation"], "next_start": end, "produced": produced},
        )
    raise Reschedule(float(profile["intervalSeconds"]), "next usage window")


def generate_one(runtime: Runtime, usage: PlannedUsage, correlation_id: str | None) -> int:
    """Play one planned record through the network; 1 if a usage record came of it."""
    faults = usage_faults(
        runtime,
        msisdn=usage.msisdn,
        usage_type=usage.usage_type,
        visited_mcc=usage.visited_mcc,
        partner_id=usage.partner_id,
    )
    session_id = None
    if usage.session_start is not None:
        session_id = f"sess-{uuid.uuid4().hex[:24]}"
        with runtime.store.write() as conn:
            conn.execute(
                sessions.insert(),
                {
                    "id": session_id,
                    "service_id": usage.service_id,
                    "partner_id": usage.partner_id,
                    "msisdn": usage.msisdn,
                    "started_at": usage.session_start,
                    "visited_mcc": usage.visited_mcc,
                    "state": SESSION_OPEN,
                },
            )
        if faults.data_fault("MISSING_STOP") is not None:
            return 0
    try:
        result = deliver(
            runtime,
            msisdn=usage.msisdn,
            usage_type=usage.usage_type,
            quantity=usage.quantity,
            correlation_id=correlation_id,
            faults=faults,
            at=usage.at,
            visited_mcc=usage.visited_mcc,
        )
        usage_id: str | None = result.usage.id
    except ChargingUnavailable as exc:
        # The record stays received at the network; the usage reconciliation shows it.
        usage_id = exc.members.get("usageId")
    except (ServiceNotActive, ServiceNotFound):
        return 0  # the line ended between planning and playing
    if session_id is not None:
        with runtime.store.write() as conn:
            update_equal(
                conn,
                sessions,
                {"id": session_id},
                state=SESSION_CLOSED,
                stopped_at=usage.at,
                usage_id=usage_id,
            )
    return 1


def open_sessions(conn: Connection, partner_id: str, older_than: float) -> list[Any]:
    return list(
        conn.execute(_OPEN_SESSIONS, {"partner_id": partner_id, "older_than": older_than}).all()
    )


def state_json(state: Any | None) -> dict[str, Any]:
    if state is None:
        return {"enabled": False, "profile": DEFAULT_PROFILE, "runs": 0, "records": 0}
    profile = dict(state.profile)
    body: dict[str, Any] = {
        "enabled": bool(state.enabled),
        "profile": profile,
        "runs": int(state.runs),
        "records": int(state.records),
    }
    if state.enabled:
        body["nextWindow"] = {
            "start": isoformat(float(state.window_start)),
            "end": isoformat(float(state.window_start) + float(profile["intervalSeconds"])),
        }
    return body
