"""Scenario packs: every shipped pack is valid and applies; a bad pack names its file and
line and changes nothing; the CLI drives faults and packs on a running stack."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import BASE_URL, ORDERS, conforms, first_sims, order_body, settle

from simulators.cli import FAULT_ID, SCENARIO_NAME, main
from simulators.core.faults import FaultRuleExists
from simulators.core.scenarios import ScenarioInvalid, apply_pack, pack_paths, parse_pack
from simulators.stack import ROLES

SHIPPED = [path.stem for path in pack_paths()]


def test_the_failure_points_have_packs():
    assert {"unmapped-iccid", "duplicate-usage", "mvne-timeouts", "orphan-order",
            "flaky-network", "partial-order", "callback-storm", "tax-jurisdiction-gap",
            "care-without-diagnostics", "mno-sla-gap"} <= set(SHIPPED)  # fmt: skip


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_pack_is_documented_and_applies(client, name):
    text = (pack_paths()[SHIPPED.index(name)]).read_text()
    for heading in ("What breaks:", "Which handoff:", "What a correct integration does:"):
        assert heading in text.split("\nname:")[0], f"{name}: top comment lacks {heading}"
    applied = conforms(client.post(f"/__admin/scenarios/{name}"), "admin", "applyScenario")
    assert applied["faults"] and applied["replaced"] == 0
    again = client.post(f"/__admin/scenarios/{name}").get_json()
    assert again["replaced"] == len(applied["faults"])  # replaced, not doubled
    rules = client.get("/__admin/faults").get_json()
    assert [rule["source"] for rule in rules] == [f"scenario:{name}"] * len(applied["faults"])


def test_the_pack_list_is_served(client):
    listed = conforms(client.get("/__admin/scenarios"), "admin", "listScenarios")
    assert [pack["name"] for pack in listed] == SHIPPED
    assert all(pack["breaks"] and pack["handoff"] for pack in listed)


def test_an_unknown_pack_is_a_404_naming_the_packs(client):
    missing = client.post("/__admin/scenarios/no-such-pack")
    assert missing.status_code == 404 and "unmapped-iccid" in missing.get_json()["detail"]


def test_unmapped_iccid_pack_end_to_end(client, alpha):
    client.post("/__admin/scenarios/unmapped-iccid")
    iccid = first_sims(client, alpha)[0]
    for attempt in ("a", "b"):
        refused = client.post(ORDERS, json=order_body(iccid, attempt), headers=alpha)
        assert refused.get_json()["code"] == "ICCID_UNMAPPED"
    assert client.post(ORDERS, json=order_body(iccid, "c"), headers=alpha).status_code == 201


def test_partial_order_pack_fails_the_first_line_of_every_order(network, client, alpha, runtime):
    client.post("/__admin/scenarios/partial-order")
    sims = first_sims(client, alpha, 4)
    finals = []
    for external_id, pair in (("one", sims[:2]), ("two", sims[2:])):
        body = order_body(pair[0], external_id)
        body["productOrderItem"].append(
            {**body["productOrderItem"][0], "id": "2",
             "product": {"productCharacteristic": [{"name": "ICCID", "value": pair[1]}]}}
        )  # fmt: skip
        order = client.post(ORDERS, json=body, headers=alpha).get_json()
        settle(runtime, 10)
        finals.append(client.get(f"{ORDERS}/{order['id']}", headers=alpha).get_json())
    for final in finals:
        states = {item["id"]: item["state"] for item in final["productOrderItem"]}
        assert final["state"] == "partial" and states == {"1": "failed", "2": "completed"}


def test_orphan_order_pack_end_to_end(network, client, alpha, runtime):
    client.post("/__admin/scenarios/orphan-order")
    order = client.post(ORDERS, json=order_body(first_sims(client, alpha)[0]), headers=alpha)
    settle(runtime)
    settle(runtime, 3600)
    current = client.get(f"{ORDERS}/{order.get_json()['id']}", headers=alpha).get_json()
    assert current["state"] == "inProgress"


def write(tmp_path, name, text):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


GOOD_HEAD = """name: {name}
title: t
breaks: b
handoff: h
remedy: r
"""


def test_a_bad_field_is_refused_with_file_and_line(runtime, tmp_path):
    path = write(tmp_path, "bad", GOOD_HEAD.format(name="bad") + """faults:
  - match: {role: mvne}
    effect: {type: latency, ms: 10}
  - match: {role: mvne}
    effect:
      type: status
      status: 9000
""")  # fmt: skip
    with pytest.raises(ScenarioInvalid) as refused:
        parse_pack(path, runtime.role_operations)
    assert refused.value.detail.startswith("bad.yaml:12: faults.1.effect.status") or (
        refused.value.detail.startswith("bad.yaml:12:")
    ), refused.value.detail
    assert "9000" in refused.value.detail


def test_a_rule_the_schema_allows_but_the_stack_cannot_apply_names_its_line(runtime, tmp_path):
    path = write(tmp_path, "typo", GOOD_HEAD.format(name="typo") + """faults:
  - match:
      role: mvne
      operation: createOrdr
    effect: {type: reset}
