"""Fulfillment's rules without HTTP: the vendor file and its defects, carrier routes, S10
tracking codes, ICCID/IMSI ranges that never overlap."""

from __future__ import annotations

import pytest
from conftest import T0

from simulators.core.identifiers import iccid_with_check_digit, is_valid_iccid
from simulators.fulfillment import errors, model, vendor

SPEC = vendor.BatchSpec(
    customer="mvno-alpha",
    profile_type="UICC",
    batch_number="B20261203-0001",
    quantity=3,
    first_iccid="8944770000000000017",
    first_imsi="001010000100000",
)


def rows_of(text: str) -> list[list[str]]:
    lines = text.split("\n")
    start = next(n for n, line in enumerate(lines) if line.startswith("Var_Out:")) + 1
    return [line.split() for line in lines[start:] if line]


def test_the_vendor_file_has_the_vendor_format():
    text = vendor.write(SPEC, seed_text="2026:mvno-alpha:B20261203-0001")
    lines = text.split("\n")
    assert lines[:13] == [
        "*HEADER DESCRIPTION", "*==================", "Customer: mvno-alpha",
        "Profile_Type: UICC", "Batch: B20261203-0001", "Quantity: 3", "*INPUT VARIABLES",
        "*===============", "Ser_Nb: 8944770000000000017", "IMSI: 001010000100000",
        "*OUTPUT VARIABLES", "*================", "Var_Out: ICCID/IMSI/PIN1/PUK1/KI",
    ]  # fmt: skip
    rows = rows_of(text)
    # Consecutive account parts, each with its own Luhn digit (the interface's example file
    # shows 8944770000000000018, 26, 34: those digits fail Luhn; these are E.118's).
    assert [row[0] for row in rows] == [
        "8944770000000000017", "8944770000000000025", "8944770000000000033"]  # fmt: skip
    assert [row[1] for row in rows] == ["001010000100000", "001010000100001", "001010000100002"]
    for _iccid, _imsi, pin, puk, ki in rows:
        assert len(pin) == 4 and pin.isdigit() and len(puk) == 8 and puk.isdigit()
        assert ki == "*" * 32
    assert text.endswith("\n") and vendor.header(text)["Quantity"] == "3"


def test_the_same_order_yields_the_same_file_and_another_seed_other_pins():
    first = vendor.write(SPEC, seed_text="2026:mvno-alpha:B1")
    assert vendor.write(SPEC, seed_text="2026:mvno-alpha:B1") == first
    other = vendor.write(SPEC, seed_text="7:mvno-alpha:B1")
    assert [r[:2] for r in rows_of(other)] == [r[:2] for r in rows_of(first)]
    assert [r[2:4] for r in rows_of(other)] != [r[2:4] for r in rows_of(first)]


def test_an_esim_file_carries_matching_ids_that_make_activation_codes():
    spec = vendor.BatchSpec(**{**SPEC.__dict__, "profile_type": "eSIM"})
    text = vendor.write(spec, seed_text="s")
    assert "Var_Out: ICCID/IMSI/PIN1/PUK1/KI/MATCHING_ID" in text
    read = list(vendor.read_rows(text))
    assert len({row.matching_id for row in read}) == 3
    for row in read:
        code = vendor.activation_code(row.matching_id or "")
        assert code.startswith("LPA:1$smdp.handoff.example$")
        assert code.split("$")[2].replace("-", "").isalnum() and code.split("$")[2].isupper()


@pytest.mark.parametrize(
    "kind,row,check",
    [
        # Off by one from row 1: the first row is not Ser_Nb.
        (vendor.OFF_BY_ONE, 1, lambda rows: rows[0][0] == "8944770000000000025"),
        # ... from row 2: row 2 skips one ICCID.
        (vendor.OFF_BY_ONE, 2, lambda rows: [r[0] for r in rows] == [
            "8944770000000000017", "8944770000000000033", "8944770000000000041"]),
        (vendor.NO_CHECK_DIGIT, 2, lambda rows: [len(r[0]) for r in rows] == [19, 18, 18]),
        (vendor.LONG_IMSI, 3, lambda rows: [len(r[1]) for r in rows] == [15, 15, 16]),
        (vendor.ROW_COUNT, 1, lambda rows: len(rows) == 4),
    ],
)  # fmt: skip
def test_each_vendor_defect_is_in_the_file_from_its_row(kind, row, check):
    text = vendor.write(SPEC, seed_text="s", defect=vendor.Defect(kind, row))
    assert check(rows_of(text)), rows_of(text)
    assert vendor.header(text)["Quantity"] == "3"


def test_a_reused_batch_number_is_written_in_the_header():
    text = vendor.write(SPEC, seed_text="s", file_batch="B-EARLIER")
    assert vendor.header(text)["Batch"] == "B-EARLIER"


def statuses(route):
    return [(scan["status"], scan["at"] - T0) for scan in route]


H = model.HOUR
D = model.DAY


def test_a_standard_parcel_goes_the_whole_way_on_time():
    route = model.plan_route("standard", T0, model.ShipmentFaults(), "Leeds, GB")
    assert statuses(route) == [
        ("InfoReceived", 0), ("InTransit", 6 * H), ("InTransit", 27 * H),
        ("OutForDelivery", 48 * H), ("Delivered", 52 * H)]  # fmt: skip
    assert route[-1]["at"] - T0 <= model.SERVICE_LEVELS["standard"]["sla"]


