"""The settlement scenario packs played on the stack: what they break, and that the MNO's
ledger and reconciliation hold."""

from __future__ import annotations

from conftest import ORDERS, T0, activate, api_key, first_sims, order_body, settle

from simulators.core.clock import parse_iso

W = "/mno/v1/wholesale"
S = "/mno/v1/settlement"
APRIL = 1775001600.0  # 2026-04-01T00:00:00Z
ANALYST = {"X-API-Key": api_key("mno-settlement-analyst")}
ALPHA = {"X-API-Key": api_key("mvno-alpha-wholesale")}
MNO_USAGE = "/mno/tmf-api/usageManagement/v4/usage"


def test_double_settlement_charges_each_record_once(network, client, runtime, alpha, mno_headers):
    activate(client, runtime, alpha)
    assert client.post("/__admin/scenarios/double-settlement").status_code == 200
    settle(runtime, 3600)

    records = client.get(f"{MNO_USAGE}?limit=1000", headers=mno_headers).get_json()
    charged = client.get(f"{W}/ledger?kind=usage&limit=1000", headers=ALPHA).get_json()
    assert records and len(charged) == len(records)
    assert len({entry["evidenceRef"] for entry in charged}) == len(records)
    report = client.post(f"{W}/reconciliation", json={"type": "usage"}, headers=ALPHA).get_json()
    assert report["breaks"] == [] and report["compared"]["duplicatesDropped"] == len(records)


def test_wrong_agreement_version_rates_late_usage_under_its_own_version(
    network, client, runtime, alpha
):
    activate(client, runtime, alpha)
    client.post("/__admin/scenarios/wrong-agreement-version")
    change = T0 + 5 + 3600
    settle(runtime, 5 * 3600)  # records arrive dated two hours before they are delivered

    rows = client.get(f"{W}/usage?limit=1000", headers=ALPHA).get_json()
    versions = {
        (parse_iso(row["usageDate"]) >= change, row["ratedProductUsage"][0]["agreement"]["version"])
        for row in rows
    }
    assert versions == {(False, 1), (True, 2)}
    delivered_after = [
        row
        for row in rows
        if parse_iso(row["usageDate"]) < change
        and parse_iso(row["ratedProductUsage"][0]["ratingDate"]) > change
    ]
    assert delivered_after, "no record of the old version arrived after the change"


def test_an_activation_refused_by_the_suspension_race_tells_the_partner_why(
    network, client, runtime, alpha
):
    activate(client, runtime, alpha, external_id="before")
    settle(runtime, APRIL - T0)  # March ends with its activation fee owed
    assert client.post("/__admin/scenarios/suspension-race").status_code == 200
    iccid = first_sims(client, alpha)[0]
    accepted = client.post(ORDERS, json=order_body(iccid, external_id="in-flight"), headers=alpha)
    assert accepted.status_code == 201
    closed = client.post(f"{S}/period/mvno-alpha/2026-03/close", headers=ANALYST)
    assert closed.status_code == 200, closed.get_data(as_text=True)
    settle(runtime, 600)  # the network's 503s end after the 60 s grace: the order is late

    order = client.get(f"{ORDERS}/{accepted.get_json()['id']}", headers=alpha).get_json()
    assert order["state"] == "failed"
    assert order["stateReason"]["code"] == "ACTIVATIONS_SUSPENDED"
    assert order["stateReason"]["retryable"] is False
    assert order["productOrderItem"][0]["stateReason"]["code"] == "ACTIVATIONS_SUSPENDED"
    status = client.get(f"{W}/activationSuspension", headers=ALPHA).get_json()["suspension"][0]
    assert [d["decision"] for d in status["decision"]] == ["refused"]
