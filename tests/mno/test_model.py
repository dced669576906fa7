"""The host network's rules, called directly: service orders, the HLR record, traffic."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import T0, settle
from sqlalchemy import func, select

from simulators.core import audit
from simulators.core.identifiers import iccid_for, imsi_for, uk_fictitious_msisdn
from simulators.core.problems import DomainError
from simulators.core.runtime import Runtime
from simulators.core.tasks import task_table
from simulators.core.tenancy import MVNE_PLATFORM, authenticate, peer_api_key
from simulators.mno import errors, model

CLIENT = MVNE_PLATFORM
OTHER_CLIENT = "another-mvne"


def line(n: int) -> dict[str, str]:
    """Identifiers of the n-th test SIM: a valid IMSI, MSISDN and ICCID."""
    return {
        "IMSI": imsi_for(n),
        "MSISDN": uk_fictitious_msisdn(n),
        "ICCID": iccid_for("44", "10", n),
    }


def add(n: int, item_id: str = "1", **overrides: str) -> dict[str, Any]:
    values = {**line(n), **overrides}
    return {
        "id": item_id,
        "action": "add",
        "service": {"serviceCharacteristic": [{"name": k, "value": v} for k, v in values.items()]},
    }


def modify(service_id: str, barring: str, item_id: str = "1") -> dict[str, Any]:
    return {
        "id": item_id,
        "action": "modify",
        "service": {
            "id": service_id,
            "serviceCharacteristic": [{"name": "barring", "value": barring}],
        },
    }


def delete(service_id: str, item_id: str = "1") -> dict[str, Any]:
    return {"id": item_id, "action": "delete", "service": {"id": service_id}}


def order(
    runtime: Runtime,
    items: list[dict[str, Any]],
    external_id: str = "ext-1",
    client: str = CLIENT,
    correlation_id: str = "corr-1",
) -> tuple[model.ServiceOrder, bool]:
    with runtime.store.write() as conn:
        return model.create_service_order(
            conn,
            runtime.tasks,
            client_id=client,
            external_id=external_id,
            items=items,
            now=runtime.clock.now(conn),
            correlation_id=correlation_id,
        )


def fetch(runtime: Runtime, order_id: str, client: str = CLIENT) -> model.ServiceOrder:
    with runtime.store.read() as conn:
        return model.get_service_order(conn, client, order_id)


def service(runtime: Runtime, service_id: str, client: str = CLIENT) -> model.Service:
    with runtime.store.read() as conn:
        return model.get_service(conn, client, service_id)


def provisioned(
    runtime: Runtime, n: int, client: str = CLIENT, external_id: str | None = None
) -> model.Service:
    """A live service for test SIM n, provisioned through a completed order."""
    created, _ = order(runtime, [add(n)], external_id=external_id or f"setup-{n}", client=client)
    settle(runtime, runtime.settings.mno_provisioning_s)
    done = fetch(runtime, created.id, client)
    assert done.state == model.COMPLETED
    service_id = done.items[0].service_id
    assert service_id is not None
    return service(runtime, service_id, client)


def count_rows(runtime: Runtime, table: Any) -> int:
    with runtime.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- acceptance ----------------------------------------------------------------------------


def test_an_order_is_acknowledged_at_once_and_its_progress_scheduled(runtime: Runtime) -> None:
    created, is_new = order(runtime, [add(1)])

    assert is_new
    assert created.state == model.ACKNOWLEDGED
    assert created.order_date == T0
    assert [item.state for item in created.items] == [model.ACKNOWLEDGED]
    assert created.items[0].service_id is None
    with runtime.store.read() as conn:
        steps = conn.execute(
            select(task_table).where(task_table.c.kind == model.PROGRESS_SERVICE_ORDER)
        ).all()
    assert [(s.payload, s.correlation_id, s.due_at) for s in steps] == [
        ({"serviceOrderId": created.id}, "corr-1", T0)
    ]


@pytest.mark.parametrize(
    ("item", "error", "field"),
    [
        pytest.param(
            add(
                1,
                ICCID=iccid_for("44", "10", 1)[:-1]
                + str((int(iccid_for("44", "10", 1)[-1]) + 1) % 10),
            ),
            errors.InvalidServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic[2].value",
            id="iccid-check-digit",
        ),
        pytest.param(
            add(1, IMSI="000010000000001"),
            errors.InvalidServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic[0].value",
            id="imsi-unassigned-mcc",
        ),
        pytest.param(
            add(1, MSISDN="447700900001"),
            errors.InvalidServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic[1].value",
            id="msisdn-without-plus",
        ),
        pytest.param(
            {
                "id": "1",
                "action": "add",
                "service": {
                    "serviceCharacteristic": [
                        {"name": "IMSI", "value": imsi_for(1)},
                        {"name": "MSISDN", "value": uk_fictitious_msisdn(1)},
                    ]
                },
            },
            errors.MissingServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic",
            id="add-without-iccid",
        ),
        pytest.param(
            {**add(1), "service": {**add(1)["service"], "id": "svc-mine"}},
            errors.UnexpectedServiceId,
            "serviceOrderItem[0].service.id",
            id="add-naming-a-service",
        ),
        pytest.param(
            modify("svc-x", "sometimes"),
            errors.InvalidServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic[0].value",
            id="barring-value",
        ),
        pytest.param(
            {
                "id": "1",
                "action": "modify",
                "service": {
                    "id": "svc-x",
                    "serviceCharacteristic": [{"name": "IMSI", "value": imsi_for(1)}],
                },
            },
            errors.MissingServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic",
            id="new-imsi-without-its-iccid",
        ),
        pytest.param(
            {
                "id": "1",
                "action": "modify",
                "service": {"id": "svc-x", "serviceCharacteristic": []},
            },
            errors.MissingServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic",
            id="modify-changing-nothing",
        ),
        pytest.param(
            {
                "id": "1",
                "action": "modify",
                "service": {
                    "id": "svc-x",
                    "serviceCharacteristic": [{"name": "serviceType", "value": "iot"}],
                },
            },
            errors.InvalidServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic[0].name",
            id="modify-the-line-type",
        ),
        pytest.param(
            {"id": "1", "action": "modify", "service": {"id": "svc-x"}},
            errors.MissingServiceCharacteristic,
            "serviceOrderItem[0].service.serviceCharacteristic",
            id="modify-without-barring",
        ),
        pytest.param(
            {"id": "1", "action": "delete", "service": {}},
            errors.MissingServiceId,
            "serviceOrderItem[0].service.id",
            id="delete-without-service",
        ),
    ],
)
def test_an_invalid_item_is_refused_naming_the_field_and_nothing_is_stored(
    runtime: Runtime, item: dict[str, Any], error: type[DomainError], field: str
) -> None:
    with pytest.raises(error) as refused:
        order(runtime, [item])

    assert refused.value.status == 400
    assert refused.value.members["field"] == field
    assert count_rows(runtime, model.service_orders) == 0
    assert runtime.tasks.pending_count() == 0


def test_two_items_with_one_id_are_refused(runtime: Runtime) -> None:
    with pytest.raises(errors.DuplicateOrderItemId) as refused:
        order(runtime, [add(1, "a"), add(2, "a")])

    assert refused.value.status == 422
    assert refused.value.members["field"] == "serviceOrderItem[1].id"


def test_modify_or_delete_of_a_service_the_client_does_not_have_is_unprocessable(
    runtime: Runtime,
) -> None:
    theirs = provisioned(runtime, 7, client=OTHER_CLIENT)

    for item in (modify(theirs.id, "all"), delete(theirs.id), delete("svc-unknown")):
        with pytest.raises(errors.UnknownService) as refused:
            order(runtime, [item], external_id=f"ext-{item['action']}-{item['service']['id']}")
        assert refused.value.status == 422
        assert refused.value.members["field"] == "serviceOrderItem[0].service.id"
    assert service(runtime, theirs.id, OTHER_CLIENT).barring == "none"


def test_a_terminated_service_cannot_be_ordered_again(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)
    order(runtime, [delete(line_1.id)], external_id="ext-delete")
    settle(runtime, 5)

    with pytest.raises(errors.ServiceTerminated) as refused:
        order(runtime, [modify(line_1.id, "all")], external_id="ext-modify")

    assert refused.value.status == 409


# --- lifecycle -----------------------------------------------------------------------------


def test_an_order_completes_after_the_provisioning_time_not_before(runtime: Runtime) -> None:
    assert runtime.settings.mno_provisioning_s == 2.0
    created, _ = order(runtime, [add(1)])

    settle(runtime)
    started = fetch(runtime, created.id)
    assert started.state == model.IN_PROGRESS
    assert started.start_date == T0
    assert [item.state for item in started.items] == [model.IN_PROGRESS]

    settle(runtime, 1.5)
    assert fetch(runtime, created.id).state == model.IN_PROGRESS
    assert count_rows(runtime, model.services) == 0

    settle(runtime, 0.5)
    done = fetch(runtime, created.id)
    assert done.state == model.COMPLETED
    assert done.completion_date == T0 + 2
    assert [item.state for item in done.items] == [model.COMPLETED]
    assert runtime.tasks.pending_count() == 0


def test_the_provisioning_time_runs_from_the_order_date(runtime: Runtime) -> None:
    created, _ = order(runtime, [add(1)])

    # No worker ran while the clock moved (the stack was down): one settle catches up.
    runtime.clock.advance(3)
    runtime.settle()

    done = fetch(runtime, created.id)
    assert done.state == model.COMPLETED
    assert done.start_date == done.completion_date == T0 + 3


def test_add_creates_the_hlr_record_active_unbarred_and_attached(runtime: Runtime) -> None:
    created, _ = order(runtime, [add(1)])
    settle(runtime, 2)

    service_id = fetch(runtime, created.id).items[0].service_id
    assert service_id is not None
    record = service(runtime, service_id)
    assert (record.imsi, record.msisdn, record.iccid) == (
        imsi_for(1),
        uk_fictitious_msisdn(1),
        iccid_for("44", "10", 1),
    )
    assert record.state == model.SERVICE_ACTIVE
    assert record.barring == "none"
    assert record.attach_state == model.ATTACHED
    assert record.last_attach_time == T0 + 2
    assert record.start_date == T0 + 2
    assert record.end_date is None


def test_modify_sets_the_barring(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)

    created, _ = order(runtime, [modify(line_1.id, "outgoing")], external_id="ext-bar")
    settle(runtime, 2)

    assert fetch(runtime, created.id).state == model.COMPLETED
    after = service(runtime, line_1.id)
    assert after.barring == "outgoing"
    assert after.state == model.SERVICE_ACTIVE


def change_sim(service_id: str, n: int, barring: str | None = None) -> dict[str, Any]:
    """A modify item moving the service to test SIM n (its ICCID and IMSI)."""
    values = {"ICCID": line(n)["ICCID"], "IMSI": line(n)["IMSI"]}
    if barring is not None:
        values["barring"] = barring
    return {
        "id": "1",
        "action": "modify",
        "service": {
            "id": service_id,
            "serviceCharacteristic": [{"name": k, "value": v} for k, v in values.items()],
        },
    }


def sim_change_rows(runtime: Runtime) -> list[tuple[str, str, str, str, float]]:
    with runtime.store.read() as conn:
        rows = conn.execute(select(model.sim_changes).order_by(model.sim_changes.c.pk)).all()
    return [(r.msisdn, r.iccid_before, r.iccid, r.imsi, r.changed_at) for r in rows]


def test_a_sim_change_moves_the_number_to_the_new_sim_and_records_when(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)
    settle(runtime, 3600)

    created, _ = order(runtime, [change_sim(line_1.id, 5, barring="outgoing")], "ext-swap")
    settle(runtime, 2)

    assert fetch(runtime, created.id).state == model.COMPLETED
    after = service(runtime, line_1.id)
    assert (after.msisdn, after.iccid, after.imsi) == (
        line(1)["MSISDN"],
        line(5)["ICCID"],
        line(5)["IMSI"],
    )
    assert after.barring == "outgoing"  # one order, both changes
    changed_at = runtime.clock.now()
    assert sim_change_rows(runtime) == [
        (line(1)["MSISDN"], line(1)["ICCID"], line(5)["ICCID"], line(5)["IMSI"], changed_at)
    ]
    with runtime.store.read() as conn:
        assert model.latest_sim_change(conn, after) == changed_at
        actions = [r["action"] for r in audit.query(conn, entity_id=line_1.id)[1]]
    assert "service.simChanged" in actions
    # The old SIM is free again: the HLR holds one live record per ICCID and IMSI.
    old_sim = {"ICCID": line(1)["ICCID"], "IMSI": line(1)["IMSI"]}
    reused, _ = order(runtime, [add(9, **old_sim)], "reuse-old-sim")
    settle(runtime, 2)
    assert fetch(runtime, reused.id).state == model.COMPLETED


def test_until_a_sim_change_the_latest_change_is_the_activation(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)

    with runtime.store.read() as conn:
        assert model.latest_sim_change(conn, line_1) == line_1.start_date


@pytest.mark.parametrize("held", ["ICCID", "IMSI"])
def test_a_sim_change_to_another_lines_sim_fails_and_changes_nothing(
    runtime: Runtime, held: str
) -> None:
    line_1 = provisioned(runtime, 1)
    provisioned(runtime, 2, client=OTHER_CLIENT)
    clash = change_sim(line_1.id, 3)
    for characteristic in clash["service"]["serviceCharacteristic"]:
        if characteristic["name"] == held:
            characteristic["value"] = line(2)[held]

    created, _ = order(runtime, [clash], "ext-clash")
    settle(runtime, 2)

    failed = fetch(runtime, created.id)
    assert (failed.state, failed.items[0].error_code) == (model.FAILED, f"{held}_IN_USE")
    assert service(runtime, line_1.id).iccid == line(1)["ICCID"]
    assert sim_change_rows(runtime) == []


def test_a_change_to_the_sim_the_line_already_has_records_no_swap(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)

    created, _ = order(runtime, [change_sim(line_1.id, 1)], "ext-same")
    settle(runtime, 2)

    assert fetch(runtime, created.id).state == model.COMPLETED
    assert sim_change_rows(runtime) == []


def test_an_order_for_an_mvno_attributes_its_services_and_is_part_of_its_identity(
    runtime: Runtime,
) -> None:
    with runtime.store.write() as conn:
        created, _ = model.create_service_order(
            conn,
            runtime.tasks,
            client_id=CLIENT,
            external_id="for-alpha",
            items=[add(1, serviceType=model.SERVICE_TYPE_IOT)],
            now=runtime.clock.now(conn),
            correlation_id=None,
            mvno_id="mvno-alpha",
        )
    settle(runtime, 2)
    done = fetch(runtime, created.id)
    assert done.mvno_id == "mvno-alpha"
    assert done.items[0].service_id is not None
    added = service(runtime, done.items[0].service_id)
    assert (added.mvno_id, added.service_type) == ("mvno-alpha", model.SERVICE_TYPE_IOT)
    assert added.name.startswith("IoT line")
    # The same reference for another MVNO is another order: refused, not replayed.
    with pytest.raises(errors.ExternalIdInUse), runtime.store.write() as conn:
        model.create_service_order(
            conn,
            runtime.tasks,
            client_id=CLIENT,
            external_id="for-alpha",
            items=[add(1, serviceType=model.SERVICE_TYPE_IOT)],
            now=runtime.clock.now(conn),
            correlation_id=None,
            mvno_id="mvno-bravo",
        )


def test_delete_terminates_and_detaches_and_frees_the_identifiers(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)

    order(runtime, [delete(line_1.id)], external_id="ext-delete")
    settle(runtime, 2)

    after = service(runtime, line_1.id)
    assert after.state == model.SERVICE_TERMINATED
    assert after.attach_state == model.DETACHED
    assert after.end_date == runtime.clock.now()
    # The terminated record is history: the same SIM can be provisioned again.
    again = provisioned(runtime, 1, external_id="setup-again")
    assert again.id != line_1.id
    assert again.state == model.SERVICE_ACTIVE


@pytest.mark.parametrize("held", ["IMSI", "MSISDN", "ICCID"])
def test_an_identifier_held_by_a_live_service_fails_the_order_without_naming_the_holder(
    runtime: Runtime, held: str
) -> None:
    holder = provisioned(runtime, 1, client=OTHER_CLIENT)
    clash = add(2, **{held: line(1)[held]})

    created, _ = order(runtime, [clash])
    settle(runtime, 2)

    failed = fetch(runtime, created.id)
    assert failed.state == model.FAILED
    assert failed.items[0].state == model.FAILED
    assert failed.items[0].error_code == f"{held}_IN_USE"
    reason = errors.item_failure_reason(failed.items[0].error_code)
    assert held in reason
    assert holder.id not in reason and OTHER_CLIENT not in reason
    with runtime.store.read() as conn:
        assert model.list_services(conn, CLIENT)[0] == 0


def test_some_items_failing_makes_the_order_partial(runtime: Runtime) -> None:
    provisioned(runtime, 1)

    created, _ = order(runtime, [add(2, "ok"), add(3, "clash", MSISDN=line(1)["MSISDN"])])
    settle(runtime, 2)

    partial = fetch(runtime, created.id)
    assert partial.state == model.PARTIAL
    assert [(i.item_id, i.state, i.error_code) for i in partial.items] == [
        ("ok", model.COMPLETED, None),
        ("clash", model.FAILED, "MSISDN_IN_USE"),
    ]
    assert partial.items[0].service_id is not None
    assert [f.item_id for f in partial.failed_items] == ["clash"]


def test_two_adds_of_one_sim_in_one_order_are_partial(runtime: Runtime) -> None:
    created, _ = order(runtime, [add(1, "first"), add(1, "second")])
    settle(runtime, 2)

    assert fetch(runtime, created.id).state == model.PARTIAL


# --- idempotency and scoping ----------------------------------------------------------------


def test_the_same_external_id_answers_the_first_order_and_stores_one(runtime: Runtime) -> None:
    first, first_new = order(runtime, [add(1)])
    again, again_new = order(runtime, [add(1)])

    assert (first_new, again_new) == (True, False)
    assert again.id == first.id
    assert count_rows(runtime, model.service_orders) == 1
    assert runtime.tasks.pending_count() == 1


def test_the_same_external_id_for_another_order_is_a_conflict(runtime: Runtime) -> None:
    first, _ = order(runtime, [add(1)])

    with pytest.raises(errors.ExternalIdInUse) as refused:
        order(runtime, [add(2)])

    assert refused.value.status == 409
    assert refused.value.members["serviceOrderId"] == first.id
    assert count_rows(runtime, model.service_orders) == 1


def test_external_ids_are_unique_per_client_only(runtime: Runtime) -> None:
    mine, _ = order(runtime, [add(1)])
    theirs, is_new = order(runtime, [add(2)], client=OTHER_CLIENT)

    assert is_new
    assert theirs.id != mine.id


def test_a_client_never_sees_another_clients_orders_services_or_usage(runtime: Runtime) -> None:
    theirs = provisioned(runtime, 1, client=OTHER_CLIENT)
    with runtime.store.write() as conn:
        usage = model.record_traffic(
            conn, msisdn=theirs.msisdn, usage_type="data", quantity=1, now=T0, correlation_id=None
        )
    with runtime.store.read() as conn:
        order_id = model.list_service_orders(conn, OTHER_CLIENT)[1][0].id

        with pytest.raises(errors.ServiceOrderNotFound):
            model.get_service_order(conn, CLIENT, order_id)
        with pytest.raises(errors.ServiceNotFound):
            model.get_service(conn, CLIENT, theirs.id)
        with pytest.raises(errors.UsageNotFound):
            model.get_usage(conn, CLIENT, usage.id)
        assert model.list_service_orders(conn, CLIENT) == (0, [])
        assert model.list_services(conn, CLIENT, msisdn=theirs.msisdn) == (0, [])
        assert model.list_usage(conn, CLIENT) == (0, [])
        assert model.get_usage(conn, OTHER_CLIENT, usage.id).service_id == theirs.id


def test_lists_filter_and_page_oldest_first(runtime: Runtime) -> None:
    ids = [order(runtime, [add(n)], external_id=f"ext-{n}")[0].id for n in range(5)]
    settle(runtime, 2)
    order(runtime, [add(9)], external_id="ext-late")

    with runtime.store.read() as conn:
        total, page = model.list_service_orders(conn, CLIENT, offset=1, limit=2)
        assert total == 6
        assert [o.id for o in page] == ids[1:3]
        assert model.list_service_orders(conn, CLIENT, state=model.COMPLETED)[0] == 5
        assert model.list_service_orders(conn, CLIENT, external_id="ext-3")[1][0].id == ids[3]
        total, found = model.list_services(conn, CLIENT, imsi=imsi_for(4))
        assert total == 1 and found[0].msisdn == uk_fictitious_msisdn(4)


# --- audit ---------------------------------------------------------------------------------


def test_every_state_change_is_audited_under_the_creating_correlation_id(runtime: Runtime) -> None:
    created, _ = order(runtime, [add(1)], correlation_id="corr-activation")
    settle(runtime, 2)

    with runtime.store.read() as conn:
        _, rows = audit.query(conn, correlation_id="corr-activation")
    assert [(r["actor"], r["action"], r["partner_id"]) for r in rows] == [
        ("peer:mvne", "serviceOrder.acknowledged", CLIENT),
        ("system", "serviceOrder.inProgress", CLIENT),
        ("system", "service.activated", CLIENT),
        ("system", "serviceOrder.completed", CLIENT),
    ]
    assert rows[0]["entity_id"] == created.id


# --- traffic --------------------------------------------------------------------------------


def never_charge(usage: model.Usage) -> model.ChargingOutcome:
    raise AssertionError(f"charging was asked about {usage.id}")


def traffic(
    runtime: Runtime,
    msisdn: str,
    usage_type: str = "data",
    quantity: int = 10,
    charge: Any = never_charge,
) -> model.TrafficResult:
    return model.simulate_traffic(
        runtime,
        msisdn=msisdn,
        usage_type=usage_type,
        quantity=quantity,
        correlation_id="t-1",
        charge=charge,
    )


def test_fully_barred_traffic_is_refused_by_the_network_without_charging(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)
    order(runtime, [modify(line_1.id, "all")], external_id="ext-bar")
    settle(runtime, 2)

    result = traffic(runtime, line_1.msisdn)

    assert result.charging is None
    assert result.usage.status == model.USAGE_REJECTED
    assert result.usage.granted_quantity == 0
    assert result.barred and result.reason == "BARRED"


def test_outgoing_barring_refuses_calls_and_sms_but_not_data(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)
    order(runtime, [modify(line_1.id, "outgoing")], external_id="ext-bar")
    settle(runtime, 2)

    for usage_type in ("voice", "sms"):
        assert traffic(runtime, line_1.msisdn, usage_type).usage.status == model.USAGE_REJECTED
    rated = model.ChargingOutcome(status="rated", granted_quantity=10)
    assert traffic(runtime, line_1.msisdn, "data", charge=lambda u: rated).usage.status == "rated"


def test_traffic_on_an_unknown_or_terminated_line_is_refused(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)
    order(runtime, [delete(line_1.id)], external_id="ext-delete")
    settle(runtime, 2)

    with pytest.raises(errors.ServiceNotFound) as unknown:
        traffic(runtime, uk_fictitious_msisdn(500))
    with pytest.raises(errors.ServiceNotActive) as ended:
        traffic(runtime, line_1.msisdn)

    assert (unknown.value.status, unknown.value.code) == (404, "SERVICE_NOT_FOUND")
    assert ended.value.status == 409
    assert count_rows(runtime, model.usages) == 0


def test_charged_traffic_records_the_rating_outcome(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)
    asked: list[model.Usage] = []

    def charge(usage: model.Usage) -> model.ChargingOutcome:
        asked.append(usage)
        return model.ChargingOutcome(
            status="rated", granted_quantity=4, barred=True, reason="BALANCE_EXHAUSTED"
        )

    result = traffic(runtime, line_1.msisdn, "voice", quantity=6, charge=charge)

    # Charging saw the usage as the network recorded it, already committed.
    assert [(u.status, u.unit, u.quantity, u.usage_date) for u in asked] == [
        ("received", "min", 6, T0 + 2)
    ]
    with runtime.store.read() as conn:
        stored = model.get_usage(conn, CLIENT, result.usage.id)
    assert (stored.status, stored.granted_quantity, stored.service_id) == ("rated", 4, line_1.id)
    assert result.barred and result.reason == "BALANCE_EXHAUSTED"


def test_traffic_stays_received_when_charging_is_unavailable(runtime: Runtime) -> None:
    line_1 = provisioned(runtime, 1)

    def unavailable(usage: model.Usage) -> model.ChargingOutcome:
        raise errors.ChargingUnavailable("down")

    with pytest.raises(errors.ChargingUnavailable):
        traffic(runtime, line_1.msisdn, charge=unavailable)

    with runtime.store.read() as conn:
        total, found = model.list_usage(conn, CLIENT, msisdn=line_1.msisdn)
    assert total == 1
    assert (found[0].status, found[0].granted_quantity) == ("received", None)


# --- reference data ----------------------------------------------------------------------


def test_the_seeder_adds_the_mvne_platform_once_with_its_peer_key(runtime: Runtime) -> None:
    with runtime.store.write() as conn:
        model.seed_reference_data(runtime, conn, 1)
        model.seed_reference_data(runtime, conn, 2)
        client = authenticate(conn, "mno", peer_api_key(runtime.settings, MVNE_PLATFORM))

    assert client.id == MVNE_PLATFORM
    assert sorted(client.capabilities) == [
        "NETWORK_TICKETS",
        "PROVISION_SERVICES",
        "QUERY_SERVICES",
        "QUERY_USAGE",
    ]
