"""The fulfillment scenario packs do what their headers say."""

from __future__ import annotations

from conftest import settle

from .conftest import ALPHA, DAY, HOUR, SHIPMENTS, get_shipment, produce, ship


def test_bad_vendor_file_rejects_each_kind_of_batch_naming_the_row(client, runtime, network):
    client.post("/__admin/scenarios/bad-vendor-file")
    uicc = produce(client, runtime, quantity=3)
    esim = produce(client, runtime, profileType="eSIM", quantity=3)
    assert (uicc["state"], uicc["loadError"]["code"], uicc["loadError"]["row"]) == (
        "rejected", "RANGE_BROKEN", 2)  # fmt: skip
    assert (esim["state"], esim["loadError"]["code"], esim["loadError"]["row"]) == (
        "rejected", "IMSI_INVALID", 1)  # fmt: skip


def test_iccid_mapped_late_maps_a_day_after_delivery_and_every_third_wrongly(
    client, runtime, network
):
    produce(client, runtime, quantity=4)
    client.post("/__admin/scenarios/iccid-mapped-late")
    shipments = [ship(client, accountId=f"acct-{n}") for n in range(3)]
    settle(runtime, 52 * HOUR)
    assert {get_shipment(client, s["id"])["mappingStatus"] for s in shipments} == {"pending"}
    settle(runtime, DAY)
    mapped = [get_shipment(client, s["id"])["mapping"] for s in shipments]
    assert [m["iccid"] == s["iccid"] for m, s in zip(mapped, shipments, strict=True)] == [
        True, True, False]  # fmt: skip


def test_shipping_sla_breach_makes_every_express_shipment_late(client, runtime, network):
    produce(client, runtime, quantity=3)
    client.post("/__admin/scenarios/shipping-sla-breach")
    express = ship(client, serviceLevel="express")
    standard = ship(client, accountId="acct-2")
    settle(runtime, 4 * DAY)
    breached = client.get(f"{SHIPMENTS}?slaBreached=true", headers=ALPHA).get_json()
    assert [s["id"] for s in breached] == [express["id"]]
    assert get_shipment(client, standard["id"])["status"] == "Delivered"
