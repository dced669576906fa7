"""The rules behind the host network's CAMARA APIs: whose line a request is about, and what
SIM Swap, Number Verification and Device Roaming Status answer from the HLR, the SIM change
history and the usage the network recorded.

No web layer here: every rule takes a `Connection` and plain values.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from simulators.core.camara import (
    IdentifierNotFound,
    ServiceNotApplicable,
    TokenHolder,
    explicit_identifier,
)
from simulators.core.oauth import InvalidToken

from . import model
from .authorization import served_line
from .errors import UserNotAuthenticatedByMobileNetwork
from .mcc import countries_of

# The network keeps a line's SIM pairing history for 100 days (2400 h, the longest maxAge
# CAMARA allows); an older change is not disclosed: `latestSimChange` is null and
# `monitoredPeriod` says how far back the network looked.
SIM_SWAP_MONITORED_DAYS = 100
_MONITORED_S = SIM_SWAP_MONITORED_DAYS * 24 * 3600


def subject_line(conn: Connection, holder: TokenHolder, phone_number: str | None) -> model.Service:
    """The line a request is about: the three-legged token's, or the number the body names
    among the lines of the client's MVNO (another MVNO's number is as unknown as any)."""
    explicit = explicit_identifier(holder, phone_number)
    if explicit is None:
        assert holder.line_id is not None
        line = model.service_by_id(conn, holder.line_id)
        if line is None:  # reset away since the token was checked
            raise InvalidToken("The line this token was issued for is no longer served")
        return line
    line = served_line(conn, holder, explicit)
    if line is None:
        raise IdentifierNotFound("The phone number is not associated with a customer account")
    return line


def _for_a_person(line: model.Service, service: str) -> model.Service:
    if line.service_type == model.SERVICE_TYPE_IOT:
        raise ServiceNotApplicable(f"{service} does not apply to a data-only IoT line")
    return line


# --- SIM Swap ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimSwapDate:
    latest_sim_change: float | None
    monitored_days: int | None


def sim_swap_date(conn: Connection, line: model.Service, now: float) -> SimSwapDate:
    """When the number was last paired with a new SIM, if within the monitored period."""
    _for_a_person(line, "SIM Swap")
    latest = model.latest_sim_change(conn, line)
    if now - latest > _MONITORED_S:
        return SimSwapDate(None, SIM_SWAP_MONITORED_DAYS)
    return SimSwapDate(latest, None)


def sim_swapped(conn: Connection, line: model.Service, now: float, max_age_h: int) -> bool:
    """Whether the number was paired with a new SIM in the last `max_age_h` hours (an
    activation counts: CAMARA takes a new subscription for a SIM swap)."""
    _for_a_person(line, "SIM Swap")
    return now - model.latest_sim_change(conn, line) <= max_age_h * 3600


# --- Number Verification ------------------------------------------------------------------


def authenticated_line(conn: Connection, holder: TokenHolder) -> model.Service:
    """The line whose subscriber authenticated for this token; a two-legged token has none."""
    if holder.line_id is None:
        raise UserNotAuthenticatedByMobileNetwork(
            "Client must authenticate via the mobile network to use this service"
        )
    line = subject_line(conn, holder, None)
    return _for_a_person(line, "Number Verification")


def number_matches(line: model.Service, phone_number: str | None, hashed: str | None) -> bool:
    """Whether the number (plain, or SHA-256 hex of its E.164 form with the '+') is the
    authenticated line's."""
    if phone_number is not None:
        return hmac.compare_digest(phone_number, line.msisdn)
    assert hashed is not None
    digest = hashlib.sha256(line.msisdn.encode()).hexdigest()
    return hmac.compare_digest(hashed.lower(), digest)


# --- Device Roaming Status ----------------------------------------------------------------


@dataclass(frozen=True)
class RoamingStatus:
    roaming: bool
    visited_mcc: str | None
    countries: list[str]
    last_status_time: float


# Built once and run with bound values: see simulators/core/store.py.
_LATEST_USAGE_OF_LINE = (
    select(model.usages.c.visited_mcc, model.usages.c.usage_date)
    .where(model.usages.c.service_id == bindparam("service_id"))
    .order_by(model.usages.c.usage_date.desc(), model.usages.c.pk.desc())
    .limit(1)
)


def roaming_status(conn: Connection, line: model.Service) -> RoamingStatus:
    """Where the network last saw the device: the visited network of its latest usage (none
    at home); with no usage yet, at home since it last attached."""
    latest = conn.execute(_LATEST_USAGE_OF_LINE, {"service_id": line.id}).first()
    if latest is None:
        seen = line.last_attach_time if line.last_attach_time is not None else line.start_date
        return RoamingStatus(False, None, [], seen)
    if latest.visited_mcc is None:
        return RoamingStatus(False, None, [], latest.usage_date)
    mcc = str(latest.visited_mcc)
    return RoamingStatus(True, mcc, countries_of(mcc), latest.usage_date)
