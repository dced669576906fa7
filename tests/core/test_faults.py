"""Fault rules switched on through /__admin/faults: what each effect does to a request,
how the dosage counts, and that requests no rule matches are untouched."""

from __future__ import annotations

import json

import pytest
import requests
from conftest import BASE_URL, ORDERS, activate, conforms, first_sims, order_body, settle

from simulators.core.clock import parse_iso
from simulators.core.faults import FaultRule, RuleSet, Sample, latency_ms

FAULTS = "/__admin/faults"
ORDER_URL = BASE_URL + ORDERS


def add(client, rule, status=201):
    response = client.post(FAULTS, json=rule)
    assert response.status_code == status, response.get_data(as_text=True)
    return conforms(response, "admin", "addFault")


def order_count(client, headers) -> int:
    return int(client.get(ORDERS, headers=headers).headers["X-Total-Count"])


def test_a_status_rule_answers_for_the_fake_and_nothing_is_created(client, alpha, runtime):
    add(
        client,
        {
            "id": "mvne-down",
            "match": {"role": "mvne", "operation": "createProductOrder"},
            "effect": {"type": "status", "status": 503, "retryAfter": 5},
        },
    )
    iccid = first_sims(client, alpha)[0]
    refused = client.post(ORDERS, json=order_body(iccid), headers=alpha)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["code"] == "SERVICE_UNAVAILABLE"
    assert order_count(client, alpha) == 0
    # Another operation of the same role is untouched.
    assert client.get(ORDERS, headers=alpha).status_code == 200
    runtime.journal.flush()
    entries = client.get("/__admin/journal?role=mvne&limit=10").get_json()
    fired = [e for e in entries if e["operationId"] == "createProductOrder"]
    assert fired[0]["status"] == 503 and fired[0]["extra"] == {"faults": ["mvne-down"]}
    untouched = [e for e in entries if e["operationId"] == "listProductOrders"]
    assert untouched and all(e["extra"] is None for e in untouched)


def test_rules_are_listed_read_and_switched_off(client, alpha):
    add(client, {"id": "one", "effect": {"type": "status", "status": 500}, "priority": 5})
    add(client, {"effect": {"type": "latency", "ms": 0}})
    listed = conforms(client.get(FAULTS), "admin", "listFaults")
    assert listed[0]["id"] == "one" and listed[0]["source"] == "api"
    assert conforms(client.get(f"{FAULTS}/one"), "admin", "getFault")["priority"] == 5
    assert client.delete(f"{FAULTS}/one").status_code == 204
    assert client.get(f"{FAULTS}/one").status_code == 404
    assert client.get(ORDERS, headers=alpha).status_code == 200
    assert client.delete(FAULTS).get_json() == {"removed": 1}
    assert client.get(FAULTS).get_json() == []


def test_a_bad_rule_is_refused_naming_the_field_and_nothing_is_stored(client):
    unknown_operation = add(
        client,
        {"match": {"role": "mvne", "operation": "createOrder"}, "effect": {"type": "reset"}},
        status=422,
    )
    assert unknown_operation["field"] == "match.operation"
    assert "createOrder" in unknown_operation["detail"]
    bad_shape = client.post(FAULTS, json={"effect": {"type": "status", "status": 99}})
    assert bad_shape.status_code == 400 and bad_shape.get_json()["field"] == "effect.status"
    latency_without_ms = add(client, {"effect": {"type": "latency"}}, status=422)
    assert latency_without_ms["field"] == "effect.ms"
    callback_on_request = add(
        client, {"match": {"operation": "getProduct"}, "effect": {"type": "storm"}}, status=422
    )
    assert callback_on_request["field"] == "match.operation"
    add(client, {"id": "dup", "effect": {"type": "reset"}})
    assert add(client, {"id": "dup", "effect": {"type": "empty"}}, status=409)["code"] == (
        "FAULT_RULE_EXISTS"
    )
    assert [rule["id"] for rule in client.get(FAULTS).get_json()] == ["dup"]


