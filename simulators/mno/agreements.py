"""Versioned wholesale agreements between the host network and each MVNO, and the rating
functions their terms define.

A version is in force from its `effective_from` until the next version's; an event is rated
under the version in force at its event time, and that version is stored with every charge,
so a new version never changes how an event dated under an older one is rated. Versions are
never edited and never backdated.

Money is held in micro-units (millionths of the currency unit): agreement prices have at most
six decimals and quantities are whole units, so a usage charge is exact and nothing is
rounded before a statement line.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    select,
)

from simulators.core import audit
from simulators.core.clock import isoformat
from simulators.core.store import role_table

from . import errors

ROLE = "mno"
MICROS = 1_000_000
CENTS_PER_UNIT = 100
USAGE_TYPES = ("data", "voice", "sms")
# The unit each usage type is rated in (per MB, per minute, per message).
RATED_UNITS = {"data": "MB", "voice": "min", "sms": "msg"}
TIER_WINDOWS = ("day", "month")
SETTLEMENT_CYCLES = ("monthly",)
MAX_PRICE_DECIMALS = 6

agreement_versions = role_table(
    ROLE,
    "mno_wholesale_agreement",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("partner_id", String(64), nullable=False, index=True),
    Column("agreement_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_from", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    # The terms as agreed, in the contract's representation (decimal strings).
    Column("terms", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(80), nullable=False),
    UniqueConstraint("agreement_id", "version", name="uq_mno_agreement_version"),
)

# Built once and run with bound values: see simulators/core/store.py.
_ALL_VERSIONS = select(agreement_versions)
_VERSIONS_OF_PARTNERS = select(agreement_versions).where(
    agreement_versions.c.partner_id.in_(bindparam("partner_ids", expanding=True))
)


# --- money ------------------------------------------------------------------------------------


def to_micros(value: str | Decimal | int) -> int:
    """An exact decimal amount as micro-units; more than six decimals is refused."""
    amount = Decimal(str(value))
    micros = amount * MICROS
    if micros != micros.to_integral_value():
        raise ValueError(f"{value} has more than {MAX_PRICE_DECIMALS} decimals")
    return int(micros)


def micros_text(micros: int) -> str:
    """Micro-units as a decimal string: at least two decimals, no trailing zeros past them."""
    text = f"{Decimal(micros) / MICROS:.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def round_to_cents(micros: int) -> int:
    """Half-up (away from zero on a tie) to the cent: the one rounding a statement line gets."""
    cents = (Decimal(micros) / (MICROS // CENTS_PER_UNIT)).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return int(cents)


def cents_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


# --- time windows -----------------------------------------------------------------------------


def month_of(epoch: float) -> str:
    """The settlement period (calendar month, UTC) an instant falls in: `YYYY-MM`."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def month_bounds(period_id: str) -> tuple[float, float]:
    year, month = (int(part) for part in period_id.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


def next_month(period_id: str) -> str:
    year, month = (int(part) for part in period_id.split("-"))
    return f"{year + (month == 12):04d}-{month % 12 + 1:02d}"


def day_bounds(day: str) -> tuple[float, float]:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    return start, start + 86400.0


# --- terms ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    # Cumulative units in the volume window where this tier ends; None for the last tier.
    up_to: int | None
    price_micros: int


@dataclass(frozen=True)
class UsageRate:
    usage_type: str
    unit: str
    window: str
    tiers: tuple[Tier, ...]

    def charge(self, offset: int, quantity: int) -> int:
        """Graduated tiers: each unit at the price of the tier its place in the window falls
        in. `offset` is the window's volume before this event."""
        first = self.tiers[0]
        if first.up_to is None or offset + quantity <= first.up_to:
            return quantity * first.price_micros  # the usual case: all in the first tier
        start, end = offset, offset + quantity
        lower = 0
        amount = 0
        for tier in self.tiers:
            upper = end if tier.up_to is None else tier.up_to
            overlap = min(end, upper) - max(start, lower)
            if overlap > 0:
                amount += overlap * tier.price_micros
            if tier.up_to is None or tier.up_to >= end:
                break
            lower = tier.up_to
        return amount


@dataclass(frozen=True)
class SlaCredit:
    below_percent: Decimal
    rate: Decimal


@dataclass(frozen=True)
class AgreementVersion:
    partner_id: str
    agreement_id: str
    version: int
    effective_from: float
    currency: str
    activation_fee_micros: int
    monthly_sim_fee_micros: int
    rates: Mapping[str, UsageRate]
    revenue_share_rate: Decimal
    availability_target: Decimal
    sla_credits: tuple[SlaCredit, ...]
    settlement_cycle: str
    payment_terms_days: int
    dispute_window_days: int
    unpaid_threshold_micros: int
    in_flight_grace_s: float
    session_timeout_s: float
    terms: Mapping[str, Any]
    created_at: float
    created_by: str

    @property
    def id(self) -> str:
        return version_id(self.agreement_id, self.version)

    def sla_credit_rate(self, availability_percent: Decimal) -> Decimal:
        """The credit rate an availability earns: the deepest band it falls below."""
        earned = Decimal(0)
        for credit in self.sla_credits:
            if availability_percent < credit.below_percent:
                earned = max(earned, credit.rate)
        return earned


def version_id(agreement_id: str, version: int) -> str:
    return f"{agreement_id}-v{version}"


def _decimal(value: Any, field: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise errors.InvalidAgreementTerms(
            f"{field}: {value!r} is not a decimal", field=field
        ) from exc


def _micros(value: Any, field: str, *, allow_negative: bool = False) -> int:
    amount = _decimal(value, field)
    if amount < 0 and not allow_negative:
        raise errors.InvalidAgreementTerms(f"{field}: {value} is negative", field=field)
    try:
        return to_micros(amount)
    except ValueError as exc:
        raise errors.InvalidAgreementTerms(f"{field}: {exc}", field=field) from exc


def _rate(usage_type: str, spec: Mapping[str, Any]) -> UsageRate:
    where = f"terms.usageRates.{usage_type}"
    unit = spec.get("unit", RATED_UNITS[usage_type])
    if unit != RATED_UNITS[usage_type]:
        raise errors.InvalidAgreementTerms(
            f"{where}.unit: {usage_type} is rated per {RATED_UNITS[usage_type]}, not {unit}",
            field=f"{where}.unit",
        )
    window = spec.get("tierWindow", "month")
    tiers: list[Tier] = []
    previous = 0
    raw_tiers = list(spec["tiers"])
    for index, raw in enumerate(raw_tiers):
        field = f"{where}.tiers[{index}]"
        up_to = raw.get("upTo")
        last = index == len(raw_tiers) - 1
        if last and up_to is not None:
            raise errors.InvalidAgreementTerms(
                f"{field}.upTo: the last tier is open-ended (null)", field=f"{field}.upTo"
            )
        if not last and (up_to is None or int(up_to) <= previous):
            raise errors.InvalidAgreementTerms(
                f"{field}.upTo: tiers must end at increasing volumes, above {previous}",
                field=f"{field}.upTo",
            )
        tiers.append(Tier(None if up_to is None else int(up_to), _micros(raw["price"], field)))
        previous = int(up_to) if up_to is not None else previous
    return UsageRate(usage_type, unit, window, tuple(tiers))


def parse_terms(
    *,
    partner_id: str,
    agreement_id: str,
    version: int,
    effective_from: float,
    terms: Mapping[str, Any],
    created_at: float,
    created_by: str,
) -> AgreementVersion:
    """Check terms (what the schema cannot say) and read them into micro-units."""
    rates = {
        usage_type: _rate(usage_type, terms["usageRates"][usage_type]) for usage_type in USAGE_TYPES
    }
    sla = terms.get("sla") or {}
    credits = []
    for index, raw in enumerate(sla.get("credits") or []):
        field = f"terms.sla.credits[{index}]"
        rate = _decimal(raw["rate"], f"{field}.rate")
        if not Decimal(0) <= rate <= Decimal(1):
            raise errors.InvalidAgreementTerms(
                f"{field}.rate: a credit rate is between 0 and 1", field=f"{field}.rate"
            )
        credits.append(SlaCredit(_decimal(raw["belowPercent"], f"{field}.belowPercent"), rate))
    share = _decimal((terms.get("revenueShare") or {}).get("rate", "0"), "terms.revenueShare.rate")
    if not Decimal(0) <= share <= Decimal(1):
        raise errors.InvalidAgreementTerms(
            "terms.revenueShare.rate: a share is between 0 and 1", field="terms.revenueShare.rate"
        )
    return AgreementVersion(
        partner_id=partner_id,
        agreement_id=agreement_id,
        version=version,
        effective_from=effective_from,
        currency=str(terms["currency"]),
        activation_fee_micros=_micros(terms["activationFee"], "terms.activationFee"),
        monthly_sim_fee_micros=_micros(terms["monthlySimFee"], "terms.monthlySimFee"),
        rates=rates,
        revenue_share_rate=share,
        availability_target=_decimal(sla.get("availabilityTarget", "100"), "terms.sla"),
        sla_credits=tuple(credits),
        settlement_cycle=str(terms.get("settlementCycle", "monthly")),
        payment_terms_days=int(terms.get("paymentTermsDays", 30)),
        dispute_window_days=int(terms.get("disputeWindowDays", 15)),
        unpaid_threshold_micros=_micros(terms["unpaidThreshold"], "terms.unpaidThreshold"),
        in_flight_grace_s=float(terms.get("inFlightGraceSeconds", 900)),
        session_timeout_s=float(terms.get("sessionTimeoutSeconds", 86400)),
        terms=dict(terms),
        created_at=created_at,
        created_by=created_by,
    )


def _from_row(row: Any) -> AgreementVersion:
    return parse_terms(
        partner_id=row.partner_id,
        agreement_id=row.agreement_id,
        version=row.version,
        effective_from=row.effective_from,
        terms=row.terms,
        created_at=row.created_at,
        created_by=row.created_by,
    )


# --- versions ---------------------------------------------------------------------------------


class VersionBook:
    """Every version of the agreements of some partners, resolved by event time.

    Loaded once per batch of work; the versions of an agreement never change once stored
    (a new one can only take effect from now on), so a book read in a transaction stays true
    for every event it rates.
    """

    def __init__(self, versions: Iterable[AgreementVersion]) -> None:
        self._by_partner: dict[str, list[AgreementVersion]] = {}
        for version in sorted(versions, key=lambda v: (v.partner_id, v.effective_from)):
            self._by_partner.setdefault(version.partner_id, []).append(version)
        self._starts = {
            partner: [v.effective_from for v in found]
            for partner, found in self._by_partner.items()
        }

    def in_force(self, partner_id: str, at: float) -> AgreementVersion | None:
        starts = self._starts.get(partner_id)
        if not starts:
            return None
        index = bisect.bisect_right(starts, at) - 1
        return self._by_partner[partner_id][index] if index >= 0 else None

    def of(self, partner_id: str) -> list[AgreementVersion]:
        return list(self._by_partner.get(partner_id, []))


def load_book(conn: Connection, partner_ids: Iterable[str] | None = None) -> VersionBook:
    if partner_ids is None:
        rows = conn.execute(_ALL_VERSIONS).all()
    else:
        rows = conn.execute(_VERSIONS_OF_PARTNERS, {"partner_ids": sorted(set(partner_ids))}).all()
    return VersionBook(_from_row(row) for row in rows)


def in_force(conn: Connection, partner_id: str, at: float) -> AgreementVersion | None:
    return load_book(conn, [partner_id]).in_force(partner_id, at)


def versions_of(conn: Connection, partner_id: str) -> list[AgreementVersion]:
    return load_book(conn, [partner_id]).of(partner_id)


def add_version(
    conn: Connection,
    *,
    partner_id: str,
    agreement_id: str,
    effective_from: float,
    terms: Mapping[str, Any],
    now: float,
    actor: str,
    correlation_id: str | None,
    allow_past: bool = False,
) -> AgreementVersion:
    """Store the next version of a partner's agreement.

    It takes effect at `effective_from`, which may not be in the past (`allow_past` is for
    the reference data only) nor before the latest version's: either would change how
    events already rated under an older version are rated. The currency stays the
    agreement's.
    """
    existing = versions_of(conn, partner_id)
    if not allow_past and effective_from < now:
        raise errors.AgreementBackdated(
            f"effectiveFrom {isoformat(effective_from)} is before now ({isoformat(now)}): "
            "events already rated under the version in force would change",
            field="effectiveFrom",
        )
    if existing and effective_from <= existing[-1].effective_from:
        raise errors.AgreementBackdated(
            f"effectiveFrom must be after version {existing[-1].version}'s "
            f"({isoformat(existing[-1].effective_from)})",
            field="effectiveFrom",
        )
    if existing and terms["currency"] != existing[-1].currency:
        raise errors.InvalidAgreementTerms(
            f"terms.currency: the agreement is settled in {existing[-1].currency}",
            field="terms.currency",
        )
    number = existing[-1].version + 1 if existing else 1
    version = parse_terms(
        partner_id=partner_id,
        agreement_id=agreement_id,
        version=number,
        effective_from=effective_from,
        terms=terms,
        created_at=now,
        created_by=actor,
    )
    conn.execute(
        agreement_versions.insert(),
        {
            "partner_id": partner_id,
            "agreement_id": agreement_id,
            "version": number,
            "effective_from": effective_from,
            "currency": version.currency,
            "terms": dict(terms),
            "created_at": now,
            "created_by": actor,
        },
    )
    audit.record(
        conn,
        at=now,
        role=ROLE,
        actor=actor,
        partner_id=partner_id,
        action="agreement.versionAdded",
        entity_type="agreement",
        entity_id=version.id,
        correlation_id=correlation_id,
        details={"effectiveFrom": isoformat(effective_from), "version": number},
    )
    return version


def reference_terms(currency: str) -> dict[str, Any]:
    """The reference agreement: what the seeded MVNOs signed."""
    return {
        "currency": currency,
        "activationFee": "2.00",
        "monthlySimFee": "1.50",
        "usageRates": {
            # Per MB, graduated over the month's volume: 0-10 GB, 10-50 GB, above.
            "data": {
                "unit": "MB",
                "tierWindow": "month",
                "tiers": [
                    {"upTo": 10240, "price": "0.0020"},
                    {"upTo": 51200, "price": "0.0015"},
                    {"upTo": None, "price": "0.0010"},
                ],
            },
            "voice": {
                "unit": "min",
                "tierWindow": "month",
                "tiers": [{"upTo": None, "price": "0.0100"}],
            },
            "sms": {
                "unit": "msg",
                "tierWindow": "month",
                "tiers": [{"upTo": None, "price": "0.0050"}],
            },
        },
        "revenueShare": {"rate": "0.05"},
        "sla": {
            "availabilityTarget": "99.9",
            "credits": [
                {"belowPercent": "99.9", "rate": "0.10"},
                {"belowPercent": "99.0", "rate": "0.25"},
            ],
        },
        "settlementCycle": "monthly",
        "paymentTermsDays": 30,
        "disputeWindowDays": 15,
        "unpaidThreshold": "500.00",
        "inFlightGraceSeconds": 900,
        "sessionTimeoutSeconds": 86400,
    }


def version_json(
    version: AgreementVersion, next_from: float | None, base_url: str
) -> dict[str, Any]:
    """TMF651-shaped representation of one version."""
    body: dict[str, Any] = {
        "id": version.id,
        "href": f"{base_url}/v1/wholesale/agreement/{version.id}",
        "@type": "Agreement",
        "agreementId": version.agreement_id,
        "version": version.version,
        "agreementType": "wholesale",
        "partner": {"id": version.partner_id},
        "agreementPeriod": {"startDateTime": isoformat(version.effective_from)},
        "terms": version.terms,
        "createdDate": isoformat(version.created_at),
    }
    if next_from is not None:
        body["agreementPeriod"]["endDateTime"] = isoformat(next_from)
    return body


def versions_json(versions: Sequence[AgreementVersion], base_url: str) -> list[dict[str, Any]]:
    starts = [v.effective_from for v in versions[1:]] + [None]
    return [version_json(v, nxt, base_url) for v, nxt in zip(versions, starts, strict=True)]
