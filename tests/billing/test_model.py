"""Billing's rules called directly: bill composition (property tests), periods, late usage."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.billing import model, taxes
from simulators.billing.model import BillLine, Charge, bill_lines, taxable_lines, totals
from simulators.billing.taxes import LineTax
from simulators.core.runtime import Runtime

KINDS = ("recurring", "usage", "oneOff", "adjustment")

charges = st.lists(
    st.builds(
        lambda n, kind, amount, usage_type, quantity, charge_type: Charge(
            entry_id=n,
            kind=kind,
            amount_minor=-amount if kind == "adjustment" else amount,
            description=kind,
            charge_type=charge_type if kind == "oneOff" else None,
            usage_type=usage_type if kind == "usage" else None,
            quantity=quantity if kind == "usage" else None,
        ),
        st.integers(1, 10**6),
        st.sampled_from(KINDS),
        st.integers(1, 10**7),
        st.sampled_from(("data", "voice", "sms")),
        st.integers(1, 10**4),
        st.sampled_from(("activation", "equipment")),
    ),
    max_size=12,
    unique_by=lambda charge: charge.entry_id,
)
# Any rate, and amounts with any number of decimals: the engine's rounding is not ours to trust.
rates = st.decimals(min_value=0, max_value=Decimal("0.5"), places=5)


def tax_lines(lines: list[BillLine], rate: Decimal, fee: Decimal) -> None:
    """What a tax engine might answer, with unrounded amounts (half-up to the cent here)."""
    for line in lines:
        if line.taxable_as is None:
            continue
        raw = Decimal(line.amount_minor) / 100 * rate
        line.taxes = [LineTax("state", "State", "US-IL", str(rate), taxes.to_minor(raw))]
        if line.taxable_as == "recurring":
            line.taxes.append(LineTax("e911", "911", "US-IL-911", None, taxes.to_minor(fee)))


@given(charges, rates, st.decimals(min_value=0, max_value=5, places=3))
def test_lines_plus_tax_items_are_exactly_the_total(
    found: list[Charge], rate: Decimal, fee: Decimal
) -> None:
    lines = bill_lines(found)
    tax_lines(lines, rate, fee)
    result = totals(lines)
    assert result.tax_excluded_minor == sum(line.amount_minor for line in lines)
    assert result.tax_minor == sum(item["taxAmountMinor"] for item in result.tax_items)
    assert result.tax_minor == sum(line.tax_minor for line in lines)
    assert result.tax_included_minor == result.tax_excluded_minor + result.tax_minor
    # Every entry lands on exactly one line, and the lines are numbered 1..n.
    covered = sorted(entry for line in lines for entry in line.entry_ids)
    assert covered == sorted(charge.entry_id for charge in found)
    assert [line.line_id for line in lines] == [str(n) for n in range(1, len(lines) + 1)]


@given(charges)
def test_only_charges_go_to_the_tax_engine_and_the_order_is_fixed(found: list[Charge]) -> None:
    lines = bill_lines(found)
    asked = taxable_lines(lines)
    assert all(line.amount_minor > 0 for line in asked)
    assert {line.line_id for line in asked} == {
        line.line_id for line in lines if line.line_type != "adjustment"
    }
    assert bill_lines(found) == lines  # the same entries always give the same bill
    kinds = [line.line_type for line in lines]
    assert kinds == sorted(kinds, key=["recurring", "usage", "oneOff", "adjustment"].index)


@given(st.decimals(min_value=-(10**6), max_value=10**6, places=6))
def test_tax_amounts_round_half_up_to_the_cent(amount: Decimal) -> None:
    minor = taxes.to_minor(str(amount))
    assert abs(Decimal(minor) / 100 - amount) <= Decimal("0.005")
    assert taxes.to_minor("0.075") == 8 and taxes.to_minor("0.074999") == 7


@given(st.integers(1_700_000_000, 2_000_000_000), st.integers(1, 28))
def test_a_period_holds_its_moment_and_the_next_starts_where_it_ends(
    moment: int, cycle_day: int
) -> None:
    period = model.period_at(moment, cycle_day)
    assert period.start <= moment < period.end
    assert datetime.fromtimestamp(period.start, UTC).day == cycle_day
    assert period.next.start == period.end
    assert model.period_of_key(period.key) == period


@pytest.mark.parametrize("amount", ["0", "-1", "1.001", "NaN", "Infinity", "abc"])
def test_amounts_are_exact_or_refused(amount: str) -> None:
    with pytest.raises(model.errors.InvalidAmount):
        model.to_minor(amount)


def test_late_usage_rides_on_the_next_bill(runtime: Runtime) -> None:
    """Usage of a billed period that the MVNE rates later is not lost and not re-billed."""
    with runtime.store.write() as conn:
        account = model.create_account(
            conn,
            partner_id="mvno-alpha",
            body={
                "name": "Late",
                "product": {"id": "p-late"},
                "ratingType": "postpaid",
                "currency": "GBP",
                "placeOfPrimaryUse": {
                    "line1": "1 High St",
                    "city": "Leeds",
                    "postalCode": "LS1 1AA",
                    "country": "GB",
                },
            },
            now=1772442000.0,
            correlation_id=None,
        )
        account = model.link_account(
            conn,
            account.id,
            product={"status": "active"},
            refusal=None,
            now=1772442000.0,
            correlation_id=None,
        )
        march = model.period_at(1772442000.0, 1)
        run, _ = model.ensure_run(conn, "mvno-alpha", 1, march)
        facts = {"p-late": model.SubscriptionFacts("active", 1000, "UK Smart 10")}
        model.cycle_charges(conn, run, [account], facts, [], now=march.end, correlation_id=None)
        lines = bill_lines(
            [
                model.charge_of(r)
                for r in model.entries_for(conn, [account.id], march.key)[account.id]
            ]
        )
        draft = model.Draft(account, lines)
        model.issue_bills(
            conn, run=run, drafts=[draft], payment_term_days=14, now=march.end, correlation_id=None
        )
        april = march.next
        run2, _ = model.ensure_run(conn, "mvno-alpha", 1, april)
        late = model.RatedUsage("u-late", "p-late", "data", march.start + 3600, 50, 50)
        model.cycle_charges(
            conn, run2, [account], facts, [late], now=april.end, correlation_id=None
        )
        model.cycle_charges(
            conn, run2, [account], facts, [late], now=april.end, correlation_id=None
        )
        entries = model.entries_for(conn, [account.id], april.key)[account.id]
    assert [(e.kind, e.amount_minor, e.period) for e in entries] == [
        ("recurring", 1000, april.key),
        ("usage", 50, april.key),
    ]
