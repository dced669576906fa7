"""The control plane: who may call it, health, reset, seed, clock, journal and audit trail."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ORDERS,
    PRODUCTS,
    SECRET,
    SIMS,
    T0,
    activate,
    conforms,
    first_sims,
    order_body,
)
from flask import Flask
from flask.testing import FlaskClient

from simulators.core.admin import current_seed, reset_state
from simulators.core.config import Settings
from simulators.core.journal import Journal
from simulators.core.runtime import Runtime
from simulators.core.store import Store
from simulators.stack import ROLES, create_app, runtime_of

OUTSIDER = {"REMOTE_ADDR": "203.0.113.5"}
ORDER_HUB = "/mvne/tmf-api/productOrderingManagement/v4/hub"
MNO_SERVICES = "/mno/tmf-api/serviceInventory/v4/service"


def assert_forbidden(response: Any) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "ADMIN_FORBIDDEN"


def sim_pool(client: FlaskClient, headers: dict[str, str]) -> list[str]:
    response = client.get(f"{SIMS}?limit=1000", headers=headers)
    assert response.status_code == 200
    return [sim["iccid"] for sim in response.get_json()]


def orders_of(client: FlaskClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get(ORDERS, headers=headers)
    assert response.status_code == 200
    return list(response.get_json())


# --- who may call -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/__admin/health", None),
        ("POST", "/__admin/reset", None),
        ("POST", "/__admin/seed", {"seed": 1}),
        ("GET", "/__admin/clock", None),
        ("POST", "/__admin/clock/advance", {"seconds": 3600}),
        ("GET", "/__admin/journal", None),
        ("GET", "/__admin/audit", None),
        ("GET", "/__admin/outbox", None),
        ("GET", "/__admin/partners", None),
    ],
)
def test_the_control_plane_refuses_callers_off_loopback(
    client: FlaskClient, runtime: Runtime, method: str, path: str, body: Any
) -> None:
    response = client.open(path, method=method, json=body, environ_base=OUTSIDER)
    assert_forbidden(response)
    assert runtime.clock.now() == T0, "a refused call changed the clock"


def test_a_refused_reset_changes_nothing(client: FlaskClient, alpha: dict[str, str]) -> None:
    iccid = first_sims(client, alpha)[0]
    assert client.post(ORDERS, json=order_body(iccid), headers=alpha).status_code == 201
    assert_forbidden(client.post("/__admin/reset", environ_base=OUTSIDER))
    assert len(orders_of(client, alpha)) == 1


def test_forwarded_headers_do_not_make_a_caller_loopback(client: FlaskClient) -> None:
    response = client.get(
        "/__admin/health",
        headers={"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"},
        environ_base=OUTSIDER,
    )
    assert_forbidden(response)


def test_without_a_configured_token_no_token_opens_the_control_plane(
    client: FlaskClient,
) -> None:
    for token in ("", "s3cret", "anything"):
        response = client.get(
            "/__admin/health", headers={"X-Admin-Token": token}, environ_base=OUTSIDER
        )
        assert_forbidden(response)


def test_ipv6_loopback_is_loopback(client: FlaskClient) -> None:
    response = client.get("/__admin/health", environ_base={"REMOTE_ADDR": "::1"})
    assert response.status_code == 200


@pytest.fixture
def token_app(tmp_path: Path) -> Iterator[Flask]:
    """A stack of its own (own SQLite file) configured with HANDOFF_ADMIN_TOKEN."""
    app = create_app(
        Settings(
            db_url=f"sqlite:///{tmp_path / 'token.db'}",
            secret_key=SECRET,
            admin_token="s3cret",
            background=False,
        )
    )
    yield app
    runtime_of(app).close()


def test_the_admin_token_opens_the_control_plane_off_loopback(token_app: Flask) -> None:
    client = token_app.test_client()
    opened = client.get(
        "/__admin/health", headers={"X-Admin-Token": "s3cret"}, environ_base=OUTSIDER
    )
    assert opened.status_code == 200
    assert opened.get_json()["status"] == "ok"
    advanced = client.post(
        "/__admin/clock/advance",
        json={"seconds": 60},
        headers={"X-Admin-Token": "s3cret"},
        environ_base=OUTSIDER,
    )
    assert advanced.status_code == 200

    for headers in (
        {},
        {"X-Admin-Token": "wrong"},
        {"X-Admin-Token": "s3cret "},
        {"X-Admin-Token": ""},
    ):
        assert_forbidden(client.get("/__admin/health", headers=headers, environ_base=OUTSIDER))
    # Loopback needs no token even when one is configured.
    assert client.get("/__admin/health").status_code == 200


# --- health ---------------------------------------------------------------------------------


def test_health_names_roles_store_and_clock(client: FlaskClient, runtime: Runtime) -> None:
    response = client.get("/__admin/health")
    health = conforms(response, "admin", "getHealth")
    assert health["status"] == "ok"
    assert set(health["roles"]) == {
        "mno",
        "mvne",
        "tax",
        "payments",
        "billing",
        "fulfillment",
        "care",
    }
    assert health["store"] == runtime.store.url.get_backend_name()
    assert health["clock"]["now"] == "2026-03-02T09:00:00.000Z"
    assert health["clock"]["frozen"] is True


# --- reset ----------------------------------------------------------------------------------


def test_reset_returns_every_role_to_its_seeded_state(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    pool = sim_pool(client, alpha)
    activate(client, runtime, alpha)
    hub = client.post(ORDER_HUB, json={"callback": "http://hooks.partner.test/a"}, headers=alpha)
    assert hub.status_code == 201

    with runtime.store.read() as conn:
        seed = current_seed(conn, runtime.settings.faker_seed)

    response = client.post("/__admin/reset")
    answer = conforms(response, "admin", "resetState")
    assert set(answer["reset"]) == {"core", *ROLES}
    assert answer["seed"] == seed, "a reset keeps the seed last set"

    assert orders_of(client, alpha) == []
    assert client.get(PRODUCTS, headers=alpha).get_json() == []
    assert sim_pool(client, alpha) == pool
    assert client.get(f"{SIMS}?resourceStatus=available&limit=1000", headers=alpha).headers[
        "X-Total-Count"
    ] == str(len(pool))
    assert client.get(f"{ORDER_HUB}/{hub.get_json()['id']}", headers=alpha).status_code == 404
    assert client.get("/__admin/outbox").get_json() == []
    partners = {partner["id"] for partner in client.get("/__admin/partners").get_json()}
    assert {"mvno-alpha", "mvno-bravo"} <= partners


def test_reset_of_the_mvne_clears_orders_and_subscriptions_but_keeps_partners(
    client: FlaskClient,
    runtime: Runtime,
    alpha: dict[str, str],
    mno_headers: dict[str, str],
) -> None:
    onboarded = client.post(
        "/__admin/partners",
        json={
            "id": "mvno-charlie",
            "name": "Charlie Telecom",
            "agreement": {
                "offerings": ["po-gb-payg"],
                "markets": ["GB"],
                "capabilities": ["SUBMIT_ORDER", "ACTIVATE_SIM", "QUERY_INVENTORY"],
                "simPoolSize": 5,
            },
        },
    )
    assert onboarded.status_code == 201, onboarded.get_data(as_text=True)
    charlie = {"X-API-Key": onboarded.get_json()["apiKey"]}
    product = activate(client, runtime, alpha)
    hub = client.post(ORDER_HUB, json={"callback": "http://hooks.partner.test/a"}, headers=alpha)
    services_before = client.get(MNO_SERVICES, headers=mno_headers).get_json()
    assert len(services_before) == 1

    response = client.post("/__admin/reset", json={"role": "mvne"})
    assert conforms(response, "admin", "resetState")["reset"] == ["mvne"]

    assert orders_of(client, alpha) == []
    assert client.get(PRODUCTS, headers=alpha).get_json() == []
    assert client.get(f"{PRODUCTS}/{product['id']}", headers=alpha).status_code == 404
    assert client.get(f"{ORDER_HUB}/{hub.get_json()['id']}", headers=alpha).status_code == 404
    # Partners, their keys and their agreements stay; their SIM pools are fresh again.
    partners = {p["id"]: p for p in client.get("/__admin/partners").get_json()}
    assert {"mvno-alpha", "mvno-bravo", "mvno-charlie"} <= set(partners)
    assert partners["mvno-charlie"]["simPool"]["available"] == 5
    assert partners["mvno-alpha"]["simPool"]["available"] == runtime.settings.sim_pool_size
    assert len(sim_pool(client, charlie)) == 5
    assert product["iccid"] in first_sims(client, alpha, runtime.settings.sim_pool_size)
    # The MNO was not reset.
    assert client.get(MNO_SERVICES, headers=mno_headers).get_json() == services_before


def test_reset_of_an_unknown_role_is_400(client: FlaskClient) -> None:
    response = client.post("/__admin/reset", json={"role": "billing-typo"})
    conforms(response, "admin", "resetState")
    assert response.status_code == 400
    assert response.get_json()["field"] == "role"


# --- seed -----------------------------------------------------------------------------------


@pytest.fixture
def restore_seed(runtime: Runtime) -> Iterator[None]:
    """The seed outlives a reset; put the session's default back for the tests after this."""
    yield
    reset_state(runtime, None, seed=runtime.settings.faker_seed)


