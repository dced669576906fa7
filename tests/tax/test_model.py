"""The tax engine's rules, called directly: golden quotes worked by hand, the table's
boundaries, refusals, data faults as plain values, rounding properties, reconciliation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.tax import errors, model

TABLE = model.load_table()


def request(
    postal: str = "62701",
    country: str | None = "US",
    lines: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    address: dict[str, Any] = {"line1": "1 Main St", "postalCode": postal}
    if country is not None:
        address["country"] = country
    body: dict[str, Any] = {
        "date": "2026-03-31",
        "currency": "USD",
        "customer": {"type": "B2C"},
        "placeOfPrimaryUse": address,
        "lines": lines
        or [
            {
                "lineId": "1",
                "amount": "25.00",
                "transactionType": "wireless",
                "serviceType": "access",
                "lineCount": 1,
            }
        ],
    }
    body.update(overrides)
    return body


def quote(body: dict[str, Any], faults: model.TableFaults = model.NO_FAULTS) -> dict[str, Any]:
    return model.quote_record(model.calculate(TABLE, model.parse_request(body), faults))


def taxes(record: dict[str, Any], line: int = 0) -> dict[str, tuple[str, str | None, str, str]]:
    """level -> (jurisdiction code, rate, basis, amount) of one line (one tax per level)."""
    return {
        tax["level"]: (tax["jurisdictionCode"], tax["rate"], tax["basis"], tax["amount"])
        for tax in record["lines"][line]["taxes"]
    }


# --- golden quotes ---------------------------------------------------------------------------


def test_a_springfield_plan_is_taxed_at_every_us_level():
    record = quote(request())
    assert taxes(record) == {
        # 25.00 x 37.1 % = 9.275 interstate (shown 9.28); x 0.34 = 3.1535 -> 3.15
        "federal": ("US", "0.34", "9.28", "3.15"),
        "state": ("US-IL", "0.07", "25.00", "1.75"),
        "county": ("US-IL-SANGAMON", "0.0125", "25.00", "0.31"),  # 0.3125 -> 0.31
        "city": ("US-IL-SPRINGFIELD", "0.06", "25.00", "1.50"),
        "district": ("US-IL-SMTD", "0.0075", "25.00", "0.19"),  # 0.1875 -> 0.19
        "e911": ("US-IL-911", None, "1", "1.50"),
    }
    assert record["lines"][0]["totalTax"] == "8.40"
    assert (record["totalTax"], record["totalAmount"]) == ("8.40", "33.40")
    assert record["jurisdiction"] == {"country": "US", "resolvedBy": "zip", "postalCode": "62701"}


def test_e911_is_a_fee_per_line_and_only_on_the_monthly_plan():
    lines = [
        {
            "lineId": "plan",
            "amount": "100",
            "transactionType": "wireless",
            "serviceType": "access",
            "lineCount": 4,
        },
        {
            "lineId": "data",
            "amount": "10",
            "transactionType": "wireless",
            "serviceType": "usage",
            "lineCount": 4,
        },
    ]
    record = quote(request("60601", lines=lines))
    assert taxes(record, 0)["e911"] == ("US-IL-CHI-911", None, "4", "20.00")
    assert "e911" not in taxes(record, 1)
    assert record["lines"][0]["amount"] == "100.00"


def test_activation_and_equipment_carry_no_usf():
    lines = [
        {"lineId": "a", "amount": "30", "transactionType": "wireless", "serviceType": "activation"},
        {"lineId": "s", "amount": "5", "transactionType": "wireless", "serviceType": "equipment"},
    ]
    record = quote(request("78701", lines=lines))
    assert set(taxes(record, 0)) == {"state", "county", "city"}
    assert set(taxes(record, 1)) == {"state", "county", "city", "district"}
    assert taxes(record, 1)["state"] == ("US-TX", "0.0625", "5.00", "0.31")  # 0.3125


def test_eu_b2c_pays_the_vat_of_the_address_country_and_records_the_evidence():
    body = request("10115", "DE", currency="EUR", evidence={"imsi": "262011234567890"})
    record = quote(body)
    assert taxes(record) == {"vat": ("DE", "0.185", "25.00", "4.63")}  # 4.625 -> 4.63
    assert (record["totalTax"], record["totalAmount"]) == ("4.63", "29.63")
    assert record["evidence"] == {
        "country": "DE",
        "sources": ["address", "imsi"],
        "imsiCountry": "DE",
    }
    assert record["jurisdiction"] == {"country": "DE", "resolvedBy": "country"}


def test_an_imsi_of_another_country_never_overrides_the_address():
    record = quote(request("75001", "FR", currency="EUR", evidence={"imsi": "262011234567890"}))
    assert taxes(record)["vat"][0] == "FR"
    assert record["evidence"] == {"country": "FR", "sources": ["address"], "imsiCountry": "DE"}


def test_eu_b2b_with_a_vat_id_is_a_reverse_charge():
    b2b = {"type": "B2B", "vatId": "NL123456789B01"}
    record = quote(request("1011", "NL", currency="EUR", customer=b2b))
    [vat] = record["lines"][0]["taxes"]
    assert (vat["level"], vat["rate"], vat["basis"], vat["amount"]) == ("vat", "0", "25.00", "0.00")
    assert "reverse charge" in vat["name"]
    assert (record["totalTax"], record["totalAmount"]) == ("0.00", "25.00")


def test_b2b_without_a_vat_id_pays_vat():
    record = quote(request("00100", "IT", currency="EUR", customer={"type": "B2B"}))
    assert taxes(record)["vat"] == ("IT", "0.215", "25.00", "5.38")  # 5.375 -> 5.38


def test_exemptions_drop_the_named_levels():
    body = request(customer={"type": "B2B", "exemptions": ["state", "e911"]})
    assert set(taxes(quote(body))) == {"federal", "county", "city", "district"}


def test_a_prepaid_customer_pays_no_e911_on_the_bill():
    assert "e911" not in taxes(quote(request(customer={"type": "B2C", "ratingType": "prepaid"})))


# --- boundaries ---------------------------------------------------------------------------------


def test_a_zip_crossing_city_lines_follows_its_zip4_else_its_default_city():
    assert taxes(quote(request("62704-5123")))["city"][0] == "US-IL-LELAND-GROVE"
    assert taxes(quote(request("62704-1000")))["city"][0] == "US-IL-SPRINGFIELD"
    defaulted = quote(request("62704"))
    assert taxes(defaulted)["city"][0] == "US-IL-SPRINGFIELD"
    assert defaulted["jurisdiction"]["resolvedBy"] == "zipDefault"
    assert quote(request("62704-5123"))["jurisdiction"]["resolvedBy"] == "zip+4"


def test_an_annexed_area_moves_into_the_city_on_its_effective_date():
    before = quote(request("62712-3100", date="2026-01-31"))
    after = quote(request("62712-3100", date="2026-02-01"))
    assert set(taxes(before)) == {"federal", "state", "county", "e911"}  # unincorporated
    assert taxes(after)["city"][0] == "US-IL-SPRINGFIELD"
    assert taxes(after)["district"][0] == "US-IL-SMTD"
    outside = quote(request("62712-4100", date="2026-02-01"))
    assert "city" not in taxes(outside)


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (request(country=None), errors.CountryRequired, "placeOfPrimaryUse.country"),
        (
            request(
                placeOfPrimaryUse={"line1": "P.O. Box 12", "postalCode": "62701", "country": "US"}
            ),
            errors.PoBoxNotPrimaryUse,
            "placeOfPrimaryUse.line1",
        ),
        (
            request(
                placeOfPrimaryUse={"line1": "Hauptstr. 1", "line2": "Postfach 3", "country": "DE"}
            ),
            errors.PoBoxNotPrimaryUse,
            "placeOfPrimaryUse.line2",
        ),
        (
            request(
                placeOfPrimaryUse={"line1": "PO Box123", "postalCode": "62701", "country": "US"}
            ),
            errors.PoBoxNotPrimaryUse,
            "placeOfPrimaryUse.line1",
        ),
        (
            request(
                placeOfPrimaryUse={"line1": "Hauptstr. 1", "line2": "Postfach12", "country": "DE"}
            ),
            errors.PoBoxNotPrimaryUse,
            "placeOfPrimaryUse.line2",
        ),
        (request("99999"), errors.JurisdictionNotFound, "placeOfPrimaryUse.postalCode"),
        (request("ABCDE"), errors.JurisdictionNotFound, "placeOfPrimaryUse.postalCode"),
        # `$` matches before a trailing newline: the ZIP must be the whole value.
        (request("62701\n"), errors.JurisdictionNotFound, "placeOfPrimaryUse.postalCode"),
        (request("62701-1234\n"), errors.JurisdictionNotFound, "placeOfPrimaryUse.postalCode"),
        (request("SW1A 1AA", "GB"), errors.JurisdictionNotFound, "placeOfPrimaryUse.country"),
        (
            request(
                placeOfPrimaryUse={
                    "line1": "1 Main St",
                    "region": "TX",
                    "postalCode": "62701",
                    "country": "US",
                }
            ),
            errors.JurisdictionNotFound,
            "placeOfPrimaryUse.region",
        ),
        (
            request(
                lines=[
                    {
                        "lineId": "7",
                        "amount": "1",
                        "transactionType": "wireless",
                        "serviceType": "roaming",
                    }
                ]
            ),
            errors.UnknownTransactionService,
            "lines[0].serviceType",
        ),
        (
            request(
                lines=[
                    {
                        "lineId": "1",
                        "amount": "1",
                        "transactionType": "wireless",
                        "serviceType": "access",
                    }
                ]
                * 2
            ),
            errors.DuplicateLineId,
            "lines[1].lineId",
        ),
    ],
)
def test_refusals_name_the_field(body, error, field):
    with pytest.raises(error) as refused:
        model.calculate(TABLE, model.parse_request(body))
    assert refused.value.members["field"] == field


@pytest.mark.parametrize("line1", ["3 Pobst St", "12 Boxwood Ave", "Postfachstr. 2", "5 Apob Rd"])
def test_a_street_whose_name_holds_a_po_box_word_is_no_po_box(line1):
    address = {"line1": line1, "postalCode": "62701", "country": "US"}
    assert quote(request(placeOfPrimaryUse=address))["jurisdiction"]["postalCode"] == "62701"


def test_the_country_is_required_even_with_an_imsi_as_evidence():
    with pytest.raises(errors.CountryRequired):
        quote(request(country=None, evidence={"imsi": "262011234567890"}))


# --- data faults, as plain values --------------------------------------------------------------


def test_a_missing_jurisdiction_level_quotes_no_tax_for_it():
    record = quote(request(), model.TableFaults(missing_level="city"))
    assert "city" not in taxes(record)
    assert record["totalTax"] == "6.90"  # 8.40 without the city's 1.50


def test_a_defaulted_zip_ignores_its_zip4():
    record = quote(request("62704-5123"), model.TableFaults(zip_default=True))
    assert taxes(record)["city"][0] == "US-IL-SPRINGFIELD"


def test_an_annexation_not_loaded_leaves_the_area_unincorporated():
    record = quote(request("62712-3100"), model.TableFaults(annexation_ignored=True))
    assert "city" not in taxes(record)


def test_the_e911_fee_can_go_to_the_wrong_district():
    record = quote(request(), model.TableFaults(e911_wrong_district=True))
    assert taxes(record)["e911"] == ("US-IL-CHI-911", None, "1", "5.00")


# --- reconciliation ---------------------------------------------------------------------------


def test_compare_names_missing_moved_and_unexpected_taxes():
    expected = quote(request("62704-5123"))
    gap = quote(request("62704-5123"), model.TableFaults(missing_level="city"))
    [missing] = model.compare(gap, expected)
    assert (missing.kind, missing.level, missing.expected_code, missing.quoted_amount) == (
        "missingLevel",
        "city",
        "US-IL-LELAND-GROVE",
        "0.00",
    )
    assert missing.difference == missing.expected_amount
    moved = quote(request("62704-5123"), model.TableFaults(zip_default=True))
    [differs] = model.compare(moved, expected)
    assert (differs.kind, differs.quoted_code, differs.expected_code) == (
        "jurisdictionDiffers",
        "US-IL-SPRINGFIELD",
        "US-IL-LELAND-GROVE",
    )
    [extra] = model.compare(expected, gap)
    assert extra.kind == "unexpectedTax"
    assert model.compare(expected, expected) == []


# --- the table ---------------------------------------------------------------------------------


def test_the_table_covers_several_states_and_levels():
    levels: dict[str, set[str]] = {}
    for code, item in TABLE.jurisdictions.items():
        levels.setdefault(item.level, set()).add(code)
    assert len(TABLE.jurisdictions) >= 30
    assert {code.split("-")[1] for code in TABLE.jurisdictions} >= {"IL", "TX", "CA", "NY", "WA"}
    assert set(levels) == {"state", "county", "city", "district", "e911"}
    assert sum(1 for c in TABLE.countries.values() if c.vat_rate is not None) == 5


def test_a_table_that_contradicts_itself_is_refused():
    document = {
        "minorUnits": {"USD": 2},
        "federal": {"code": "US", "name": "USF", "rate": "0.3", "safeHarbour": "0.371"},
        "transactions": {},
        "countries": {},
        "jurisdictions": {"US-XX": {"level": "state", "name": "X", "rate": "0.1"}},
        "zips": {"00001": {"state": "US-XX", "county": "US-XX-NOWHERE", "e911": "US-XX-911"}},
    }
    with pytest.raises(model.TableInvalid, match="US-XX-NOWHERE"):
        model.parse_table(document)


# --- rounding, as properties --------------------------------------------------------------------

US_ZIPS = sorted(TABLE.zips)
charges = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False).map(str)
invoice_lines = st.lists(
    st.fixed_dictionaries(
        {
            "amount": charges,
            "transactionType": st.just("wireless"),
            "serviceType": st.sampled_from(["access", "usage", "activation", "equipment"]),
            "lineCount": st.integers(0, 500),
        }
    ),
    min_size=1,
    max_size=8,
)
places = st.one_of(
    st.tuples(st.sampled_from(US_ZIPS), st.integers(0, 9999)).map(
        lambda zp: {"line1": "1 Main St", "postalCode": f"{zp[0]}-{zp[1]:04d}", "country": "US"}
    ),
    st.sampled_from(["DE", "FR", "IT", "ES", "NL"]).map(
        lambda country: {"line1": "1 Rue", "country": country}
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    lines=invoice_lines,
    place=places,
    customer=st.fixed_dictionaries(
        {"type": st.sampled_from(["B2C", "B2B"])},
        optional={
            "vatId": st.just("DE123456789"),
            "exemptions": st.lists(st.sampled_from(model.LEVELS), unique=True),
        },
    ),
    day=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
)
def test_every_total_adds_up_to_the_cent(lines, place, customer, day):
    body = {
        "date": day.isoformat(),
        "currency": "USD",
        "customer": customer,
        "placeOfPrimaryUse": place,
        "lines": [{"lineId": str(n), **line} for n, line in enumerate(lines)],
    }
    record = quote(body)
    cent = Decimal("0.01")
    line_totals = []
    for line in record["lines"]:
        amounts = [Decimal(tax["amount"]) for tax in line["taxes"]]
        for amount in amounts:
            assert amount >= 0 and amount == amount.quantize(cent)
        assert sum(amounts, Decimal(0)) == Decimal(line["totalTax"])
        line_totals.append(Decimal(line["totalTax"]))
    assert sum(line_totals, Decimal(0)) == Decimal(record["totalTax"])
    charged = sum((Decimal(line["amount"]) for line in lines), Decimal(0))
    assert charged + Decimal(record["totalTax"]) == Decimal(record["totalAmount"])
    for text in (record["totalTax"], record["totalAmount"]):
        assert Decimal(text) == Decimal(text).quantize(cent) and "." in text


@settings(max_examples=200, deadline=None)
@given(amount=charges)
def test_each_tax_line_rounds_half_up_once(amount):
    usage = {"lineId": "1", "amount": amount, "transactionType": "wireless", "serviceType": "usage"}
    record = quote(request(lines=[usage]))
    exact = Decimal(amount)
    for tax in record["lines"][0]["taxes"]:
        rate = Decimal(tax["rate"])
        base = exact * Decimal("0.371") if tax["level"] == "federal" else exact
        # Half-up: the rounded amount is within half a cent of the exact tax, ties go up.
        difference = Decimal(tax["amount"]) - base * rate
        assert Decimal("-0.005") < difference <= Decimal("0.005")
