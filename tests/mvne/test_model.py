"""The MVNE's rules called directly, without HTTP."""

from __future__ import annotations

import pytest
from conftest import T0, order_body

from simulators.core.identifiers import is_fictitious_msisdn, is_valid_iccid
from simulators.core.tenancy import get_partner
from simulators.mvne import errors, model


@pytest.fixture
def conn(runtime):
    with runtime.store.write() as connection:
        yield connection


def alpha_partner(conn):
    return get_partner(conn, "mvno-alpha")


def available(conn, partner_id: str, count: int) -> list[str]:
    from sqlalchemy import select

    return list(
        conn.execute(
            select(model.sim_table.c.iccid)
            .where(
                model.sim_table.c.partner_id == partner_id, model.sim_table.c.status == "available"
            )
            .order_by(model.sim_table.c.iccid)
            .limit(count)
        ).scalars()
    )


def test_pools_are_valid_disjoint_and_depend_on_the_seed(conn):
    model.generate_pool(conn, "mvno-alpha", 9, 3, seed=1, now=T0)
    other_seed = [model.iccid_for("44", "01", model.pool_serial(2, 9, n)) for n in range(1, 4)]
    mine = [model.iccid_for("44", "01", model.pool_serial(1, 9, n)) for n in range(1, 4)]
    assert all(is_valid_iccid(iccid) for iccid in mine + other_seed)
    assert not set(mine) & set(other_seed)
    assert set(mine) <= set(available(conn, "mvno-alpha", 1000))


def test_msisdn_allocation_is_fictitious_unique_and_reproducible(conn):
    first = [model.allocate_msisdn(conn, "GB", seed=7, order_id="o") for _ in range(20)]
    assert len(set(first)) == 20 and all(is_fictitious_msisdn(n) for n in first)
    us = model.allocate_msisdn(conn, "US", seed=7, order_id="o")
    assert is_fictitious_msisdn(us) and us.startswith("+1") and us[5:9] == "5550"
    conn.execute(model.msisdn_counter_table.delete())
    conn.execute(model.msisdn_hold_table.delete())
    assert [model.allocate_msisdn(conn, "GB", seed=7, order_id="o") for _ in range(20)] == first


@pytest.mark.parametrize("probes", [model.MSISDN_PROBES, 2])
def test_msisdn_allocation_skips_numbers_held_by_live_subscriptions(conn, monkeypatch, probes):
    walk = [model.allocate_msisdn(conn, "GB", seed=7, order_id="o") for _ in range(5)]
    conn.execute(model.msisdn_counter_table.delete())
    conn.execute(model.msisdn_hold_table.delete())
    for n, status in enumerate(["active", "terminated", "suspended", "active"]):
        conn.execute(
            model.product_table.insert(),
            {
                "id": f"held-{n}",
                "partner_id": "mvno-alpha",
                "order_id": f"order-{n}",
                "iccid": f"8944010000000000{n:03d}",
                "imsi": f"00101000000{n:04d}",
                "msisdn": walk[n],
                "offering_id": "po-gb-payg",
                "market": "GB",
                "currency": "GBP",
                "status": status,
                "balance_minor": 0,
                "balance_barred": False,
                "network_barring": "none",
                "start_date": T0,
                "updated_at": T0,
            },
        )
    # Past `probes` numbers asked one by one, the walk reads every live number at once.
    monkeypatch.setattr(model, "MSISDN_PROBES", probes)
    # A terminated subscription's number is free again; the walk goes on past the rest.
    assert model.allocate_msisdn(conn, "GB", seed=7, order_id="o") == walk[1]
    assert model.allocate_msisdn(conn, "GB", seed=7, order_id="o") == walk[4]


@pytest.mark.parametrize("probes", [model.MSISDN_PROBES, 0])
def test_a_number_held_by_an_order_in_flight_is_free_again_once_it_leaves_flight(
    conn, monkeypatch, probes
):
    monkeypatch.setattr(model, "MSISDN_PROBES", probes)
    monkeypatch.setattr(model, "_range", lambda market: (2, model.uk_fictitious_msisdn))
    partner = alpha_partner(conn)
    first, second = (
        model.create_order(
            conn,
            partner=partner,
            body=order_body(iccid, f"hold-{n}"),
            fingerprint=f"f{n}",
            correlation_id="c",
            now=T0,
        )[0]
        for n, iccid in enumerate(available(conn, partner.id, 2))
    )
    held = [
        model.allocate_msisdn(conn, "GB", seed=7, order_id=order.id) for order in (first, second)
    ]
    assert len(set(held)) == 2
    # Both numbers are held by orders the network has not completed: none is left.
    with pytest.raises(errors.MsisdnRangeExhausted):
        model.allocate_msisdn(conn, "GB", seed=7, order_id="third")
    model.set_order_state(
        conn, second.id, state="inProgress", items=second.items, now=T0, actor="system",
        correlation_id=None,
    )  # fmt: skip
    with pytest.raises(errors.MsisdnRangeExhausted):
        model.allocate_msisdn(conn, "GB", seed=7, order_id="third")
    model.set_order_state(
        conn, second.id, state="failed", items=second.items, now=T0, actor="system",
        correlation_id=None,
    )  # fmt: skip
    assert model.allocate_msisdn(conn, "GB", seed=7, order_id="third") == held[1]