@pytest.mark.usefixtures("restore_seed")
def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    def reseed(seed: int) -> None:
        response = client.post("/__admin/seed", json={"seed": seed})
        answer = conforms(response, "admin", "seedState")
        assert answer["seed"] == seed
        runtime.clock.set(T0, frozen=True)

    reseed(7)
    pool_7 = sim_pool(client, alpha)
    msisdn_7 = activate(client, runtime, alpha)["msisdn"]

    reseed(7)
    assert sim_pool(client, alpha) == pool_7
    assert activate(client, runtime, alpha)["msisdn"] == msisdn_7

    reseed(8)
    pool_8 = sim_pool(client, alpha)
    assert len(pool_8) == len(pool_7)
    assert pool_8 != pool_7

    # A plain reset keeps the seed last set.
    response = client.post("/__admin/reset")
    assert response.get_json()["seed"] == 8
    assert sim_pool(client, alpha) == pool_8


def test_a_negative_seed_is_400(client: FlaskClient) -> None:
    response = client.post("/__admin/seed", json={"seed": -1})
    conforms(response, "admin", "seedState")
    assert response.status_code == 400
    assert response.get_json()["field"] == "seed"


# --- clock ----------------------------------------------------------------------------------


def test_clock_endpoints_read_set_and_advance(client: FlaskClient, runtime: Runtime) -> None:
    clock = conforms(client.get("/__admin/clock"), "admin", "getClock")
    assert clock["now"] == "2026-03-02T09:00:00.000Z"
    assert clock["frozen"] is True

    response = client.put("/__admin/clock", json={"now": "2026-04-01T00:00:00Z"})
    clock = conforms(response, "admin", "setClock")
    assert clock["now"] == "2026-04-01T00:00:00.000Z"
    assert clock["frozen"] is True

    response = client.post("/__admin/clock/advance", json={"seconds": 90.5})
    clock = conforms(response, "admin", "advanceClock")
    assert clock["now"] == "2026-04-01T00:01:30.500Z"
    assert client.get("/__admin/clock").get_json()["now"] == "2026-04-01T00:01:30.500Z"

    thawed = conforms(client.put("/__admin/clock", json={"frozen": False}), "admin", "setClock")
    assert thawed["frozen"] is False
    time.sleep(0.05)
    later = client.get("/__admin/clock").get_json()
    assert later["epoch"] > thawed["epoch"]
    assert later["epoch"] < thawed["epoch"] + 5


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/__admin/clock/advance", {"seconds": -1}, "seconds"),
        ("POST", "/__admin/clock/advance", {}, "seconds"),
        ("PUT", "/__admin/clock", {"now": "yesterday"}, "now"),
    ],
)
def test_a_bad_clock_change_is_400_and_leaves_the_clock(
    client: FlaskClient, runtime: Runtime, method: str, path: str, body: Any, field: str
) -> None:
    response = client.open(path, method=method, json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == field
    assert runtime.clock.now() == T0


def test_advancing_the_clock_runs_what_became_due(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    created = client.post(ORDERS, json=order_body(iccid), headers=alpha)
    assert created.status_code == 201
    order_url = f"{ORDERS}/{created.get_json()['id']}"

    conforms(client.post("/__admin/clock/advance", json={"seconds": 10}), "admin", "advanceClock")

    order = client.get(order_url, headers=alpha).get_json()
    assert order["state"] == "completed", order


def test_settle_through_the_admin_api_keeps_its_own_correlation_id(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    """The steps that settle runs make peer calls of their own (with the order's correlation
    ID); the admin answer must still echo the admin caller's ID."""
    iccid = first_sims(client, alpha)[0]
    created = client.post(
        ORDERS, json=order_body(iccid), headers={**alpha, "X-Correlation-ID": "corr-order"}
    )
    assert created.status_code == 201
    response = client.post("/__admin/settle", headers={"X-Correlation-ID": "corr-settle"})
    conforms(response, "admin", "settle")
    assert response.get_json()["ran"] >= 1
    assert response.headers["X-Correlation-ID"] == "corr-settle"
    # The admin call itself is not journaled as some role's request.
    admin_entries = [
        e for e in client.get("/__admin/journal?limit=1000").get_json() if "/__admin/" in e["url"]
    ]
    assert admin_entries == []


# --- journal ---------------------------------------------------------------------------------


def test_the_journal_follows_one_activation_across_fakes(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    activate(client, runtime, {**alpha, "X-Correlation-ID": "corr-123"})
    client.get(SIMS, headers={**alpha, "X-Correlation-ID": "corr-other"})

    response = client.get("/__admin/journal?correlationId=corr-123&limit=1000")
    entries = conforms(response, "admin", "listJournal")
    assert response.headers["X-Total-Count"] == str(len(entries))
    assert {entry["correlationId"] for entry in entries} == {"corr-123"}

    partner_order = [
        e
        for e in entries
        if (e["role"], e["direction"], e["operationId"])
        == ("mvne", "inbound", "createProductOrder")
    ]
    assert len(partner_order) == 1
    assert partner_order[0]["status"] == 201
    assert partner_order[0]["partnerId"] == "mvno-alpha"
    assert partner_order[0]["method"] == "POST"

    to_mno = [
        e
        for e in entries
        if (e["role"], e["direction"], e["method"]) == ("mvne", "outbound", "POST")
        and "/mno/tmf-api/serviceOrdering/v4/serviceOrder" in e["url"]
    ]
    assert len(to_mno) == 1
    assert to_mno[0]["status"] == 201

    at_mno = [
        e
        for e in entries
        if (e["role"], e["direction"], e["operationId"]) == ("mno", "inbound", "createServiceOrder")
    ]
    assert len(at_mno) == 1
    assert at_mno[0]["status"] == 201
    assert at_mno[0]["partnerId"] == "mvne-platform"
    # In the order they happened: the partner's request, then the call, then its arrival.
    assert partner_order[0]["id"] < at_mno[0]["id"]


def test_the_journal_filters_by_role_and_direction(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    activate(client, runtime, alpha)
    entries = client.get("/__admin/journal?role=mno&direction=inbound&limit=1000").get_json()
    assert entries
    assert {(e["role"], e["direction"]) for e in entries} == {("mno", "inbound")}


def test_the_journal_redacts_secrets(client: FlaskClient, alpha: dict[str, str]) -> None:
    registered = client.post(
        ORDER_HUB,
        json={"callback": "http://hooks.partner.test/a"},
        headers={**alpha, "X-Correlation-ID": "corr-secret"},
    )
    secret = registered.get_json()["secret"]

    entries = client.get("/__admin/journal?correlationId=corr-secret").get_json()
    [entry] = [e for e in entries if e["operationId"] == "registerOrderListener"]
    assert json.loads(entry["responseBody"])["secret"] == "***"
    everything = json.dumps(client.get("/__admin/journal?limit=1000").get_json())
    assert secret not in everything
    assert alpha["X-API-Key"] not in everything


def test_onboarding_answers_the_api_key_but_the_journal_does_not_keep_it(
    client: FlaskClient,
) -> None:
    response = client.post(
        "/__admin/partners",
        json={
            "id": "mvno-delta",
            "name": "Delta",
            "agreement": {"offerings": ["po-gb-payg"], "markets": ["GB"], "capabilities": []},
        },
        headers={"X-Correlation-ID": "corr-onboard"},
    )
    assert response.status_code == 201
    key = response.get_json()["apiKey"]
    everything = json.dumps(client.get("/__admin/journal?limit=1000").get_json())
    assert key not in everything


class TestJournalRetention:
    """Every flush (200 buffered entries, the background flusher, or a query) trims the
    journal back to its newest `max_entries` and drops entries older than `max_age_s`."""

    MAX = 50
    BATCH = 200

    @pytest.fixture
    def journal(self, tmp_path: Path) -> Iterator[Journal]:
        store = Store(f"sqlite:///{tmp_path / 'journal.db'}")
        store.create_all()
        journal = Journal(store, max_entries=self.MAX, max_age_s=3600)
        yield journal
        journal.close()
        store.dispose()

    @staticmethod
    def record(journal: Journal, start: int, count: int, at: float | None = None) -> None:
        for n in range(start, start + count):
            journal.record(
                role="mvne",
                direction="inbound",
                method="GET",
                url=f"/e/{n}",
                status=200,
                correlation_id=f"c-{n}",
                at=at,
            )

    @staticmethod
    def urls(journal: Journal) -> list[str]:
        _, rows = journal.query(limit=100_000)
        return [row["url"] for row in rows]

    def test_the_journal_stays_bounded_and_keeps_the_newest(self, journal: Journal) -> None:
        self.record(journal, 0, 500)
        total, _ = journal.query()
        assert total == self.MAX
        assert self.urls(journal) == [f"/e/{n}" for n in range(450, 500)]

    def test_a_long_run_never_exceeds_the_bound(self, journal: Journal) -> None:
        for batch in range(60):
            self.record(journal, batch * self.BATCH, self.BATCH)
            total, _ = journal.query()
            assert total == self.MAX
        newest = 60 * self.BATCH
        assert self.urls(journal) == [f"/e/{n}" for n in range(newest - self.MAX, newest)]

    def test_entries_older_than_the_retention_age_are_dropped(self, journal: Journal) -> None:
        old = time.time() - journal.max_age_s - 60
        self.record(journal, 0, 10, at=old)
        self.record(journal, 10, 10)
        journal.flush()  # flush #1 trims
        assert self.urls(journal) == [f"/e/{n}" for n in range(10, 20)]


# --- audit trail -----------------------------------------------------------------------------


def test_the_audit_trail_records_who_did_what_under_which_correlation_id(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    created = client.post(
        ORDERS,
        json=order_body(iccid, "ext-audit"),
        headers={**alpha, "X-Correlation-ID": "corr-audit"},
    )
    assert created.status_code == 201
    order_id = created.get_json()["id"]

    response = client.get("/__admin/audit?correlationId=corr-audit")
    records = conforms(response, "admin", "listAudit")
    [record] = [r for r in records if r["entityId"] == order_id]
    assert record["actor"] == "partner:mvno-alpha"
    assert record["partnerId"] == "mvno-alpha"
    assert record["role"] == "mvne"
    assert record["action"] == "order.acknowledged"
    assert record["entityType"] == "productOrder"
    assert record["correlationId"] == "corr-audit"
    assert record["at"] == "2026-03-02T09:00:00.000Z"
    assert record["details"]["externalId"] == "ext-audit"

    by_entity = client.get(f"/__admin/audit?entityId={order_id}").get_json()
    assert record in by_entity


def test_a_refused_order_leaves_no_audit_record(client: FlaskClient, alpha: dict[str, str]) -> None:
    iccid = first_sims(client, alpha)[0]
    refused = client.post(
        ORDERS,
        json=order_body(iccid, offering="po-us-talk"),
        headers={**alpha, "X-Correlation-ID": "corr-refused"},
    )
    assert refused.status_code == 403
    assert client.get("/__admin/audit?correlationId=corr-refused").get_json() == []


def test_a_capability_changed_by_another_worker_applies_at_the_next_request(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], tmp_path: Path
) -> None:
    """Each worker caches authenticated partners; another worker's change (here a direct
    update and its bump of the shared partner generation) reaches this one at once."""
    from simulators.core import tenancy
    from simulators.core.generation import Generation

    shared = tmp_path / "state.db.partners"
    tenancy.share_partner_changes(Generation(str(shared)))
    try:
        inventory = "/mvne/tmf-api/resourceInventoryManagement/v4/resource"
        assert client.get(inventory, headers=alpha).status_code == 200  # now cached here
        with runtime.store.write() as conn:
            conn.execute(
                tenancy.capabilities.update()
                .where(tenancy.capabilities.c.partner_id == "mvno-alpha")
                .where(tenancy.capabilities.c.capability == "QUERY_INVENTORY")
                .values(status="suspended")
            )
        other_worker = Generation(str(shared))
        other_worker.bump()
        refused = client.get(inventory, headers=alpha)
        assert refused.status_code == 403
        assert refused.get_json()["code"] == "CAPABILITY_SUSPENDED"
    finally:
        tenancy.share_partner_changes(Generation(None))


@pytest.mark.parametrize(
    "now", ["9000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]
)
def test_a_time_the_clock_cannot_show_is_refused_and_the_clock_is_kept(client, now) -> None:
    before = client.get("/__admin/clock").get_json()
    refused = client.put("/__admin/clock", json={"now": now, "frozen": True})
    problem = conforms(refused, "admin", "setClock")
    assert (refused.status_code, problem["code"], problem["field"]) == (
        422,
        "CLOCK_OUT_OF_RANGE",
        "now",
    )
    after = client.get("/__admin/clock").get_json()
    assert (after["frozen"], after["offsetSeconds"]) == (before["frozen"], before["offsetSeconds"])


def test_an_advance_past_the_clock_s_last_time_is_refused(client) -> None:
    edge = client.put("/__admin/clock", json={"now": "8999-12-31T23:00:00Z", "frozen": True})
    assert edge.status_code == 200
    refused = client.post("/__admin/clock/advance", json={"seconds": 7200})
    problem = conforms(refused, "admin", "advanceClock")
    assert (problem["code"], problem["field"]) == ("CLOCK_OUT_OF_RANGE", "seconds")
    assert client.get("/__admin/clock").get_json()["now"] == "8999-12-31T23:00:00.000Z"
    assert client.post("/__admin/clock/advance", json={"seconds": 1800}).status_code == 200