""")  # fmt: skip
    with pytest.raises(ScenarioInvalid) as refused:
        parse_pack(path, runtime.role_operations)
    assert refused.value.detail.startswith("typo.yaml:9: faults[0].match.operation")


def test_a_pack_changed_on_disk_is_read_again_and_each_read_is_its_own(runtime, tmp_path):
    rule = "faults:\n  - match: {role: mvne}\n    effect: {type: latency, ms: %d}\n"
    path = write(tmp_path, "edited", GOOD_HEAD.format(name="edited") + rule % 10)
    first = parse_pack(path, runtime.role_operations)
    first.document["faults"][0]["effect"]["ms"] = 99  # whoever applies it may change it
    assert parse_pack(path, runtime.role_operations).document["faults"][0]["effect"]["ms"] == 10
    write(tmp_path, "edited", GOOD_HEAD.format(name="edited") + rule % 2500)
    assert parse_pack(path, runtime.role_operations).document["faults"][0]["effect"]["ms"] == 2500
    write(tmp_path, "edited", GOOD_HEAD.format(name="edited") + rule % 9 + "  - nonsense\n")
    with pytest.raises(ScenarioInvalid, match=r"edited.yaml:"):
        parse_pack(path, runtime.role_operations)


def test_broken_yaml_and_a_wrong_name_are_refused(runtime, tmp_path):
    broken = write(tmp_path, "broken", "name: broken\nfaults: [\n")
    with pytest.raises(ScenarioInvalid, match=r"broken.yaml:3: not valid YAML"):
        parse_pack(broken, runtime.role_operations)
    renamed = write(tmp_path, "one", GOOD_HEAD.format(name="two"))
    with pytest.raises(ScenarioInvalid, match=r"one.yaml:1: name: 'two' must match"):
        parse_pack(renamed, runtime.role_operations)


def test_a_pack_that_fails_half_way_applies_nothing(client, runtime, tmp_path):
    client.post("/__admin/faults", json={"id": "taken", "effect": {"type": "reset"}})
    clock = 'clock: {set: "2030-01-01T00:00:00Z", frozen: true}\n'
    path = write(tmp_path, "clash", GOOD_HEAD.format(name="clash") + clock + """faults:
  - effect: {type: latency, ms: 5}
  - id: taken
    effect: {type: empty}
""")  # fmt: skip
    before = runtime.clock.now()
    with pytest.raises(FaultRuleExists):
        apply_pack(runtime, parse_pack(path, runtime.role_operations))
    assert [rule["id"] for rule in client.get("/__admin/faults").get_json()] == ["taken"]
    assert runtime.clock.now() == before


def test_cli_switches_faults_and_applies_packs(network, client, tmp_path):
    cli = CliRunner()
    added = cli.invoke(main, ["fault", "add", "--url", BASE_URL, "--id", "cli-503",
                              "--role", "mvne", "--operation", "listProductOrders",
                              "--effect", "status", "--set", "status=503",
                              "--set", "retryAfter=2", "--first", "1"])  # fmt: skip
    assert added.exit_code == 0, added.output
    rule = client.get("/__admin/faults/cli-503").get_json()
    assert rule["effect"] == {"type": "status", "status": 503, "retryAfter": 2}
    assert rule["dosage"] == {"firstN": 1}
    listed = cli.invoke(main, ["fault", "list", "--url", BASE_URL])
    assert listed.exit_code == 0 and "cli-503" in listed.output
    refused = cli.invoke(main, ["fault", "add", "--url", BASE_URL, "--role", "mvne",
                                "--operation", "nope", "--effect", "reset"])  # fmt: skip
    assert refused.exit_code != 0 and "match.operation" in refused.output
    applied = cli.invoke(main, ["scenario", "apply", "--url", BASE_URL, "flaky-network"])
    assert applied.exit_code == 0 and "3 fault rules on" in applied.output
    cleared = cli.invoke(main, ["fault", "clear", "--url", BASE_URL])
    assert cleared.exit_code == 0 and "4 fault rules off" in cleared.output
    rule_file = tmp_path / "rule.yaml"
    rule_file.write_text(
        "id: from-file\nmatch: {role: mno}\neffect: {type: latency, distribution: uniform,"
        " minMs: 1, maxMs: 2}\n"
    )
    from_file = cli.invoke(main, ["fault", "add", "--url", BASE_URL, "--file", str(rule_file)])
    assert from_file.exit_code == 0 and "from-file" in from_file.output
    assert client.get("/__admin/faults/from-file").get_json()["effect"]["maxMs"] == 2
    shown = cli.invoke(main, ["scenario", "list"])
    assert shown.exit_code == 0 and "orphan-order" in shown.output


def usage_error(result) -> str:
    """The error line of a refused command line: exit 2, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output.strip().splitlines()[-1]


def test_the_cli_checks_names_as_the_admin_contract_does():
    contract = yaml.safe_load((Path(__file__).parents[2] / "contracts/admin.yaml").read_text())
    apply = contract["paths"]["/scenarios/{scenarioName}"]["post"]["parameters"]
    assert SCENARIO_NAME == apply[0]["schema"]["pattern"]
    assert FAULT_ID == contract["components"]["parameters"]["faultId"]["schema"]["pattern"]