def test_first_n_and_every_nth_count_matches(client, alpha):
    add(
        client,
        {
            "match": {"role": "mvne", "operation": "listSims"},
            "effect": {"type": "status", "status": 500},
            "dosage": {"firstN": 2},
        },
    )
    sims = "/mvne/tmf-api/resourceInventoryManagement/v4/resource"
    statuses = [client.get(sims, headers=alpha).status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    client.delete(FAULTS)
    add(
        client,
        {
            "match": {"role": "mvne", "operation": "listSims"},
            "effect": {"type": "status", "status": 502},
            "dosage": {"everyNth": 3},
        },
    )
    statuses = [client.get(sims, headers=alpha).status_code for _ in range(6)]
    assert statuses == [200, 200, 502, 200, 200, 502]
    rule = client.get(FAULTS).get_json()[0]
    assert (rule["matched"], rule["fired"]) == (6, 2)


def test_a_seeded_probability_gives_the_same_faults_in_the_same_order(client, alpha):
    sims = "/mvne/tmf-api/resourceInventoryManagement/v4/resource"
    rule = {
        "id": "coin",
        "match": {"role": "mvne", "operation": "listSims"},
        "effect": {"type": "status", "status": 503},
        "dosage": {"probability": 0.5, "seed": 42},
    }
    runs = []
    for _ in range(2):
        client.delete(FAULTS)
        add(client, rule)
        runs.append([client.get(sims, headers=alpha).status_code for _ in range(30)])
    assert runs[0] == runs[1]
    assert 5 < runs[0].count(503) < 25  # a coin, not a constant


def test_a_seeded_rule_without_an_id_gives_the_same_faults_run_after_run(client, alpha):
    sims = "/mvne/tmf-api/resourceInventoryManagement/v4/resource"
    rule = {
        "match": {"role": "mvne", "operation": "listSims"},
        "effect": {"type": "status", "status": 503},
        "dosage": {"probability": 0.5, "seed": 7},
    }
    runs, ids = [], []
    for _ in range(2):
        client.delete(FAULTS)
        ids.append(add(client, rule)["id"])
        runs.append([client.get(sims, headers=alpha).status_code for _ in range(30)])
    assert ids[0] == ids[1] and runs[0] == runs[1]
    assert 5 < runs[0].count(503) < 25
    again = add(client, rule)["id"]  # the same rule twice: a second rule, its own id
    assert again == f"{ids[0]}-2"


def test_field_match_finds_the_iccid_inside_tmf_characteristics(client, alpha):
    first, second = first_sims(client, alpha, 2)
    add(
        client,
        {
            "match": {"role": "mvne", "fields": {"ICCID": first}},
            "effect": {"type": "status", "status": 500},
        },
    )
    assert client.post(ORDERS, json=order_body(first, "a"), headers=alpha).status_code == 500
    assert client.post(ORDERS, json=order_body(second, "b"), headers=alpha).status_code == 201


def test_partner_and_header_matches(client, alpha, bravo):
    add(
        client,
        {
            "match": {"role": "mvne", "partner": "mvno-bravo", "headers": {"X-Test": "yes"}},
            "effect": {"type": "status", "status": 429, "retryAfter": 2},
        },
    )
    assert client.get(ORDERS, headers={**alpha, "X-Test": "yes"}).status_code == 200
    assert client.get(ORDERS, headers=bravo).status_code == 200
    limited = client.get(ORDERS, headers={**bravo, "X-Test": "yes"})
    assert limited.status_code == 429 and limited.get_json()["code"] == "RATE_LIMITED"


def test_an_outage_rule_meets_callers_with_a_wrong_key_too(client):
    add(client, {"match": {"role": "mvne"}, "effect": {"type": "status", "status": 503}})
    assert client.get(ORDERS, headers={"X-API-Key": "wrong"}).status_code == 503


def test_a_window_on_the_simulated_clock(client, alpha, runtime):
    add(
        client,
        {
            "match": {"role": "mvne", "operation": "listProductOrders"},
            "effect": {"type": "status", "status": 503},
            "dosage": {"window": {"fromSeconds": 60, "untilSeconds": 120}},
        },
    )
    assert client.get(ORDERS, headers=alpha).status_code == 200
    runtime.advance(60)
    assert client.get(ORDERS, headers=alpha).status_code == 503
    runtime.advance(60)
    assert client.get(ORDERS, headers=alpha).status_code == 200


def test_latency_draws_are_seeded_and_follow_their_distribution():
    def rule(effect):
        return FaultRule("r", 100, {"effect": effect, "dosage": {"seed": 3}}, "api", 0.0)

    fixed = rule({"type": "latency", "distribution": "fixed", "ms": 250})
    assert latency_ms(fixed, 1) == 250
    uniform = rule({"type": "latency", "distribution": "uniform", "minMs": 10, "maxMs": 20})
    draws = [latency_ms(uniform, n) for n in range(1, 200)]
    assert all(10 <= d <= 20 for d in draws) and max(draws) - min(draws) > 5
    lognormal = rule({"type": "latency", "distribution": "lognormal", "medianMs": 100, "sigma": 1})
    draws = sorted(latency_ms(lognormal, n) for n in range(1, 1001))
    assert 80 < draws[500] < 125  # the median is the median
    assert draws[990] > 500  # and the tail is long
    assert draws == sorted(latency_ms(lognormal, n) for n in range(1, 1001))


def test_transport_faults_in_process_raise_what_requests_raises(network, client, alpha):
    iccid = first_sims(client, alpha)[0]
    add(
        client,
        {
            "match": {"role": "mvne", "operation": "createProductOrder"},
            "effect": {"type": "timeout", "stage": "after"},
            "dosage": {"firstN": 1},
        },
    )
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(ORDER_URL, json=order_body(iccid), headers=alpha, timeout=5)
    # The order was taken before the answer was lost: the retry gets it back, not a second one.
    retry = requests.post(ORDER_URL, json=order_body(iccid), headers=alpha, timeout=5)
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") == "true"
    assert order_count(client, alpha) == 1
    client.delete(FAULTS)
    add(client, {"match": {"role": "mvne", "method": "GET"}, "effect": {"type": "reset"}})
    with pytest.raises(requests.exceptions.ConnectionError, match="reset"):
        requests.get(ORDER_URL, headers=alpha, timeout=5)
    client.delete(FAULTS)
    before = order_count(client, alpha)
    add(client, {"match": {"role": "mvne", "method": "POST"}, "effect": {"type": "empty"}})
    second = first_sims(client, alpha, 2)[1]
    with pytest.raises(requests.exceptions.ConnectionError, match="without response"):
        requests.post(ORDER_URL, json=order_body(second, "x"), headers=alpha, timeout=5)
    assert order_count(client, alpha) == before  # dropped before the fake saw it


def test_spoiled_answers_keep_the_state_change(client, alpha):
    iccid = first_sims(client, alpha)[0]
    add(
        client,
        {
            "match": {"role": "mvne", "operation": "createProductOrder"},
            "effect": {"type": "malformed"},
        },
    )
    spoiled = client.post(ORDERS, json=order_body(iccid), headers=alpha)
    assert spoiled.status_code == 201
    with pytest.raises(ValueError):
        json.loads(spoiled.get_data())
    assert order_count(client, alpha) == 1
    client.delete(FAULTS)
    add(
        client,
        {
            "match": {"role": "mvne", "operation": "listProductOrders"},
            "effect": {"type": "wrongContentType", "status": 200},
        },
    )
    page = client.get(ORDERS, headers=alpha)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b"Service Unavailable" in page.get_data()


def test_explain_says_which_rules_match_and_why_others_do_not(client):
    add(client, {"id": "orders", "match": {"role": "mvne", "operation": "createProductOrder"},
                 "effect": {"type": "status", "status": 503}})  # fmt: skip
    add(client, {"id": "iccid", "match": {"role": "mvne", "fields": {"iccid": "8901"}},
                 "effect": {"type": "reset"}})  # fmt: skip
    add(client, {"id": "network", "match": {"role": "mno"}, "effect": {"type": "empty"}})
    response = client.get(
        "/__admin/faults/explain?role=mvne&operation=createProductOrder&field=iccid:8902"
    )
    verdicts = {v["id"]: v for v in conforms(response, "admin", "explainFaults")}
    assert verdicts["orders"]["matches"] is True and verdicts["orders"]["reasons"] == []
    assert verdicts["iccid"]["matches"] is False
    assert verdicts["iccid"]["reasons"] == ["field iccid is 8902, the rule wants 8901"]
    assert verdicts["network"]["reasons"] == ["role is mvne, the rule wants mno"]
    assert all(rule["matched"] == 0 for rule in client.get(FAULTS).get_json())  # counts nothing


def test_explain_reads_a_sample_given_as_method_and_path_as_the_request_would_be(client, alpha):
    add(client, {"id": "one-line", "match": {"role": "mvne", "operation": "getProduct"},
                 "effect": {"type": "status", "status": 503}})  # fmt: skip
    path = "/mvne/tmf-api/productInventoryManagement/v4/product/p-1"
    explained = client.get("/__admin/faults/explain", query_string={
        "role": "mvne", "method": "GET", "path": path})  # fmt: skip
    [verdict] = conforms(explained, "admin", "explainFaults")
    assert (verdict["matches"], verdict["reasons"]) == (True, [])
    fired = client.get(path, headers=alpha)
    assert fired.status_code == 503  # the request itself meets the rule, as explained
    other = client.get("/__admin/faults/explain", query_string={
        "role": "mvne", "method": "DELETE", "path": path})  # fmt: skip
    assert conforms(other, "admin", "explainFaults")[0]["matches"] is False


def test_rules_for_other_roles_cost_a_request_nothing(runtime):
    runtime.faults.rule_set()  # cached
    sample = Sample(role="mvne", operation="getProduct")
    assert runtime.faults.decide(sample, runtime.clock.now).fired == []


def test_a_request_tries_only_the_rules_of_its_role_and_operation():
    def rule(rule_id: str, match: dict, priority: int = 100) -> FaultRule:
        spec = {"match": match, "effect": {"type": "status", "status": 503}}
        return FaultRule(rule_id, priority, spec, "api", 0.0)

    rules = RuleSet(
        [
            rule("read", {"role": "mvne", "operation": ["getProduct", "listProducts"]}),
            rule("order", {"role": "mvne", "operation": "createProductOrder"}),
            rule("any-mvne", {"role": "mvne", "path": "/mvne/*"}, priority=1),
            rule("anywhere", {"partner": "alpha"}),
            rule("network", {"role": "mno", "operation": "getService"}),
        ]
    )
    tried = [found.id for found in rules.candidates("mvne", "getProduct")]
    assert tried == ["any-mvne", "anywhere", "read"]  # in priority order
    assert [found.id for found in rules.candidates("mvne", "createProductOrder")] == [
        "any-mvne",
        "anywhere",
        "order",
    ]
    assert [found.id for found in rules.candidates("care", "getTicket")] == ["anywhere"]
    assert len(rules.candidates("mvne")) == 4  # no operation named: every rule of the role

    by_id = {found.id: found for found in rules.rules}
    product = Sample(role="mvne", operation="getProduct", method="GET", path="/mvne/p/1")
    assert by_id["read"].matches(product) and by_id["any-mvne"].matches(product)
    assert not by_id["any-mvne"].matches(
        Sample(role="mvne", operation="getProduct", path="/mno/p/1")
    )
    assert not by_id["anywhere"].matches(product)  # no partner: not alpha
    assert by_id["anywhere"].matches(Sample(role="care", partner="alpha"))


# --- data faults: the fakes apply them inside their rules ----------------------------------


def test_iccid_unmapped_refuses_only_the_matched_iccid(client, alpha):
    first, second = first_sims(client, alpha, 2)
    add(
        client,
        {
            "match": {
                "role": "mvne",
                "operation": "createProductOrder",
                "fields": {"iccid": first},
            },
            "effect": {"type": "data", "fault": "ICCID_UNMAPPED"},
        },
    )
    refused = client.post(ORDERS, json=order_body(first, "a"), headers=alpha)
    assert refused.status_code == 422 and refused.get_json()["code"] == "ICCID_UNMAPPED"
    assert order_count(client, alpha) == 0
    assert client.post(ORDERS, json=order_body(second, "b"), headers=alpha).status_code == 201


def test_order_stuck_leaves_the_partner_order_in_progress(
    network, client, alpha, runtime, mno_headers
):
    add(
        client,
        {
            "match": {"role": "mno", "operation": "createServiceOrder"},
            "effect": {"type": "data", "fault": "ORDER_STUCK"},
        },
    )
    iccid = first_sims(client, alpha)[0]
    order = client.post(ORDERS, json=order_body(iccid), headers=alpha).get_json()
    settle(runtime)
    settle(runtime, 600)
    assert client.get(f"{ORDERS}/{order['id']}", headers=alpha).get_json()["state"] == "inProgress"
    network_orders = client.get(
        "/mno/tmf-api/serviceOrdering/v4/serviceOrder", headers=mno_headers
    ).get_json()
    assert [o["state"] for o in network_orders] == ["inProgress"]


def test_order_item_failed_makes_a_two_line_order_partial(network, client, alpha, runtime):
    first, second = first_sims(client, alpha, 2)
    add(
        client,
        {
            "match": {
                "role": "mno",
                "operation": "createServiceOrder",
                "fields": {"iccid": second},
            },
            "effect": {"type": "data", "fault": "ORDER_ITEM_FAILED"},
        },
    )
    body = order_body(first)
    body["productOrderItem"].append(
        {**body["productOrderItem"][0], "id": "2",
         "product": {"productCharacteristic": [{"name": "ICCID", "value": second}]}}
    )  # fmt: skip
    order = client.post(ORDERS, json=body, headers=alpha).get_json()
    settle(runtime)
    settle(runtime, 10)
    final = client.get(f"{ORDERS}/{order['id']}", headers=alpha).get_json()
    states = {item["id"]: item["state"] for item in final["productOrderItem"]}
    assert final["state"] == "partial" and states == {"1": "completed", "2": "failed"}


def test_duplicate_usage_reaches_charging_twice_and_is_charged_once(
    network, client, alpha, runtime
):
    product = activate(client, runtime, alpha)  # po-gb-payg: 5.00 GBP, 1p/MB
    add(
        client,
        {
            "match": {"role": "mno", "fields": {"usageType": "data"}},
            "effect": {"type": "data", "fault": "DUPLICATE_USAGE"},
        },
    )
    used = client.post(
        "/__admin/traffic", json={"msisdn": product["msisdn"], "usageType": "data", "quantity": 10}
    )
    assert used.status_code == 201, used.get_data(as_text=True)
    assert used.get_json()["remainingBalance"] == {"amount": 4.9, "units": "GBP"}
    runtime.journal.flush()
    charging = [
        e
        for e in client.get("/__admin/journal?role=mvne&limit=50").get_json()
        if e["operationId"] == "chargeUsage"
    ]
    assert len(charging) == 2  # the record arrived twice ...
    bucket = client.get(f"/mvne/tmf-api/prepayBalanceManagement/v4/bucket/{product['id']}",
                        headers=alpha).get_json()  # fmt: skip
    assert bucket["remainingValue"] == {"amount": 4.9, "units": "GBP"}  # ... and was charged once


def test_late_usage_is_dated_when_it_happened(network, client, alpha, runtime, mno_headers):
    product = activate(client, runtime, alpha)
    add(
        client,
        {
            "match": {"role": "mno", "fields": {"msisdn": product["msisdn"]}},
            "effect": {"type": "data", "fault": "LATE_USAGE", "delaySeconds": 7200},
        },
    )
    now = runtime.clock.now()
    used = client.post(
        "/__admin/traffic", json={"msisdn": product["msisdn"], "usageType": "sms", "quantity": 1}
    ).get_json()
    usage = client.get(
        f"/mno/tmf-api/usageManagement/v4/usage/{used['usageId']}", headers=mno_headers
    ).get_json()
    assert parse_iso(usage["usageDate"]) == pytest.approx(now - 7200)


def test_priority_decides_which_answering_rule_wins_and_latencies_add_up(client, alpha, runtime):
    add(client, {"id": "late-500", "priority": 50, "match": {"role": "mvne"},
                 "effect": {"type": "status", "status": 500}})  # fmt: skip
    add(client, {"id": "first-503", "priority": 1, "match": {"role": "mvne"},
                 "effect": {"type": "status", "status": 503}})  # fmt: skip
    assert client.get(ORDERS, headers=alpha).status_code == 503
    rules = {rule["id"]: rule for rule in client.get(FAULTS).get_json()}
    assert rules["first-503"]["fired"] == 1 and rules["late-500"]["matched"] == 0
    client.delete(FAULTS)
    add(client, {"match": {"role": "mno"}, "effect": {"type": "latency", "ms": 30}})
    add(client, {"match": {"role": "mno"}, "effect": {"type": "latency", "ms": 12}})
    decision = runtime.faults.decide(Sample(role="mno", operation="getService"), runtime.clock.now)
    assert decision.latency_ms == 42 and len(decision.fired) == 2
