"""The MNO's usage generator: active lines use the network on the simulated clock, each
record is charged at the MVNE and settled wholesale, and roaming keeps the visited network."""

from __future__ import annotations

from types import SimpleNamespace

from conftest import T0, activate, api_key, conforms, settle

from simulators.mno import usage

W = "/mno/v1/wholesale"
GENERATOR = "/__admin/mno/usage-generator"
ALPHA = {"X-API-Key": api_key("mvno-alpha-wholesale")}
HOUR = 3600.0
PROFILE = {
    "intervalSeconds": 3600,
    "perService": {"dataSessions": 1, "voiceCalls": 1, "smsMessages": 1},
    "dataMb": {"min": 5, "max": 5},
    "voiceMinutes": {"min": 2, "max": 2},
    "roaming": {"share": 1, "visitedMccs": ["208"]},
    "seed": 7,
}


def test_active_lines_use_the_network_every_interval_and_roaming_keeps_the_visited_mcc(
    network, client, runtime, alpha, mno_headers
):
    product = activate(client, runtime, alpha)
    switched = client.put(GENERATOR, json={"enabled": True, "profile": PROFILE})
    assert conforms(switched, "admin", "configureUsageGenerator")["nextWindow"]["end"] == (
        "2026-03-02T10:00:05.000Z"
    )
    settle(runtime, HOUR)

    state = conforms(client.get(GENERATOR), "admin", "getUsageGenerator")
    assert (state["runs"], state["records"]) == (1, 3)
    network_usage = client.get(
        f"/mno/tmf-api/usageManagement/v4/usage?msisdn={product['msisdn'].replace('+', '%2B')}",
        headers=mno_headers,
    ).get_json()
    assert sorted((u["usageType"], u["quantity"], u["visitedMcc"]) for u in network_usage) == [
        ("data", 5, "208"),
        ("sms", 1, "208"),
        ("voice", 2, "208"),
    ]
    assert {u["status"] for u in network_usage} == {"rated"}  # charged at the MVNE
    wholesale = client.get(f"{W}/usage", headers=ALPHA).get_json()
    assert sorted((u["usageType"], u["visitedMcc"]) for u in wholesale) == [
        ("data", "208"),
        ("sms", "208"),
        ("voice", "208"),
    ]
    with runtime.store.read() as conn:
        service_id = wholesale[0]["serviceId"]
        mcc, seen_at = usage.last_network(conn, service_id) or (None, 0.0)
    assert mcc == "208" and T0 < seen_at <= T0 + HOUR + 5

    client.put(GENERATOR, json={"enabled": False})
    settle(runtime, 2 * HOUR)
    assert client.get(GENERATOR).get_json()["runs"] == 1


def test_a_data_session_without_stop_is_never_charged_and_shows_as_missing_stop(
    network, client, runtime, alpha
):
    activate(client, runtime, alpha)
    rule = {"match": {"role": "mno", "fields": {"usageType": "data"}},
            "effect": {"type": "data", "fault": "MISSING_STOP"}}  # fmt: skip
    client.post("/__admin/faults", json=rule)
    client.put(GENERATOR, json={"enabled": True, "profile": {**PROFILE, "roaming": {"share": 0}}})
    settle(runtime, HOUR)
    client.put(GENERATOR, json={"enabled": False})

    charged = [u["usageType"] for u in client.get(f"{W}/usage", headers=ALPHA).get_json()]
    assert sorted(charged) == ["sms", "voice"]
    ran = client.post(f"{W}/reconciliation", json={"type": "usage"}, headers=ALPHA).get_json()
    assert ran["breaks"] == []  # the session may still stop
    settle(runtime, 24 * HOUR)
    ran = client.post(f"{W}/reconciliation", json={"type": "usage"}, headers=ALPHA).get_json()
    assert [b["code"] for b in ran["breaks"]] == ["MISSING_STOP"]
    assert ran["breaks"][0]["evidence"]["msisdn"]


def test_a_window_is_planned_the_same_way_every_time_from_its_seed():
    lines = [
        SimpleNamespace(id=f"svc-{n}", msisdn=f"+44770090010{n}", partner_id="p") for n in (1, 2)
    ]
    profile = {**usage.DEFAULT_PROFILE, "perService": {"dataSessions": 2.5, "voiceCalls": 0.5,
                                                       "smsMessages": 3}, "seed": 11}  # fmt: skip
    first = usage.plan_window(lines, profile, T0, T0 + HOUR)
    assert first == usage.plan_window(lines, profile, T0, T0 + HOUR)
    assert first != usage.plan_window(lines, {**profile, "seed": 12}, T0, T0 + HOUR)
    assert all(T0 <= planned.at < T0 + HOUR for planned in first)
    assert [p.at for p in first] == sorted(p.at for p in first)
    sessions = [p for p in first if p.usage_type == "data"]
    assert all(p.session_start is not None and p.session_start < p.at for p in sessions)