@pytest.mark.parametrize("name", ["../pyproject", "flaky-network/../../reset", "Flaky", "a?b"])
def test_cli_refuses_a_pack_name_before_calling_the_stack(network, name):
    applied = CliRunner().invoke(main, ["scenario", "apply", "--url", BASE_URL, name])
    error = usage_error(applied)
    assert error == (
        f"Error: Invalid value for 'NAME': {name!r} is not a scenario pack name: lowercase "
        "letters, digits and hyphens, at most 64 (`handoff scenario list` shows the packs)"
    )
    assert not network.calls


def test_up_refuses_a_pack_name_before_building_the_stack(tmp_path, monkeypatch):
    # In an empty directory: a stack built anyway writes its state there, not in the checkout.
    monkeypatch.chdir(tmp_path)
    for name in ("HANDOFF_DB", "HANDOFF_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    started = CliRunner().invoke(main, ["up", "--scenario", "../contracts/admin"])
    assert "is not a scenario pack name" in usage_error(started)
    assert not list(tmp_path.iterdir())


def test_cli_fault_clear_cannot_reach_another_rule_or_endpoint(network, client):
    client.post("/__admin/faults", json={"id": "cli-503", "effect": {"type": "reset"}})
    cli = CliRunner()
    for typed in ("cli-503#x", "cli-503?source=api", "../reset"):
        refused = cli.invoke(main, ["fault", "clear", "--url", BASE_URL, typed])
        assert f"{typed!r} is not a fault rule id" in usage_error(refused)
    assert not network.calls
    # A source is a query value, sent encoded: `api#` is not `api`.
    cleared = cli.invoke(main, ["fault", "clear", "--url", BASE_URL, "--source", "api#"])
    assert cleared.exit_code == 0 and "0 fault rules off" in cleared.output
    assert "source=api%23" in network.calls[-1].request.url
    assert client.get("/__admin/faults/cli-503").status_code == 200
    gone = cli.invoke(main, ["fault", "clear", "--url", BASE_URL, "cli-503"])
    assert gone.exit_code == 0 and "Fault cli-503 off." in gone.output
    assert client.get("/__admin/faults/cli-503").status_code == 404


def test_cli_fault_roles_are_every_role_the_fault_engine_accepts(network, client):
    cli = CliRunner()
    shown = cli.invoke(main, ["fault", "add", "--help"], terminal_width=200)
    assert f"[{'|'.join([*ROLES, 'callbacks'])}]" in shown.output
    added = cli.invoke(main, ["fault", "add", "--url", BASE_URL, "--id", "care-503",
                              "--role", "care", "--operation", "createTroubleTicket",
                              "--effect", "status", "--set", "status=503"])  # fmt: skip
    assert added.exit_code == 0, added.output
    assert client.get("/__admin/faults/care-503").get_json()["match"]["role"] == "care"
    calls = len(network.calls)
    refused = cli.invoke(main, ["fault", "add", "--url", BASE_URL, "--role", "bogus",
                                "--effect", "reset"])  # fmt: skip
    error = usage_error(refused)
    assert error.startswith("Error: Invalid value for '--role': 'bogus' is not one of")
    assert len(network.calls) == calls


def test_a_pack_onboards_its_partners_once_and_hands_out_their_keys(client, runtime, tmp_path):
    partner = """data:
  partners:
    - id: mvno-charlie
      name: Charlie Mobile
      agreement:
        offerings: [po-gb-payg]
        markets: [GB]
        capabilities: [SUBMIT_ORDER, ACTIVATE_SIM, QUERY_INVENTORY]
        simPoolSize: 5
faults: []
"""
    path = write(tmp_path, "newcomer", GOOD_HEAD.format(name="newcomer") + partner)
    applied = apply_pack(runtime, parse_pack(path, runtime.role_operations))
    [created] = applied["created"]["partners"]
    assert created["id"] == "mvno-charlie"
    sims = client.get(
        "/mvne/tmf-api/resourceInventoryManagement/v4/resource",
        headers={"X-API-Key": created["apiKey"]},
    )
    assert sims.status_code == 200 and len(sims.get_json()) == 5
    again = apply_pack(runtime, parse_pack(path, runtime.role_operations))
    assert "created" not in again
    assert client.get("/__admin/partners/mvno-charlie").get_json()["name"] == "Charlie Mobile"


def test_a_pack_whose_rule_id_is_taken_answers_409_and_applies_nothing(client):
    assert client.post("/__admin/scenarios/mvne-timeouts").status_code == 200
    taken = client.get("/__admin/faults").get_json()[0]["id"]
    client.delete("/__admin/faults")
    client.post("/__admin/faults", json={"id": taken, "effect": {"type": "reset"}})
    refused = client.post("/__admin/scenarios/mvne-timeouts")
    assert refused.status_code == 409
    assert conforms(refused, "admin", "applyScenario")["code"] == "FAULT_RULE_EXISTS"
    assert [rule["id"] for rule in client.get("/__admin/faults").get_json()] == [taken]