def test_order_acceptance_is_all_or_nothing(conn):
    partner = alpha_partner(conn)
    good = available(conn, partner.id, 1)[0]
    body = order_body(good, "mixed")
    body["productOrderItem"].append(
        {
            "id": "2",
            "action": "add",
            "productOffering": {"id": "po-gb-payg"},
            "product": {
                "productCharacteristic": [
                    {"name": "ICCID", "value": model.iccid_for("44", "99", 5)}
                ]
            },
        }
    )
    # Acceptance is one transaction: a refused item takes back the ones reserved before it.
    with pytest.raises(errors.IccidUnmapped), conn.begin_nested():
        model.create_order(
            conn, partner=partner, body=body, fingerprint="f", correlation_id="c", now=T0
        )
    assert good in available(conn, partner.id, 1000)
    assert conn.execute(model.order_table.select()).first() is None


def test_same_external_id_with_other_content_is_refused(conn):
    partner = alpha_partner(conn)
    one, two = available(conn, partner.id, 2)
    order, created = model.create_order(
        conn,
        partner=partner,
        body=order_body(one, "x"),
        fingerprint="a",
        correlation_id="c",
        now=T0,
    )
    again, created_again = model.create_order(
        conn,
        partner=partner,
        body=order_body(one, "x"),
        fingerprint="a",
        correlation_id="c",
        now=T0,
    )
    assert created and not created_again and again.id == order.id
    with pytest.raises(errors.ExternalIdReused):
        model.create_order(
            conn,
            partner=partner,
            body=order_body(two, "x"),
            fingerprint="b",
            correlation_id="c",
            now=T0,
        )


@pytest.mark.parametrize(
    ("amount", "minor"), [(10, 1000), ("0.07", 7), ("19.99", 1999), ("500.00", 50000)]
)
def test_amounts_convert_exactly(amount, minor):
    assert model.to_minor(amount) == minor


@pytest.mark.parametrize("amount", ["0", "-1", "0.001", "1.005", "abc"])
def test_amounts_with_sub_cent_or_non_positive_values_are_refused(amount):
    with pytest.raises(errors.InvalidAmount):
        model.to_minor(amount)


def _live_product(conn, balance: int, status: str = "active"):
    partner = alpha_partner(conn)
    iccid = available(conn, partner.id, 1)[0]
    order, _ = model.create_order(
        conn,
        partner=partner,
        body=order_body(iccid, f"p-{balance}-{status}"),
        fingerprint="f",
        correlation_id=None,
        now=T0,
    )
    item = dict(order.items[0], imsi="001010000000001", msisdn="+447700900500")
    product = model.create_product(
        conn, order=order, item=item, network_service_id="svc", now=T0, correlation_id=None
    )
    conn.execute(
        model.product_table.update()
        .where(model.product_table.c.id == product.id)
        .values(balance_minor=balance, status=status)
    )
    return model.load_product(conn, product.id)


def charge(conn, usage_type: str, quantity: int, event: str):
    body = {
        "externalId": event,
        "usageType": usage_type,
        "msisdn": "+447700900500",
        "quantity": quantity,
    }
    return model.charge_usage(conn, body=body, correlation_id=None, now=T0, usage_date=T0)


def test_charging_grants_what_the_balance_covers_then_bars(conn):
    _live_product(conn, balance=20)  # po-gb-payg: voice 8p/min, sms 6p, data 1p/MB
    usage, product, barred = charge(conn, "voice", 5, "e1")
    assert (usage.granted_quantity, usage.charge_minor, product.balance_minor) == (2, 16, 4)
    # 4p still pays for data: the line stays open until nothing is affordable.
    assert usage.reason == "BALANCE_EXHAUSTED" and not barred
    usage, product, barred = charge(conn, "data", 10, "e2")
    assert (usage.granted_quantity, product.balance_minor) == (4, 0)
    assert barred and product.balance_barred
    usage, product, barred = charge(conn, "data", 1, "e3")
    assert usage.status == "rejected" and usage.reason == "INSUFFICIENT_BALANCE" and not barred


def test_suspended_line_is_not_charged(conn):
    _live_product(conn, balance=500, status="suspended")
    usage, product, _ = charge(conn, "sms", 1, "e3")
    assert (
        usage.status == "rejected" and usage.reason == "SUSPENDED" and product.balance_minor == 500
    )


def test_duplicate_network_event_is_charged_once(conn):
    _live_product(conn, balance=500)
    first, _, _ = charge(conn, "sms", 2, "dup")
    second, product, _ = charge(conn, "sms", 2, "dup")
    assert first.id == second.id and product.balance_minor == 488


def test_balance_ledger_is_append_only_and_sums_to_the_balance(conn):
    from sqlalchemy import func, select

    product = _live_product(conn, balance=500)
    conn.execute(
        model.balance_entry_table.delete().where(
            model.balance_entry_table.c.product_id == product.id
        )
    )
    model._ledger(
        conn,
        product_id=product.id,
        partner_id=product.partner_id,
        kind="initialCredit",
        amount=500,
        balance_after=500,
        reference="r",
        correlation_id=None,
        now=T0,
    )
    charge(conn, "voice", 3, "l1")
    total = conn.execute(
        select(func.sum(model.balance_entry_table.c.amount_minor)).where(
            model.balance_entry_table.c.product_id == product.id
        )
    ).scalar()
    assert total == model.load_product(conn, product.id).balance_minor == 476


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        ("active", "suspended", True),
        ("suspended", "active", True),
        ("active", "terminated", True),
        ("suspended", "terminated", True),
        ("terminated", "active", False),
    ],
)
def test_subscription_transitions(conn, start, target, allowed):
    product = _live_product(conn, balance=100, status=start)
    if allowed:
        row, changed = model.change_status(
            conn, product=product, status=target, actor="t", correlation_id=None, now=T0
        )
        assert changed and row.status == target
    else:
        with pytest.raises(errors.ProductTerminated):
            model.change_status(
                conn, product=product, status=target, actor="t", correlation_id=None, now=T0
            )