def test_a_failed_attempt_is_retried_the_next_day():
    route = model.plan_route("express", T0, model.ShipmentFaults(failed_attempts=1), "X")
    assert statuses(route)[-4:] == [
        ("OutForDelivery", 18 * H), ("AttemptFail", 22 * H),
        ("OutForDelivery", 42 * H), ("Delivered", 46 * H)]  # fmt: skip


def test_three_failed_attempts_return_the_parcel_to_the_sender():
    route = model.plan_route("standard", T0, model.ShipmentFaults(failed_attempts=5), "X")
    assert [s for s, _ in statuses(route)].count("AttemptFail") == 3
    assert statuses(route)[-1] == ("Exception", 52 * H + 2 * D + H)
    assert "returning to sender" in route[-1]["message"]


def test_a_damaged_parcel_and_a_lost_one():
    damaged = model.plan_route("standard", T0, model.ShipmentFaults(damaged=True), "X")
    assert [s for s, _ in statuses(damaged)] == ["InfoReceived", "InTransit", "Exception"]
    lost = model.plan_route("economy", T0, model.ShipmentFaults(lost=True), "X")
    assert statuses(lost)[-1] == ("Expired", 12 * H + 30 * D)


def test_an_esim_is_released_and_its_code_delivered_in_minutes():
    route = model.plan_route("digital", T0, model.ShipmentFaults(), "e-mail")
    assert statuses(route) == [("InfoReceived", 0), ("InTransit", 60), ("Delivered", 120)]


def test_tracking_codes_are_upu_s10():
    # The check digit of S10's own example, 12345678 -> 5.
    assert model.s10_tracking_code("EE", 12345678, "US") == "EE123456785US"
    assert model.s10_tracking_code("HP", 10**9 + 12345678) == "HP123456785GB"


def test_the_neighbour_of_an_iccid_has_its_own_check_digit():
    assert model.neighbour_iccid("8944770000000000017") == "8944770000000000025"
    assert is_valid_iccid(model.neighbour_iccid("8944770010000000008"))


def test_ranges_never_overlap(runtime):
    with runtime.store.write() as conn:
        body = {"profileType": "UICC", "quantity": 1000}
        one = model.create_production_order(
            conn, partner_id="mvno-alpha", body=body, defect=None, now=T0, correlation_id=None
        ).row
        two = model.create_production_order(
            conn, partner_id="mvno-alpha", body=body, defect=None, now=T0, correlation_id=None
        ).row
        other = model.create_production_order(
            conn, partner_id="mvno-bravo", body=body, defect=None, now=T0, correlation_id=None
        ).row
    assert vendor.iccid_at(one.first_iccid, 1000) == two.first_iccid
    assert int(two.first_imsi) == int(one.first_imsi) + 1000
    assert other.first_iccid[:9] != one.first_iccid[:9]
    assert (one.batch_number, two.batch_number) == ("B20260302-0001", "B20260302-0002")


def test_an_explicit_range_that_overlaps_is_refused_naming_only_own_batches(runtime):
    with runtime.store.write() as conn:
        mine = model.create_production_order(
            conn, partner_id="mvno-alpha", body={"profileType": "UICC", "quantity": 10},
            defect=None, now=T0, correlation_id=None).row  # fmt: skip
        inside = vendor.iccid_at(mine.first_iccid, 9)
        for partner, named in (("mvno-alpha", True), ("mvno-bravo", False)):
            body = {"profileType": "UICC", "quantity": 5, "firstIccid": inside}
            with pytest.raises(errors.RangeOverlap) as refused:
                model.create_production_order(
                    conn, partner_id=partner, body=body, defect=None, now=T0, correlation_id=None
                )
            assert (mine.batch_number in refused.value.detail) == named
            assert refused.value.members["field"] == "firstIccid"


def test_the_default_range_steps_over_a_batch_ordered_inside_it(runtime):
    with runtime.store.write() as conn:
        block = model.ensure_range(conn, "mvno-alpha").block
        intruder = {"profileType": "UICC", "quantity": 10,
                    "firstIccid": model.default_iccid(block, 5)}  # fmt: skip
        model.create_production_order(conn, partner_id="mvno-alpha", body=intruder,
                                      defect=None, now=T0, correlation_id=None)  # fmt: skip
        body = {"profileType": "UICC", "quantity": 10}
        after = model.create_production_order(
            conn, partner_id="mvno-alpha", body=body, defect=None, now=T0, correlation_id=None
        ).row
    assert after.first_iccid == model.default_iccid(block, 15)


def test_a_range_that_does_not_fit_its_digits_is_refused(runtime):
    with runtime.store.write() as conn:
        last = iccid_with_check_digit("899999999999999999")
        for field_name, first in (("firstIccid", last), ("firstImsi", "001019999999999")):
            body = {"profileType": "UICC", "quantity": 3, field_name: first}
            with pytest.raises(errors.RangeExhausted) as refused:
                model.create_production_order(
                    conn,
                    partner_id="mvno-alpha",
                    body=body,
                    defect=None,
                    now=T0,
                    correlation_id=None,
                )
            assert refused.value.members["field"] == field_name


def test_a_vendor_file_delivered_twice_is_produced_once(runtime):
    with runtime.store.write() as conn:
        order = model.create_production_order(
            conn, partner_id="mvno-alpha", body={"profileType": "UICC", "quantity": 2},
            defect=None, now=T0, correlation_id=None).row  # fmt: skip
        model.vendor_accept(conn, order.id, T0, None)
        first = model.vendor_deliver(conn, order.id, T0 + 1, 2026, None)
        again = model.vendor_deliver(conn, order.id, T0 + 2, 2026, None)
    assert first is not None and first.row.state == model.PRODUCED and again is None
