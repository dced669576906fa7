"""The composed stack: served contracts and docs, and a peer swapped for another vendor."""

from __future__ import annotations

import responses
from conftest import ORDERS, SECRET, T0, api_key, first_sims, order_body

from simulators.core.config import Settings
from simulators.core.inprocess import mount
from simulators.stack import create_app, runtime_of


def test_each_role_serves_its_contract_and_browsable_docs(client):
    for prefix in ("/mno", "/mvne", "/__admin"):
        document = client.get(f"{prefix}/openapi.json").get_json()
        assert document["openapi"] == "3.1.0" and document["servers"] == [{"url": prefix}]
        docs = client.get(f"{prefix}/docs/")
        assert docs.status_code == 200 and b"swagger-ui" in docs.data
        assert f"{prefix}/openapi.json".encode() in docs.data
        with client.get(f"{prefix}/docs/swagger-ui-bundle.js") as bundle:
            assert bundle.status_code == 200 and len(bundle.data) > 100_000  # shipped offline


def test_the_mvne_uses_whatever_mno_the_configuration_names(app, runtime, tmp_path):
    """The session stack plays a vendor's MNO; a second stack's MVNE is pointed at it."""
    ours = create_app(
        Settings(
            db_url=f"sqlite:///{tmp_path / 'ours.db'}",
            port=8701,
            secret_key=SECRET,
            mno_base_url="http://mno.vendor.test/mno",
        )
    )
    our_runtime = runtime_of(ours)
    our_runtime.clock.set(T0, frozen=True)
    alpha = {"X-API-Key": api_key("mvno-alpha")}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mount(mock, ours, "http://127.0.0.1:8701")
        mount(mock, app, "http://mno.vendor.test")
        client = ours.test_client()
        iccid = first_sims(client, alpha)[0]
        order = client.post(ORDERS, json=order_body(iccid, "swap-1"), headers=alpha).get_json()
        for _ in range(6):
            our_runtime.advance(1)
            runtime.advance(1)
        assert (
            client.get(f"{ORDERS}/{order['id']}", headers=alpha).get_json()["state"] == "completed"
        )

    vendor = app.test_client()
    mno = {"X-API-Key": api_key("mvne-platform")}
    vendor_orders = vendor.get(
        "/mno/tmf-api/serviceOrdering/v4/serviceOrder", headers=mno
    ).get_json()
    assert [o["externalId"] for o in vendor_orders] == [order["id"]]
    own_orders = client.get("/mno/tmf-api/serviceOrdering/v4/serviceOrder", headers=mno).get_json()
    assert own_orders == []
    outbound = client.get("/__admin/journal?direction=outbound").get_json()
    assert outbound and all(e["url"].startswith("http://mno.vendor.test/mno/") for e in outbound)
    our_runtime.close()
