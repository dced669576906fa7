"""The settlement scenario packs played on the stack: what they break, and that the MNO's
ledger and reconciliation hold."""

from __future__ import annotations

from conftest import T0, activate, api_key, settle

from simulators.core.clock import parse_iso

W = "/mno/v1/wholesale"
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
