"""The wholesale rules without HTTP: agreement terms and tiers, usage identity, the ledger's
periods and reversals, IMSI attribution."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import T0
from sqlalchemy import select

from simulators.core.runtime import Runtime
from simulators.mno import agreements, errors, ledger, partners, rating
from simulators.mvne.model import sim_table

APRIL = 1775001600.0  # 2026-04-01T00:00:00Z


def record(
    event_id: str, quantity: int = 10, at: float = T0, **extra: object
) -> rating.NetworkUsage:
    values = {
        "network_event_id": event_id,
        "partner_id": "mvno-alpha",
        "service_id": "svc-1",
        "msisdn": "+447700900123",
        "usage_type": "data",
        "event_time": at,
        "quantity": quantity,
        "unit": "MB",
        **extra,
    }
    return rating.NetworkUsage(**values)  # type: ignore[arg-type]


def ingest(
    runtime: Runtime, *records: rating.NetworkUsage, now: float = T0
) -> rating.IngestOutcome:
    with runtime.store.write() as conn:
        return rating.ingest(conn, records, now=now, tasks=runtime.tasks)


def test_tiers_are_graduated_over_the_window_volume() -> None:
    rate = agreements.parse_terms(
        partner_id="p",
        agreement_id="a",
        version=1,
        effective_from=0,
        terms=agreements.reference_terms("GBP"),
        created_at=0,
        created_by="t",
    ).rates["data"]
    # 0-10240 MB at 0.0020, 10240-51200 at 0.0015, above at 0.0010 (micro-units per MB).
    assert rate.charge(0, 100) == 100 * 2000
    assert rate.charge(10200, 100) == 40 * 2000 + 60 * 1500
    assert rate.charge(51100, 200) == 100 * 1500 + 100 * 1000
    assert rate.charge(0, 60000) == 10240 * 2000 + 40960 * 1500 + 8800 * 1000


def test_money_is_exact_and_rounded_once_half_up_away_from_zero() -> None:
    assert agreements.micros_text(2_762_000) == "2.762"
    assert agreements.micros_text(-500_000) == "-0.50"
    assert agreements.round_to_cents(-2_765_000) == -277
    assert agreements.round_to_cents(2_764_999) == 276
    assert agreements.cents_text(-5) == "-0.05"
    with pytest.raises(ValueError):
        agreements.to_micros(Decimal("0.0000001"))


@pytest.mark.parametrize(
    "path, value, field",
    [
        (("usageRates", "data", "tiers"), [{"upTo": 10, "price": "1"}, {"upTo": 5, "price": "1"}],
         "terms.usageRates.data.tiers[1].upTo"),
        (("usageRates", "voice", "tiers"), [{"upTo": 10, "price": "1"}],
         "terms.usageRates.voice.tiers[0].upTo"),
        (("usageRates", "sms", "unit"), "MB", "terms.usageRates.sms.unit"),
        (("activationFee",), "0.0000001", "terms.activationFee"),
    ],
)  # fmt: skip
def test_inconsistent_terms_are_refused_naming_the_field(
    runtime: Runtime, path: tuple[str, ...], value: object, field: str
) -> None:
    terms = agreements.reference_terms("GBP")
    target = terms
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with runtime.store.write() as conn, pytest.raises(errors.InvalidAgreementTerms) as refused:
        agreements.add_version(
            conn,
            partner_id="mvno-alpha",
            agreement_id="wa-mvno-alpha",
            effective_from=T0 + 60,
            terms=terms,
            now=T0,
            actor="t",
            correlation_id=None,
        )
    assert refused.value.members["field"] == field


def test_a_record_delivered_twice_is_one_usage_and_one_charge(runtime: Runtime) -> None:
    first = ingest(runtime, record("cdr-1"), record("cdr-1"), record("cdr-2"))
    again = ingest(runtime, record("cdr-2"), record("cdr-3"))

    assert (first.rated, first.duplicates, again.rated, again.duplicates) == (2, 1, 1, 1)
    with runtime.store.read() as conn:
        total, rows = rating.list_usage(conn, "mvno-alpha")
    assert total == 3
    assert [row.tier_offset for row in rows] == [0, 10, 20]
    assert len({row.idempotency_key for row in rows}) == 3


def test_the_identity_holds_every_dimension_so_different_events_stay_apart() -> None:
    base = record("cdr-1")
    keys = {
        rating.identity_key(variant, "wa-mvno-alpha")
        for variant in (
            base,
            record("cdr-2"),
            record("cdr-1", at=T0 + 0.001),
            record("cdr-1", service_id="svc-2"),
            record("cdr-1", usage_type="voice", unit="min"),
            record("cdr-1", partner_id="mvno-bravo"),
        )
    }
    assert len(keys) == 6
    assert rating.identity_key(base, "wa-mvno-alpha") != rating.identity_key(base, "wa-other")
    # Identities start with the event time: time order is index order.
    assert rating.identity_key(base, "a") < rating.identity_key(record("x", at=T0 + 1), "a")


def test_usage_before_any_agreement_is_kept_unrated_and_never_charged(runtime: Runtime) -> None:
    before = partners.REFERENCE_EFFECTIVE_FROM - 60
    outcome = ingest(runtime, record("cdr-old", at=before))

    assert (outcome.rated, outcome.unrated) == (0, 1)
    with runtime.store.read() as conn:
        assert ledger.list_entries(conn, "mvno-alpha") == (0, [])
        held = conn.execute(select(rating.unrated_usage.c.reason)).scalars().all()
    assert held == [rating.NO_AGREEMENT]
    assert ingest(runtime, record("cdr-old", at=before)).duplicates == 1


def test_usage_in_another_unit_than_its_rated_one_is_refused(runtime: Runtime) -> None:
    with pytest.raises(errors.UnitNotRated):
        ingest(runtime, record("cdr-kb", unit="KB"))


def test_an_entry_dated_in_a_closed_period_lands_in_the_next_open_one(runtime: Runtime) -> None:
    with runtime.store.write() as conn:
        for period in ("2026-03", "2026-04"):
            ledger.PeriodBook(conn).status("mvno-alpha", period)
            conn.execute(
                ledger.periods.update()
                .where(ledger.periods.c.period_id == period)
                .values(status=ledger.PERIOD_CLOSED)
            )
    ingest(runtime, record("cdr-late", at=APRIL - 60), now=APRIL + 40 * 86400)

    with runtime.store.read() as conn:
        row = conn.execute(select(ledger.ledger)).one()
    assert (row.service_period, row.period_id) == ("2026-03", "2026-05")


def test_an_entry_is_reversed_once_and_a_reversal_never(runtime: Runtime) -> None:
    ingest(runtime, record("cdr-1", quantity=100))
    with runtime.store.write() as conn:
        original = conn.execute(select(ledger.ledger)).one()
        reversal = ledger.reverse(
            conn, original, idempotency_key="r-1", source="dispute", evidence_ref="d-1", now=T0
        )
        replayed = ledger.reverse(
            conn, original, idempotency_key="r-1", source="dispute", evidence_ref="d-1", now=T0
        )
        assert (reversal.amount_micros, reversal.quantity) == (-200_000, -100)
        assert replayed.id == reversal.id
        with pytest.raises(errors.EntryNotReversible):
            ledger.reverse(
                conn, original, idempotency_key="r-2", source="dispute", evidence_ref="d-2", now=T0
            )
        with pytest.raises(errors.EntryNotReversible):
            ledger.reverse(
                conn, reversal, idempotency_key="r-3", source="dispute", evidence_ref="d-3", now=T0
            )


def test_every_sim_of_the_reference_pools_belongs_to_its_partner_block(runtime: Runtime) -> None:
    """The MNO attributes lines by IMSI block; the MVNE's seeded pools are cut from them."""
    with runtime.store.read() as conn:
        sims = conn.execute(select(sim_table.c.partner_id, sim_table.c.imsi)).all()
        attributed = {(sim.partner_id, partners.partner_of_imsi(conn, sim.imsi)) for sim in sims}
    assert attributed == {("mvno-alpha", "mvno-alpha"), ("mvno-bravo", "mvno-bravo")}
