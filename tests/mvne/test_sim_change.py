"""A partner's SIM change, from the MVNE to the network and out through CAMARA SIM Swap."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import (
    PRODUCTS,
    SIMS,
    activate,
    conforms,
    first_sims,
    json_of,
    network_order_polls,
    settle,
)
from flask.testing import FlaskClient
from mno_support import Network, bearer

from simulators.core.identifiers import imsi_for, uk_fictitious_msisdn
from simulators.core.runtime import Runtime

SIM_CHANGES = "/mvne/v1/simChanges"
SERVICES = "/mno/tmf-api/serviceInventory/v4/service"
CHECK = "/mno/sim-swap/v2/check"
HOUR = 3600


@pytest.fixture
def carrier(client: FlaskClient, runtime: Runtime) -> Network:
    return Network(client, runtime)


def network_record(client: FlaskClient, carrier: Network, msisdn: str) -> dict[str, str]:
    found = client.get(
        SERVICES, query_string={"msisdn": msisdn, "state": "active"}, headers=carrier.mno
    ).get_json()
    assert len(found) == 1, found
    record: dict[str, Any] = found[0]
    values = {c["name"]: c["value"] for c in record["serviceCharacteristic"]}
    values["mvno"] = ",".join(party["id"] for party in record.get("relatedParty", []))
    return values


def sim_status(client: FlaskClient, alpha: dict[str, str], iccid: str) -> str:
    status: str = client.get(f"{SIMS}/{iccid}", headers=alpha).get_json()["resourceStatus"]
    return status


def test_a_sim_change_reaches_the_network_and_sim_swap_reports_it(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], carrier: Network
) -> None:
    subscription = activate(client, runtime, alpha)
    old_iccid = subscription["iccid"]
    # The MVNE names the MVNO on the activation: the network attributes the line to it.
    assert network_record(client, carrier, subscription["msisdn"])["mvno"] == "mvno-alpha"
    settle(runtime, 300 * HOUR)
    ask = {"phoneNumber": subscription["msisdn"]}
    assert client.post(CHECK, json=ask, headers=bearer(carrier.token("sim-swap"))).get_json() == {
        "swapped": False
    }
    new_iccid = first_sims(client, alpha)[0]

    accepted = client.post(
        SIM_CHANGES,
        json={"productId": subscription["id"], "iccid": new_iccid},
        headers={**alpha, "X-Correlation-ID": "corr-swap-1"},
    )
    change = conforms(accepted, "mvne", "requestSimChange")
    assert (change["state"], change["fromIccid"], change["iccid"]) == (
        "acknowledged",
        old_iccid,
        new_iccid,
    )
    assert sim_status(client, alpha, new_iccid) == "reserved"
    settle(runtime)
    settle(runtime, 10)

    done = conforms(client.get(accepted.headers["Location"], headers=alpha), "mvne", "getSimChange")
    assert done["state"] == "completed"
    # The network's expectedCompletionDate is when it finishes: one look, and it is done.
    assert len(network_order_polls(client, "corr-swap-1")) == 1
    product = json_of(client.get(f"{PRODUCTS}/{subscription['id']}", headers=alpha))
    assert (product["iccid"], product["msisdn"]) == (new_iccid, subscription["msisdn"])
    assert (sim_status(client, alpha, old_iccid), sim_status(client, alpha, new_iccid)) == (
        "terminated",
        "active",
    )
    assert network_record(client, carrier, subscription["msisdn"])["ICCID"] == new_iccid
    token = carrier.token("sim-swap")
    assert client.post(CHECK, json=ask, headers=bearer(token)).get_json() == {"swapped": True}


def test_a_sim_change_the_partner_cannot_make_is_refused_and_reserves_nothing(
    client: FlaskClient,
    runtime: Runtime,
    alpha: dict[str, str],
    bravo: dict[str, str],
) -> None:
    subscription = activate(client, runtime, alpha)
    spare = first_sims(client, alpha)[0]
    bravos = first_sims(client, bravo)[0]

    def ask(body: dict[str, str], headers: dict[str, str] = alpha) -> tuple[int, str]:
        answer = client.post(SIM_CHANGES, json=body, headers=headers)
        problem = conforms(answer, "mvne", "requestSimChange")
        return answer.status_code, problem["code"]

    product = subscription["id"]
    assert ask({"productId": product, "iccid": bravos}) == (422, "ICCID_UNMAPPED")
    assert ask({"productId": product, "iccid": subscription["iccid"]}) == (
        409,
        "SIM_ALREADY_ACTIVE",
    )
    assert ask({"productId": product, "iccid": spare}, bravo) == (404, "PRODUCT_NOT_FOUND")
    assert sim_status(client, alpha, spare) == "available"
    first = client.post(SIM_CHANGES, json={"productId": product, "iccid": spare}, headers=alpha)
    assert first.status_code == 201
    other = first_sims(client, alpha)[0]
    assert ask({"productId": product, "iccid": other}) == (409, "SIM_CHANGE_IN_PROGRESS")


def test_a_sim_the_network_holds_on_another_line_fails_the_change_and_goes_back_to_the_pool(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], carrier: Network
) -> None:
    subscription = activate(client, runtime, alpha)
    spare = first_sims(client, alpha)[0]
    # The network already has that ICCID on a line of its own (a SIM sold twice).
    carrier.order(
        {
            "externalId": "clash",
            "serviceOrderItem": [
                {
                    "id": "1",
                    "action": "add",
                    "service": {
                        "serviceCharacteristic": [
                            {"name": "IMSI", "value": imsi_for(990_001)},
                            {"name": "MSISDN", "value": uk_fictitious_msisdn(990)},
                            {"name": "ICCID", "value": spare},
                        ]
                    },
                }
            ],
        }
    )

    accepted = client.post(
        SIM_CHANGES, json={"productId": subscription["id"], "iccid": spare}, headers=alpha
    )
    settle(runtime)
    settle(runtime, 10)

    failed = client.get(accepted.headers["Location"], headers=alpha).get_json()
    assert failed["state"] == "failed"
    assert failed["stateReason"]["code"] == "SIM_IN_USE_ON_NETWORK"
    assert "svc-" not in failed["stateReason"]["reason"]
    assert sim_status(client, alpha, spare) == "available"
    product = json_of(client.get(f"{PRODUCTS}/{subscription['id']}", headers=alpha))
    assert product["iccid"] == subscription["iccid"]


@pytest.mark.parametrize("at_the_network", [False, True])
def test_a_line_terminated_before_its_sim_change_completes_fails_the_change(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], at_the_network: bool
) -> None:
    subscription = activate(client, runtime, alpha)
    spare = first_sims(client, alpha)[0]
    accepted = client.post(
        SIM_CHANGES, json={"productId": subscription["id"], "iccid": spare}, headers=alpha
    )
    assert accepted.status_code == 201
    if at_the_network:
        settle(runtime)
        seen = client.get(accepted.headers["Location"], headers=alpha).get_json()
        assert seen["state"] == "inProgress"
    terminated = client.patch(
        f"{PRODUCTS}/{subscription['id']}", json={"status": "terminated"}, headers=alpha
    )
    assert terminated.status_code == 200
    settle(runtime)
    settle(runtime, 10)

    failed = conforms(
        client.get(accepted.headers["Location"], headers=alpha), "mvne", "getSimChange"
    )
    assert (failed["state"], failed["stateReason"]["code"]) == ("failed", "PRODUCT_TERMINATED")
    product = json_of(client.get(f"{PRODUCTS}/{subscription['id']}", headers=alpha))
    assert (product["status"], product["iccid"]) == ("terminated", subscription["iccid"])
    assert sim_status(client, alpha, spare) == "available"


def test_a_suspended_line_s_new_sim_is_suspended_with_it(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    subscription = activate(client, runtime, alpha)
    suspended = client.patch(
        f"{PRODUCTS}/{subscription['id']}", json={"status": "suspended"}, headers=alpha
    )
    assert suspended.status_code == 200
    settle(runtime)
    spare = first_sims(client, alpha)[0]
    accepted = client.post(
        SIM_CHANGES, json={"productId": subscription["id"], "iccid": spare}, headers=alpha
    )
    assert accepted.status_code == 201
    settle(runtime)
    settle(runtime, 10)

    done = conforms(client.get(accepted.headers["Location"], headers=alpha), "mvne", "getSimChange")
    assert done["state"] == "completed"
    assert (sim_status(client, alpha, subscription["iccid"]), sim_status(client, alpha, spare)) == (
        "terminated",
        "suspended",
    )
    resumed = client.patch(
        f"{PRODUCTS}/{subscription['id']}", json={"status": "active"}, headers=alpha
    )
    assert resumed.status_code == 200
    assert sim_status(client, alpha, spare) == "active"
