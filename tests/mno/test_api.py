"""The host network over HTTP, as the MVNE platform and the control plane see it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
import responses
from conftest import BASE_URL, T0, activate, conforms, json_of, settle
from flask.testing import FlaskClient
from requests import PreparedRequest

from simulators.core.clock import isoformat
from simulators.core.identifiers import iccid_for, imsi_for, uk_fictitious_msisdn
from simulators.core.runtime import Runtime
from simulators.core.tenancy import MNO_NETWORK, create_partner, peer_api_key, set_capability

ORDERS = "/mno/tmf-api/serviceOrdering/v4/serviceOrder"
SERVICES = "/mno/tmf-api/serviceInventory/v4/service"
USAGE = "/mno/tmf-api/usageManagement/v4/usage"
TRAFFIC = "/__admin/traffic"
CHARGING_URL = f"{BASE_URL}/mvne/tmf-api/usageManagement/v4/usage"


def line(n: int) -> dict[str, str]:
    return {
        "IMSI": imsi_for(n),
        "MSISDN": uk_fictitious_msisdn(n),
        "ICCID": iccid_for("44", "10", n),
    }


def add_order(n: int, external_id: str = "ext-1", **overrides: str) -> dict[str, Any]:
    values = {**line(n), **overrides}
    return {
        "externalId": external_id,
        "serviceOrderItem": [
            {
                "id": "1",
                "action": "add",
                "service": {
                    "serviceCharacteristic": [{"name": k, "value": v} for k, v in values.items()]
                },
            }
        ],
    }


def barring_order(service_id: str, barring: str, external_id: str) -> dict[str, Any]:
    return {
        "externalId": external_id,
        "serviceOrderItem": [
            {
                "id": "1",
                "action": "modify",
                "service": {
                    "id": service_id,
                    "serviceCharacteristic": [{"name": "barring", "value": barring}],
                },
            }
        ],
    }


def characteristics(service: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["value"] for c in service["serviceCharacteristic"]}


def provision(
    client: FlaskClient, runtime: Runtime, headers: dict[str, str], n: int = 1
) -> dict[str, Any]:
    """Order service n, let the network complete it; return the service."""
    created = client.post(ORDERS, json=add_order(n, f"setup-{n}"), headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    settle(runtime, 3)
    done = json_of(client.get(created.headers["Location"], headers=headers))
    assert done["state"] == "completed", done
    return json_of(client.get(done["serviceOrderItem"][0]["service"]["href"], headers=headers))


def bar(
    client: FlaskClient, runtime: Runtime, headers: dict[str, str], service_id: str, barring: str
) -> None:
    sent = client.post(
        ORDERS, json=barring_order(service_id, barring, f"bar-{barring}"), headers=headers
    )
    assert sent.status_code == 201
    settle(runtime, 3)
    assert json_of(client.get(sent.headers["Location"], headers=headers))["state"] == "completed"


@pytest.fixture
def other_client(runtime: Runtime) -> dict[str, str]:
    """Headers of a second client of the network."""
    with runtime.store.write() as conn:
        key = create_partner(
            conn,
            secret_key="unused",
            partner_id="another-mvne",
            role="mno",
            name="Another MVNE",
            agreement={},
            granted=["PROVISION_SERVICES", "QUERY_SERVICES", "QUERY_USAGE"],
            now=T0,
            api_key="hk_another-mvne_test",
        )
    return {"X-API-Key": key}


# --- TMF641 service ordering ------------------------------------------------------------------


def test_an_order_is_answered_201_acknowledged_with_its_location(
    client: FlaskClient, mno_headers: dict[str, str]
) -> None:
    response = client.post(
        ORDERS, json=add_order(1), headers={**mno_headers, "X-Correlation-ID": "corr-41"}
    )

    order = conforms(response, "mno", "createServiceOrder")
    assert response.status_code == 201
    assert response.headers["Location"] == order["href"]
    assert order["href"].endswith(f"{ORDERS}/{order['id']}")
    assert response.headers["X-Correlation-ID"] == "corr-41"
    assert order["@type"] == "ServiceOrder"
    assert order["externalId"] == "ext-1"
    assert order["state"] == "acknowledged"
    assert order["orderDate"] == isoformat(T0)
    assert [(i["id"], i["action"], i["state"]) for i in order["serviceOrderItem"]] == [
        ("1", "add", "acknowledged")
    ]
    assert "completionDate" not in order
    provisioning_s = 2.0  # the stack's default (HANDOFF_MNO_PROVISIONING_SECONDS)
    assert order["expectedCompletionDate"] == isoformat(T0 + provisioning_s)


def test_an_order_gives_its_expected_completion_while_open_and_drops_it_once_done(
    client: FlaskClient, runtime: Runtime, mno_headers: dict[str, str]
) -> None:
    location = client.post(ORDERS, json=add_order(1), headers=mno_headers).headers["Location"]
    expected = isoformat(T0 + runtime.settings.mno_provisioning_s)

    settle(runtime, 1)
    running = conforms(client.get(location, headers=mno_headers), "mno", "getServiceOrder")
    settle(runtime, 2)
    done = conforms(client.get(location, headers=mno_headers), "mno", "getServiceOrder")

    assert (running["state"], running["expectedCompletionDate"]) == ("inProgress", expected)
    assert done["state"] == "completed"
    assert "expectedCompletionDate" not in done
    assert done["completionDate"] == expected


def test_the_order_completes_on_the_network_and_names_the_service(
    client: FlaskClient, runtime: Runtime, mno_headers: dict[str, str]
) -> None:
    location = client.post(ORDERS, json=add_order(1), headers=mno_headers).headers["Location"]

    settle(runtime, 3)
    order: dict[str, Any] = {}
    for _ in range(5):
        response = client.get(location, headers=mno_headers)
        order = conforms(response, "mno", "getServiceOrder")
        if order["state"] == "completed":
            break
        settle(runtime, 1)

    assert order["state"] == "completed"
    assert order["completionDate"] == isoformat(T0 + runtime.settings.mno_provisioning_s)
    item = order["serviceOrderItem"][0]
    assert item["state"] == "completed"
    assert item["service"]["href"].endswith(f"{SERVICES}/{item['service']['id']}")
    assert "errorMessage" not in order


def test_the_service_is_the_hlr_record(
    client: FlaskClient, runtime: Runtime, mno_headers: dict[str, str]
) -> None:
    service = provision(client, runtime, mno_headers)

    response = client.get(f"{SERVICES}/{service['id']}", headers=mno_headers)
    record = conforms(response, "mno", "getService")
    assert record["@type"] == "Service"
    assert record["state"] == "active"
    assert record["startDate"] == isoformat(T0 + 2)
    assert "endDate" not in record
    assert characteristics(record) == {
        **line(1),
        "barring": "none",
        "attachState": "attached",
        "lastAttachTime": isoformat(T0 + 2),
        "serviceType": "mobile",
    }
    assert "relatedParty" not in record  # the order named no MVNO


def test_barring_and_deletion_show_on_the_record(
    client: FlaskClient, runtime: Runtime, mno_headers: dict[str, str]
) -> None:
    service = provision(client, runtime, mno_headers)

    bar(client, runtime, mno_headers, service["id"], "all")
    assert (
        characteristics(json_of(client.get(service["href"], headers=mno_headers)))["barring"]
        == "all"
    )

    deletion = {
        "externalId": "del-1",
        "serviceOrderItem": [{"id": "1", "action": "delete", "service": {"id": service["id"]}}],
    }
    ordered_at = runtime.clock.now()
    assert client.post(ORDERS, json=deletion, headers=mno_headers).status_code == 201
    settle(runtime, 3)
    record = conforms(client.get(service["href"], headers=mno_headers), "mno", "getService")
    assert record["state"] == "terminated"
    assert record["endDate"] == isoformat(ordered_at + runtime.settings.mno_provisioning_s)
    assert characteristics(record)["attachState"] == "detached"


def test_a_clash_fails_the_order_with_a_partner_safe_error_message(
    client: FlaskClient,
    runtime: Runtime,
    mno_headers: dict[str, str],
    other_client: dict[str, str],
) -> None:
    theirs = provision(client, runtime, other_client)
    clash = add_order(2, "ext-clash", ICCID=line(1)["ICCID"])

    location = client.post(ORDERS, json=clash, headers=mno_headers).headers["Location"]
    settle(runtime, 3)

    order = conforms(client.get(location, headers=mno_headers), "mno", "getServiceOrder")
    assert order["state"] == "failed"
    assert order["serviceOrderItem"][0]["state"] == "failed"
    [error] = order["errorMessage"]
    assert error["code"] == "ICCID_IN_USE"
    assert error["serviceOrderItem"] == [{"itemId": "1", "serviceOrderId": order["id"]}]
    assert theirs["id"] not in json.dumps(order)
    assert "another-mvne" not in json.dumps(order)


def test_the_same_external_id_answers_the_first_order_and_creates_no_second(
    client: FlaskClient, mno_headers: dict[str, str]
) -> None:
    first = client.post(ORDERS, json=add_order(1), headers=mno_headers)
    again = client.post(ORDERS, json=add_order(1), headers=mno_headers)

    assert again.status_code == 201
    assert json_of(again)["id"] == json_of(first)["id"]
    assert again.headers["Location"] == first.headers["Location"]
    listed = client.get(f"{ORDERS}?externalId=ext-1", headers=mno_headers)
    assert listed.headers["X-Total-Count"] == "1"


def test_an_external_id_reused_for_another_order_is_refused(
    client: FlaskClient, mno_headers: dict[str, str]
) -> None:
    first = client.post(ORDERS, json=add_order(1), headers=mno_headers)

    same_key = client.post(ORDERS, json=add_order(2), headers=mno_headers)
    other_key = client.post(
        ORDERS, json=add_order(2), headers={**mno_headers, "Idempotency-Key": "k-2"}
    )

    assert conforms(same_key, "mno", "createServiceOrder")["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert same_key.status_code == 422
    problem = conforms(other_key, "mno", "createServiceOrder")
    assert (other_key.status_code, problem["code"]) == (409, "EXTERNAL_ID_IN_USE")
    assert json_of(first)["id"] in problem["detail"]
    assert client.get(ORDERS, headers=mno_headers).headers["X-Total-Count"] == "1"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        pytest.param(
            add_order(1, ICCID=iccid_for("44", "10", 1)[:-1] + "0"),
            "INVALID_REQUEST",
            "serviceOrderItem[0].service.serviceCharacteristic[2].value",
            id="iccid-check-digit",
        ),
        pytest.param(
            add_order(1, IMSI="000010000000001"),
            "INVALID_REQUEST",
            "serviceOrderItem[0].service.serviceCharacteristic[0].value",
            id="imsi-unassigned-mcc",
        ),
        pytest.param(
            add_order(1, IMSI="00101ABC"),
            "INVALID_REQUEST",
            "serviceOrderItem[0].service.serviceCharacteristic[0].value",
            id="imsi-not-digits",
        ),
        pytest.param(
            {
                "externalId": "x",
                "serviceOrderItem": [
                    {
                        "id": "1",
                        "action": "add",
                        "service": {
                            "serviceCharacteristic": [
                                {"name": "IMSI", "value": imsi_for(1)},
                                {"name": "MSISDN", "value": uk_fictitious_msisdn(1)},
                            ]
                        },
                    }
                ],
            },
            "INVALID_REQUEST",
            "serviceOrderItem[0].service.serviceCharacteristic",
            id="add-without-iccid",
        ),
        pytest.param(
            {
                "externalId": "x",
                "serviceOrderItem": [
                    {
                        **add_order(1)["serviceOrderItem"][0],
                        "service": {
                            "id": "svc-mine",
                            **add_order(1)["serviceOrderItem"][0]["service"],
                        },
                    }
                ],
            },
            "INVALID_REQUEST",
            "serviceOrderItem[0].service.id",
            id="add-naming-its-service",
        ),
        pytest.param(
            {
                "externalId": "x",
                "serviceOrderItem": [
                    {
                        "id": "1",
                        "action": "modify",
                        "service": {
                            "id": "svc-1",
                            "serviceCharacteristic": [
                                {"name": "MSISDN", "value": uk_fictitious_msisdn(2)}
                            ],
                        },
                    }
                ],
            },
            "INVALID_REQUEST",
            "serviceOrderItem[0].service.serviceCharacteristic[0].name",
            id="modify-cannot-renumber",
        ),
        pytest.param(
            {
                "externalId": "x",
                "serviceOrderItem": [
                    {
                        "id": "1",
                        "action": "modify",
                        "service": {
                            "id": "svc-1",
                            "serviceCharacteristic": [{"name": "IMSI", "value": imsi_for(1)}],
                        },
                    }
                ],
            },
            "INVALID_REQUEST",
            "serviceOrderItem[0].service.serviceCharacteristic",
            id="new-imsi-without-its-iccid",
        ),
        pytest.param(
            {"serviceOrderItem": add_order(1)["serviceOrderItem"]},
            "INVALID_REQUEST",
            "externalId",
            id="no-external-id",
        ),
        pytest.param(
            {**add_order(1), "priority": "1"},
            "INVALID_REQUEST",
            "(body)",
            id="unknown-member",
        ),
        pytest.param(
            {
                "externalId": "x",
                "serviceOrderItem": [{"id": "1", "action": "delete", "service": {}}],
            },
            "INVALID_REQUEST",
            "serviceOrderItem[0].service.id",
            id="delete-without-service",
        ),
        pytest.param(
            {"externalId": "x", "serviceOrderItem": []},
            "INVALID_REQUEST",
            "serviceOrderItem",
            id="no-items",
        ),
    ],
)
def test_an_invalid_order_is_400_naming_the_field(
    client: FlaskClient, mno_headers: dict[str, str], body: dict[str, Any], code: str, field: str
) -> None:
    response = client.post(ORDERS, json=body, headers=mno_headers)

    problem = conforms(response, "mno", "createServiceOrder")
    assert response.status_code == 400
    assert (problem["code"], problem["field"]) == (code, field)
    assert client.get(ORDERS, headers=mno_headers).headers["X-Total-Count"] == "0"


def test_an_order_naming_an_unknown_service_is_422(
    client: FlaskClient, mno_headers: dict[str, str]
) -> None:
    response = client.post(ORDERS, json=barring_order("svc-nope", "all", "x"), headers=mno_headers)

    problem = conforms(response, "mno", "createServiceOrder")
    assert (response.status_code, problem["code"]) == (422, "UNKNOWN_SERVICE")
    assert problem["field"] == "serviceOrderItem[0].service.id"


def test_two_items_with_one_id_are_422(client: FlaskClient, mno_headers: dict[str, str]) -> None:
    body = {
        "externalId": "x",
        "serviceOrderItem": add_order(1)["serviceOrderItem"] + add_order(2)["serviceOrderItem"],
    }

    response = client.post(ORDERS, json=body, headers=mno_headers)

    problem = conforms(response, "mno", "createServiceOrder")
    assert (response.status_code, problem["code"]) == (422, "DUPLICATE_ORDER_ITEM_ID")
    assert problem["field"] == "serviceOrderItem[1].id"


def test_a_body_that_is_not_json_is_refused(
    client: FlaskClient, mno_headers: dict[str, str]
) -> None:
    wrong_type = client.post(
        ORDERS, data=json.dumps(add_order(1)), content_type="text/plain", headers=mno_headers
    )
    malformed = client.post(
        ORDERS, data='{"externalId": "x",', content_type="application/json", headers=mno_headers
    )

    assert conforms(wrong_type, "mno", "createServiceOrder")["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert wrong_type.status_code == 415
    assert conforms(malformed, "mno", "createServiceOrder")["code"] == "MALFORMED_JSON"
    assert malformed.status_code == 400
    null = client.post(ORDERS, data="null", content_type="application/json", headers=mno_headers)
    assert null.status_code == 400
    assert conforms(null, "mno", "createServiceOrder")["field"] == "(body)"


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "hk_mvne-platform_wrong"}])
def test_a_caller_without_a_valid_key_is_401(client: FlaskClient, headers: dict[str, str]) -> None:
    for response, operation in (
        (client.post(ORDERS, json=add_order(1), headers=headers), "createServiceOrder"),
        (client.get(ORDERS, headers=headers), "listServiceOrders"),
        (client.get(SERVICES, headers=headers), "listServices"),
        (client.get(USAGE, headers=headers), "listUsage"),
    ):
        assert response.status_code == 401
        assert conforms(response, "mno", operation)["code"] == "UNAUTHENTICATED"
        assert "X-API-Key" in response.headers["WWW-Authenticate"]


def test_an_mvno_key_does_not_open_the_network(client: FlaskClient, alpha: dict[str, str]) -> None:
    assert client.get(ORDERS, headers=alpha).status_code == 401


def test_a_suspended_capability_is_403(
    client: FlaskClient, runtime: Runtime, mno_headers: dict[str, str]
) -> None:
    with runtime.store.write() as conn:
        set_capability(conn, "mvne-platform", "PROVISION_SERVICES", "suspended", T0)

    refused = client.post(ORDERS, json=add_order(1), headers=mno_headers)

    assert refused.status_code == 403
    assert conforms(refused, "mno", "createServiceOrder")["code"] == "CAPABILITY_SUSPENDED"
    assert client.get(ORDERS, headers=mno_headers).status_code == 200


@pytest.mark.parametrize(
    ("path", "operation", "code"),
    [
        (f"{ORDERS}/so-unknown", "getServiceOrder", "SERVICE_ORDER_NOT_FOUND"),
        (f"{SERVICES}/svc-unknown", "getService", "SERVICE_NOT_FOUND"),
        (f"{USAGE}/usg-unknown", "getUsage", "USAGE_NOT_FOUND"),
    ],
)
def test_an_unknown_id_is_404(
    client: FlaskClient, mno_headers: dict[str, str], path: str, operation: str, code: str
) -> None:
    response = client.get(path, headers=mno_headers)

    assert response.status_code == 404
    assert conforms(response, "mno", operation)["code"] == code


def test_another_clients_resources_are_404_like_unknown_ones(
    client: FlaskClient,
    runtime: Runtime,
    mno_headers: dict[str, str],
    other_client: dict[str, str],
) -> None:
    theirs = provision(client, runtime, other_client)
    [their_order] = json_of(client.get(ORDERS, headers=other_client))

    for path in (their_order["href"], theirs["href"]):
        response = client.get(path, headers=mno_headers)
        assert response.status_code == 404
    unknown = json_of(client.get(f"{SERVICES}/svc-unknown", headers=mno_headers))
    leaked = json_of(client.get(theirs["href"], headers=mno_headers))
    assert (leaked["code"], leaked["title"]) == (unknown["code"], unknown["title"])
    listed = client.get(
        f"{SERVICES}?msisdn={line(1)['MSISDN'].replace('+', '%2B')}", headers=mno_headers
    )
    assert (json_of(listed), listed.headers["X-Total-Count"]) == ([], "0")


def test_lists_page_with_offset_and_limit_and_count_every_match(
    client: FlaskClient, runtime: Runtime, mno_headers: dict[str, str]
) -> None:
    ids = [
        json_of(client.post(ORDERS, json=add_order(n, f"ext-{n}"), headers=mno_headers))["id"]
        for n in range(4)
    ]
    settle(runtime, 3)

    page = client.get(f"{ORDERS}?offset=1&limit=2", headers=mno_headers)
    assert [o["id"] for o in conforms(page, "mno", "listServiceOrders")] == ids[1:3]
    assert (page.headers["X-Total-Count"], page.headers["X-Result-Count"]) == ("4", "2")
    completed = client.get(f"{ORDERS}?state=completed&limit=1", headers=mno_headers)
    assert completed.headers["X-Total-Count"] == "4"
    services = client.get(f"{SERVICES}?imsi={imsi_for(2)}", headers=mno_headers)
    [found] = conforms(services, "mno", "listServices")
    assert characteristics(found)["MSISDN"] == uk_fictitious_msisdn(2)
    beyond = client.get(f"{SERVICES}?offset=10", headers=mno_headers)
    assert (json_of(beyond), beyond.headers["X-Total-Count"]) == ([], "4")
    bad = client.get(f"{ORDERS}?limit=0", headers=mno_headers)
    assert bad.status_code == 400
    assert conforms(bad, "mno", "listServiceOrders")["field"] == "limit"


def test_lifecycle_changes_are_audited_under_the_creating_correlation_id(
    client: FlaskClient, runtime: Runtime, mno_headers: dict[str, str]
) -> None:
    client.post(ORDERS, json=add_order(1), headers={**mno_headers, "X-Correlation-ID": "corr-77"})
    settle(runtime, 3)

    audit = json_of(client.get("/__admin/audit?correlationId=corr-77"))
    assert [(a["actor"], a["action"]) for a in audit if a["role"] == "mno"] == [
        ("peer:mvne", "serviceOrder.acknowledged"),
        ("system", "serviceOrder.inProgress"),
        ("system", "service.activated"),
        ("system", "serviceOrder.completed"),
    ]


# --- admin traffic and real-time charging ----------------------------------------------------


def answer_charging(
    network: responses.RequestsMock,
    reply: Callable[[PreparedRequest], Any],
) -> list[PreparedRequest]:
    """Put `reply` in front of the MVNE's charging API; return the requests it received.

    The stack is mounted with one catch-all callback per method, and responses pops the first
    of several matching mocks, so the mounted POST callback is replaced by one that answers
    charging itself and forwards every other POST as before.
    """
    mounted = next(
        mock
        for mock in network.registered()
        if mock.method == "POST"
        and isinstance(mock.url, re.Pattern)
        and mock.url.match(CHARGING_URL)
        and isinstance(mock, responses.CallbackResponse)
    )
    forward = mounted.callback
    charged: list[PreparedRequest] = []

    def route(request: PreparedRequest) -> Any:
        if (request.url or "").split("?")[0] == CHARGING_URL:
            charged.append(request)
            return reply(request)
        return forward(request)

    network.replace(
        responses.CallbackResponse("POST", mounted.url, callback=route, content_type=None)
    )
    return charged


def rated(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
    sent = json.loads(request.body or b"{}")
    answer = {
        "id": "mvne-usage-1",
        "status": "rated",
        "grantedQuantity": sent["quantity"],
        "ratedProductUsage": [{"taxExcludedRatingAmount": {"amount": 0.25, "units": "GBP"}}],
        "balanceAfter": {"amount": 4.75, "units": "GBP"},
        "barred": False,
    }
    return 201, {"Content-Type": "application/json"}, json.dumps(answer)


def test_traffic_is_recorded_and_charged_by_the_mvne(
    client: FlaskClient,
    runtime: Runtime,
    network: responses.RequestsMock,
    mno_headers: dict[str, str],
) -> None:
    service = provision(client, runtime, mno_headers)
    charged = answer_charging(network, rated)

    response = client.post(
        TRAFFIC,
        json={"msisdn": line(1)["MSISDN"], "usageType": "data", "quantity": 25},
        headers={"X-Correlation-ID": "traffic-1"},
    )

    outcome = conforms(response, "admin", "simulateTraffic")
    assert response.status_code == 201
    assert outcome == {
        "usageId": outcome["usageId"],
        "msisdn": line(1)["MSISDN"],
        "usageType": "data",
        "quantity": 25,
        "grantedQuantity": 25,
        "status": "rated",
        "charge": {"amount": 0.25, "units": "GBP"},
        "remainingBalance": {"amount": 4.75, "units": "GBP"},
        "barred": False,
    }
    [request] = charged
    assert request.headers["X-API-Key"] == peer_api_key(runtime.settings, MNO_NETWORK)
    assert request.headers["X-Correlation-ID"] == "traffic-1"
    assert json.loads(request.body or b"{}") == {
        "externalId": outcome["usageId"],
        "usageType": "data",
        "usageDate": isoformat(runtime.clock.now()),
        "msisdn": line(1)["MSISDN"],
        "quantity": 25,
    }
    usage = conforms(
        client.get(f"{USAGE}/{outcome['usageId']}", headers=mno_headers), "mno", "getUsage"
    )
    assert (usage["status"], usage["grantedQuantity"], usage["unit"]) == ("rated", 25, "MB")
    assert usage["serviceId"] == service["id"]


def test_traffic_on_a_fully_barred_line_is_refused_without_a_charging_call(
    client: FlaskClient,
    runtime: Runtime,
    network: responses.RequestsMock,
    mno_headers: dict[str, str],
) -> None:
    service = provision(client, runtime, mno_headers)
    bar(client, runtime, mno_headers, service["id"], "all")
    charged = answer_charging(network, rated)

    response = client.post(
        TRAFFIC, json={"msisdn": line(1)["MSISDN"], "usageType": "voice", "quantity": 3}
    )

    outcome = conforms(response, "admin", "simulateTraffic")
    assert (outcome["status"], outcome["grantedQuantity"]) == ("rejected", 0)
    assert (outcome["barred"], outcome["reason"]) == (True, "BARRED")
    assert "charge" not in outcome
    assert charged == []
    listed = client.get(f"{USAGE}?status=rejected", headers=mno_headers)
    [usage] = conforms(listed, "mno", "listUsage")
    assert (usage["id"], usage["unit"], usage["grantedQuantity"]) == (outcome["usageId"], "min", 0)


def test_traffic_on_an_unknown_number_is_404(client: FlaskClient) -> None:
    response = client.post(
        TRAFFIC, json={"msisdn": uk_fictitious_msisdn(999), "usageType": "sms", "quantity": 1}
    )

    assert response.status_code == 404
    assert conforms(response, "admin", "simulateTraffic")["code"] == "SERVICE_NOT_FOUND"


def test_traffic_on_a_terminated_line_is_409(
    client: FlaskClient, runtime: Runtime, mno_headers: dict[str, str]
) -> None:
    service = provision(client, runtime, mno_headers)
    deletion = {
        "externalId": "del-1",
        "serviceOrderItem": [{"id": "1", "action": "delete", "service": {"id": service["id"]}}],
    }
    client.post(ORDERS, json=deletion, headers=mno_headers)
    settle(runtime, 3)

    response = client.post(
        TRAFFIC, json={"msisdn": line(1)["MSISDN"], "usageType": "sms", "quantity": 1}
    )

    assert response.status_code == 409
    assert conforms(response, "admin", "simulateTraffic")["code"] == "SERVICE_NOT_ACTIVE"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(lambda r: (503, {"Content-Type": "application/problem+json"}, "{}"), id="5xx"),
        pytest.param(lambda r: requests.ConnectionError("refused"), id="no-answer"),
        pytest.param(
            lambda r: (201, {"Content-Type": "application/json"}, '{"ok": 1}'), id="off-contract"
        ),
    ],
)
def test_charging_that_fails_is_502_and_the_usage_stays_received(
    client: FlaskClient,
    runtime: Runtime,
    network: responses.RequestsMock,
    mno_headers: dict[str, str],
    reply: Callable[[PreparedRequest], Any],
) -> None:
    provision(client, runtime, mno_headers)
    charged = answer_charging(network, reply)

    response = client.post(
        TRAFFIC, json={"msisdn": line(1)["MSISDN"], "usageType": "data", "quantity": 5}
    )

    problem = conforms(response, "admin", "simulateTraffic")
    assert (response.status_code, problem["code"]) == (502, "CHARGING_UNAVAILABLE")
    assert problem["retryable"] is True
    assert len(charged) == 1
    [usage] = json_of(client.get(USAGE, headers=mno_headers))
    assert (usage["status"], usage["id"]) == ("received", problem["usageId"])
    assert "grantedQuantity" not in usage


def test_traffic_is_charged_by_the_real_mvne_through_its_public_api(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], mno_headers: dict[str, str]
) -> None:
    msisdn = activate(client, runtime, alpha)["msisdn"]

    response = client.post(
        TRAFFIC,
        json={"msisdn": msisdn, "usageType": "sms", "quantity": 1},
        headers={"X-Correlation-ID": "traffic-e2e"},
    )

    outcome = conforms(response, "admin", "simulateTraffic")
    assert response.status_code == 201
    assert outcome["status"] in ("rated", "rejected")
    usage = json_of(client.get(f"{USAGE}/{outcome['usageId']}", headers=mno_headers))
    assert (usage["status"], usage["grantedQuantity"]) == (
        outcome["status"],
        outcome["grantedQuantity"],
    )
    journal = json_of(client.get("/__admin/journal?correlationId=traffic-e2e&role=mno"))
    assert [(j["direction"], j["method"], j["url"], j["status"]) for j in journal] == [
        ("outbound", "POST", CHARGING_URL, 201)
    ]
