"""The care BPO over HTTP: ticket lifecycle, SLA timers, tiers, diagnostics through the MVNE,
network tickets through the MVNE to the MNO, tenancy."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import activate, api_key, conforms, settle

TICKETS = "/care/tmf-api/troubleTicket/v4/troubleTicket"
REPORT = "/care/tmf-api/troubleTicket/v4/report"
MNO_TICKETS = "/mno/tmf-api/troubleTicket/v4/troubleTicket"
ALPHA = {"X-API-Key": api_key("mvno-alpha-care")}
BRAVO = {"X-API-Key": api_key("mvno-bravo-care")}


def ticket(client, headers=ALPHA, severity="1", product=None, **extra):
    body = {"description": "No data since this morning", "severity": severity,
            "ticketType": "complaint", **extra}  # fmt: skip
    if product:
        body["relatedEntity"] = [
            {"id": product, "role": "subscription", "@referredType": "Product"}
        ]
    return conforms(client.post(TICKETS, json=body, headers=headers), "care", "createTroubleTicket")


def get(client, ticket_id, headers=ALPHA):
    return conforms(
        client.get(f"{TICKETS}/{ticket_id}", headers=headers), "care", "getTroubleTicket"
    )


def patch(client, ticket_id, headers=ALPHA, **body):
    return client.patch(f"{TICKETS}/{ticket_id}", json=body, headers=headers)


def test_create_requires_description_severity_and_type(client):
    refused = client.post(TICKETS, json={"severity": "1", "ticketType": "x"}, headers=ALPHA)
    assert conforms(refused, "care", "createTroubleTicket")["field"] == "description"
    created = ticket(client)
    assert created["status"] == "acknowledged" and created["tier"] == "L1"
    assert created["statusChange"][0]["status"] == "acknowledged"


def test_lifecycle_and_refused_transitions(client):
    created = ticket(client)
    for status in ("inProgress", "resolved", "closed"):
        answer = patch(client, created["id"], status=status)
        assert conforms(answer, "care", "patchTroubleTicket")["status"] == status
    body = get(client, created["id"])
    assert [c["status"] for c in body["statusChange"]] == [
        "acknowledged", "inProgress", "resolved", "closed"]  # fmt: skip
    assert "resolutionDate" in body
    refused = conforms(
        patch(client, created["id"], status="inProgress"), "care", "patchTroubleTicket"
    )
    assert refused["status"] == 409 and refused["code"] == "INVALID_STATUS_TRANSITION"
    note = conforms(
        patch(client, created["id"], note=[{"text": "hi"}]), "care", "patchTroubleTicket"
    )
    assert note["code"] == "TICKET_FINAL"


@pytest.mark.parametrize(
    "path,refused",
    [
        ([], "resolved"),
        ([], "closed"),
        (["inProgress"], "acknowledged"),
        (["pending"], "resolved"),
        (["held"], "pending"),
        (["rejected"], "inProgress"),
        (["cancelled"], "acknowledged"),
        (["inProgress", "resolved"], "pending"),
    ],  # fmt: skip
)
def test_every_transition_outside_the_table_is_409(client, path, refused):
    created = ticket(client)
    for status in path:
        assert patch(client, created["id"], status=status).status_code == 200
    answer = conforms(patch(client, created["id"], status=refused), "care", "patchTroubleTicket")
    assert answer["code"] == "INVALID_STATUS_TRANSITION"
    assert get(client, created["id"])["status"] == (path[-1] if path else "acknowledged")


def test_a_missed_response_is_a_breach_listed_by_the_filter(client, runtime):
    late = ticket(client)
    answered = ticket(client)
    settle(runtime, 10 * 60)
    patch(client, answered["id"], note=[{"text": "Looking into it"}])
    settle(runtime, 6 * 60)
    body = get(client, late["id"])
    assert body["slaBreached"] and body["sla"]["breach"][0]["kind"] == "response"
    assert not get(client, answered["id"])["slaBreached"]
    listed = client.get(f"{TICKETS}?slaBreached=true", headers=ALPHA)
    assert [t["id"] for t in conforms(listed, "care", "listTroubleTickets")] == [late["id"]]


def test_the_sla_clock_pauses_while_pending_on_the_customer(client, runtime):
    created = ticket(client)
    settle(runtime, 10 * 60)
    # Setting pending is an agent update: the hourly update window starts, then stops.
    paused = conforms(patch(client, created["id"], status="pending"), "care", "patchTroubleTicket")
    assert paused["sla"]["paused"] and paused["sla"]["remainingSeconds"] == 3600
    settle(runtime, 3 * 3600)  # hours waiting on the customer: no breach, no escalation
    body = get(client, created["id"])
    assert not body["slaBreached"] and body["tier"] == "L1"
    resumed = conforms(
        patch(client, created["id"], status="inProgress"), "care", "patchTroubleTicket"
    )
    assert resumed["sla"]["pausedSeconds"] == 3 * 3600
    assert resumed["sla"]["nextDueDate"] == "2026-03-02T13:10:00.000Z"  # the hour left
    settle(runtime, 59 * 60)
    assert not get(client, created["id"])["slaBreached"]
    settle(runtime, 2 * 60)  # the hour left has now run out
    assert get(client, created["id"])["sla"]["breach"][0]["kind"] == "update"


def test_tiers_escalate_on_their_threshold(client, runtime):
    created = ticket(client)  # severity 1: 30 min per tier
    settle(runtime, 31 * 60)
    assert get(client, created["id"])["tier"] == "L2"
    settle(runtime, 30 * 60)
    body = get(client, created["id"])
    assert body["tier"] == "L3"
    assert [e["reason"] for e in body["escalation"]] == ["TIER_THRESHOLD"] * 2


def test_a_reopened_ticket_breaches_and_escalates_like_one_never_resolved(client, runtime):
    reopened = ticket(client)  # severity 1: updated hourly, 30 min per tier
    never_resolved = ticket(client)
    for created in (reopened, never_resolved):
        patch(client, created["id"], status="inProgress")
    patch(client, reopened["id"], status="resolved")
    settle(runtime, 3600)
    answer = conforms(
        patch(client, reopened["id"], status="inProgress"), "care", "patchTroubleTicket"
    )
    assert answer["sla"]["nextDueDate"] == "2026-03-02T11:00:00.000Z"  # an hour after reopening
    settle(runtime, 10 * 3600)
    body = get(client, reopened["id"])
    assert body["tier"] == "L3"
    assert [e["reason"] for e in body["escalation"]] == ["TIER_THRESHOLD"] * 2
    assert [b["kind"] for b in body["sla"]["breach"]] == ["update"] * 10
    assert body["sla"]["nextDueDate"] == "2026-03-02T21:00:00.000Z"
    other = get(client, never_resolved["id"])
    assert (other["tier"], len(other["escalation"])) == ("L3", 2)


def test_diagnostics_with_scope_become_a_note(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    created = ticket(client, product=product["id"])
    answer = client.post(f"{TICKETS}/{created['id']}/diagnostics", headers=ALPHA)
    body = conforms(answer, "care", "runTicketDiagnostics")
    assert body["tier"] == "L1" and body["sla"]["responded"]
    assert product["msisdn"] in body["note"][-1]["text"]
    assert "Network (mno)" in body["note"][-1]["text"]


def test_mvne_diagnostic_api_answers_per_contract_and_scope(client, runtime, alpha, network):
    product = activate(client, runtime, alpha)
    path = f"/mvne/diagnostics/v1/subscription/{product['id']}"
    seen = conforms(client.get(path, headers={"X-API-Key": api_key("care-agent-mvno-alpha")}),
                    "mvne", "getSubscriptionDiagnostics")  # fmt: skip
    assert seen["network"]["source"] == "mno" and seen["sim"]["iccid"] == product["iccid"]
    assert seen["provisioningHistory"]
    bravo = conforms(client.get(path, headers={"X-API-Key": api_key("care-agent-mvno-bravo")}),
                     "mvne", "getSubscriptionDiagnostics")  # fmt: skip
    assert bravo["code"] == "DIAGNOSTIC_SCOPE_MISSING"
    partner_key = client.get(path, headers=alpha)
    assert partner_key.status_code == 401  # a partner key is not a care-agent credential


def test_without_scope_the_ticket_escalates_and_the_delay_is_reported(client, runtime, bravo):
    product = activate(client, runtime, bravo, offering="po-us-talk")
    created = ticket(client, BRAVO, product=product["id"])
    settle(runtime, 5 * 60)
    answer = client.post(f"{TICKETS}/{created['id']}/diagnostics", headers=BRAVO)
    body = conforms(answer, "care", "runTicketDiagnostics")
    assert body["tier"] == "L2"
    assert body["escalation"][0]["reason"] == "DIAGNOSTICS_UNAVAILABLE"
    assert body["diagnosticsEscalationDelaySeconds"] == 5 * 60
    assert "DIAGNOSTIC_SCOPE_MISSING" in body["note"][-1]["text"]
    report = conforms(client.get(REPORT, headers=BRAVO), "care", "getTicketReport")
    assert report["diagnosticsEscalations"][0]["delaySeconds"] == 5 * 60
    assert (
        conforms(client.get(REPORT, headers=ALPHA), "care", "getTicketReport")["ticketCount"] == 0
    )


def test_the_data_fault_withdraws_the_scope(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    client.post("/__admin/faults", json={
        "match": {"role": "mvne", "operation": "getSubscriptionDiagnostics"},
        "effect": {"type": "data", "fault": "DIAGNOSTIC_SCOPE_MISSING"}})  # fmt: skip
    created = ticket(client, product=product["id"])
    body = client.post(f"{TICKETS}/{created['id']}/diagnostics", headers=ALPHA).get_json()
    assert body["tier"] == "L2" and body["escalation"][0]["reason"] == "DIAGNOSTICS_UNAVAILABLE"


def _to_l3(client, runtime, headers=ALPHA):
    created = ticket(client, headers)
    settle(runtime, 61 * 60)
    assert get(client, created["id"], headers)["tier"] == "L3"
    return created


def test_network_ticket_covered_progresses_at_the_mno(client, runtime, mno_headers):
    early = ticket(client)
    refused = client.post(f"{TICKETS}/{early['id']}/networkTicket", json={"category": "coverage"},
                          headers=ALPHA)  # fmt: skip
    assert conforms(refused, "care", "escalateToNetwork")["code"] == "TICKET_NOT_AT_L3"
    created = _to_l3(client, runtime)
    answer = client.post(f"{TICKETS}/{created['id']}/networkTicket", json={"category": "coverage"},
                         headers=ALPHA)  # fmt: skip
    body = conforms(answer, "care", "escalateToNetwork")
    assert body["relatedEntity"][-1]["role"] == "networkTicket"
    settle(runtime, 5 * 3600)
    listed = conforms(client.get(MNO_TICKETS, headers=mno_headers), "mno", "listTroubleTickets")
    assert [t["status"] for t in listed] == ["resolved"] and listed[0]["slaCovered"]
    assert [c["status"] for c in listed[0]["statusChange"]] == [
        "acknowledged", "inProgress", "resolved"]  # fmt: skip


@pytest.mark.parametrize("category,fault", [("billing-dispute", False), ("coverage", True)])
def test_uncovered_network_ticket_stalls_and_is_flagged(
    client, runtime, mno_headers, category, fault
):
    if fault:
        client.post("/__admin/faults", json={
            "match": {"role": "mno", "operation": "createTroubleTicket"},
            "effect": {"type": "data", "fault": "SLA_CATEGORY_NOT_COVERED"}})  # fmt: skip
    created = _to_l3(client, runtime)
    answer = client.post(f"{TICKETS}/{created['id']}/networkTicket", json={"category": category},
                         headers=ALPHA)  # fmt: skip
    assert answer.status_code == 200
    stalled = client.get(f"{MNO_TICKETS}?stalled=true", headers=mno_headers)
    assert conforms(stalled, "mno", "listTroubleTickets") == []
    settle(runtime, 25 * 3600)
    listed = conforms(client.get(f"{MNO_TICKETS}?stalled=true", headers=mno_headers), "mno",
                      "listTroubleTickets")  # fmt: skip
    assert len(listed) == 1 and listed[0]["status"] == "acknowledged"
    assert not listed[0]["slaCovered"]
    mvne_id = get(client, created["id"])["relatedEntity"][-1]["id"]
    seen = client.get(f"/mvne/diagnostics/v1/networkTicket/{mvne_id}",
                      headers={"X-API-Key": api_key("care-agent-mvno-alpha")})  # fmt: skip
    assert conforms(seen, "mvne", "getNetworkTicket")["stalled"] is True


def test_a_repeated_network_escalation_relates_the_network_ticket_once(app, client, runtime):
    created = _to_l3(client, runtime)
    path = f"{TICKETS}/{created['id']}/networkTicket"
    first = conforms(client.post(path, json={"category": "coverage"}, headers=ALPHA), "care",
                     "escalateToNetwork")  # fmt: skip

    def escalate(_: int):
        answer = app.test_client().post(path, json={"category": "coverage"}, headers=ALPHA)
        return answer.status_code, answer.get_json()

    again = conforms(client.post(path, json={"category": "coverage"}, headers=ALPHA), "care",
                     "escalateToNetwork")  # fmt: skip
    with ThreadPoolExecutor(max_workers=15) as pool:
        answers = list(pool.map(escalate, range(15)))
    assert {status for status, _ in answers} == {200}
    body = get(client, created["id"])
    related = [e for e in body["relatedEntity"] if e["role"] == "networkTicket"]
    assert related == [first["relatedEntity"][-1]]
    assert again == first and body["note"] == first["note"]


def test_two_partners_care_tickets_with_one_id_open_two_network_tickets(client, runtime):
    path = "/mvne/diagnostics/v1/networkTicket"
    opened = []
    for partner, category in (("mvno-alpha", "coverage"), ("mvno-bravo", "roaming")):
        body = {"externalId": "care-1001", "category": category, "severity": "2",
                "description": "No data in the whole street"}  # fmt: skip
        answer = client.post(path, json=body,
                             headers={"X-API-Key": api_key(f"care-agent-{partner}")})  # fmt: skip
        assert answer.status_code == 201, answer.get_json()
        opened.append(conforms(answer, "mvne", "createNetworkTicket"))
    alpha, bravo = opened
    assert alpha["mnoTicketId"] != bravo["mnoTicketId"]
    assert (alpha["category"], bravo["category"]) == ("coverage", "roaming")
    again = client.post(path, json={"externalId": "care-1001", "category": "coverage",
                                    "severity": "2", "description": "No data in the whole street"},
                        headers={"X-API-Key": api_key("care-agent-mvno-alpha")})  # fmt: skip
    assert conforms(again, "mvne", "createNetworkTicket")["mnoTicketId"] == alpha["mnoTicketId"]


def test_a_partner_never_sees_another_partners_ticket(client):
    created = ticket(client)
    path = f"{TICKETS}/{created['id']}"
    answers = (
        client.get(path, headers=BRAVO),
        patch(client, created["id"], BRAVO, status="inProgress"),
        client.post(f"{path}/diagnostics", headers=BRAVO),
    )
    for answer in answers:
        assert answer.status_code == 404
        assert answer.get_json()["code"] == "TROUBLE_TICKET_NOT_FOUND"
    assert conforms(client.get(TICKETS, headers=BRAVO), "care", "listTroubleTickets") == []
    assert get(client, created["id"])["status"] == "acknowledged"


def test_ticket_events_reach_the_hub_signed(client, hooks, runtime):
    hub = client.post("/care/tmf-api/troubleTicket/v4/hub", json={"callback": "http://hooks.partner.test/care"},
                      headers=ALPHA)  # fmt: skip
    assert conforms(hub, "care", "registerTicketListener")["secret"].startswith("whsec_")
    created = ticket(client)
    patch(client, created["id"], status="inProgress")
    settle(runtime)
    kinds = [event["eventType"] for event in hooks.events()]
    assert kinds == ["TroubleTicketCreateEvent", "TroubleTicketStatusChangeEvent"]
    assert all("webhook-signature" in item.headers for item in hooks.received)


def test_pack_care_without_diagnostics_end_to_end(client, runtime, alpha):
    product = activate(client, runtime, alpha)
    assert client.post("/__admin/scenarios/care-without-diagnostics").status_code == 200
    created = ticket(client, product=product["id"])
    settle(runtime, 60)
    body = conforms(client.post(f"{TICKETS}/{created['id']}/diagnostics", headers=ALPHA), "care",
                    "runTicketDiagnostics")  # fmt: skip
    assert body["tier"] == "L2" and body["diagnosticsEscalationDelaySeconds"] == 60
    report = conforms(client.get(REPORT, headers=ALPHA), "care", "getTicketReport")
    assert report["maxDiagnosticsEscalationDelaySeconds"] == 60


def test_pack_mno_sla_gap_end_to_end(client, runtime, mno_headers):
    assert client.post("/__admin/scenarios/mno-sla-gap").status_code == 200
    created = _to_l3(client, runtime)
    client.post(
        f"{TICKETS}/{created['id']}/networkTicket", json={"category": "roaming"}, headers=ALPHA
    )
    settle(runtime, 24 * 3600)
    listed = conforms(client.get(f"{MNO_TICKETS}?stalled=true", headers=mno_headers), "mno",
                      "listTroubleTickets")  # fmt: skip
    assert [(t["category"], t["status"]) for t in listed] == [("roaming", "acknowledged")]
