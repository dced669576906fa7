"""Idempotent writes: Idempotency-Key and externalId replays, conflicts, concurrency, scope."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import responses
from conftest import ORDERS, conforms, first_sims, order_body
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from simulators.core.runtime import Runtime
from simulators.mvne.model import order_table

REPLAYED = "Idempotent-Replayed"
DAY = 24 * 3600


def stored_orders(runtime: Runtime, external_id: str | None = None) -> int:
    query = select(func.count()).select_from(order_table)
    if external_id is not None:
        query = query.where(order_table.c.external_id == external_id)
    with runtime.store.read() as conn:
        return int(conn.execute(query).scalar_one())


def post_order(
    client: FlaskClient, headers: dict[str, str], body: dict[str, Any], key: str | None = None
) -> Any:
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post(ORDERS, json=body, headers=headers)


# --- Idempotency-Key ------------------------------------------------------------------------


def test_a_retry_with_the_same_key_replays_the_first_answer(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    first = post_order(client, alpha, order_body(iccid), key="key-1")
    conforms(first, "mvne", "createProductOrder")
    assert first.status_code == 201
    assert REPLAYED not in first.headers

    runtime.settle()  # the order moves on; a replay still answers what the first call answered
    again = post_order(client, alpha, order_body(iccid), key="key-1")

    assert again.status_code == 201
    assert again.headers[REPLAYED] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert stored_orders(runtime) == 1


def test_the_same_key_with_another_body_is_422(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    one, two = first_sims(client, alpha, 2)
    assert post_order(client, alpha, order_body(one, "ext-1"), key="key-1").status_code == 201

    reused = post_order(client, alpha, order_body(two, "ext-2"), key="key-1")

    conforms(reused, "mvne", "createProductOrder")
    assert reused.status_code == 422
    assert reused.mimetype == "application/problem+json"
    assert reused.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert stored_orders(runtime) == 1
    sim = client.get(f"/mvne/tmf-api/resourceInventoryManagement/v4/resource/{two}", headers=alpha)
    assert sim.get_json()["resourceStatus"] == "available"


def test_a_refused_request_is_not_remembered_under_its_key(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    """Only successes are kept: fixing the request and retrying with the same key works."""
    iccid = first_sims(client, alpha)[0]
    refused = post_order(client, alpha, order_body(iccid, offering="po-us-talk"), key="key-1")
    assert refused.status_code == 403

    fixed = post_order(client, alpha, order_body(iccid), key="key-1")
    assert fixed.status_code == 201, fixed.get_data(as_text=True)
    assert REPLAYED not in fixed.headers
    assert stored_orders(runtime) == 1


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_a_key_outside_1_to_255_characters_is_400(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], key: str
) -> None:
    iccid = first_sims(client, alpha)[0]
    response = post_order(client, alpha, order_body(iccid), key=key)
    conforms(response, "mvne", "createProductOrder")
    assert response.status_code == 400
    assert response.get_json()["field"] == "Idempotency-Key"
    assert stored_orders(runtime) == 0


def test_a_key_is_kept_for_the_retention_period_then_forgotten(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    assert runtime.settings.idempotency_retention_s == DAY
    one, two = first_sims(client, alpha, 2)
    assert post_order(client, alpha, order_body(one, "ext-1"), key="key-1").status_code == 201

    runtime.clock.advance(DAY - 1)
    assert post_order(client, alpha, order_body(two, "ext-2"), key="key-1").status_code == 422

    runtime.clock.advance(2)
    reused = post_order(client, alpha, order_body(two, "ext-2"), key="key-1")
    assert reused.status_code == 201, reused.get_data(as_text=True)
    assert REPLAYED not in reused.headers
    assert stored_orders(runtime) == 2


# --- externalId -------------------------------------------------------------------------------


def test_the_same_external_id_twice_gives_the_same_order_once(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    first = post_order(client, alpha, order_body(iccid, "ext-dup"))
    again = post_order(client, alpha, order_body(iccid, "ext-dup"))

    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json() == first.get_json()
    assert stored_orders(runtime, "ext-dup") == 1
    assert stored_orders(runtime) == 1
    listed = client.get(f"{ORDERS}?externalId=ext-dup", headers=alpha)
    assert listed.headers["X-Total-Count"] == "1"


def test_the_same_external_id_with_another_body_is_refused(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    """Without an Idempotency-Key the externalId is the key (the convention mno.yaml spells
    out); with a fresh key, the order itself refuses the second use of its externalId."""
    one, two = first_sims(client, alpha, 2)
    assert post_order(client, alpha, order_body(one, "ext-dup")).status_code == 201

    clash = post_order(client, alpha, order_body(two, "ext-dup"))
    conforms(clash, "mvne", "createProductOrder")
    assert clash.status_code == 422
    assert clash.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"

    keyed = post_order(client, alpha, order_body(two, "ext-dup"), key="fresh-key")
    conforms(keyed, "mvne", "createProductOrder")
    assert keyed.status_code == 422
    assert keyed.get_json()["code"] == "EXTERNAL_ID_REUSED"
    assert stored_orders(runtime) == 1


def test_a_key_and_an_external_id_each_protect_the_order(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    """A retry that drops the Idempotency-Key but keeps the externalId is still a retry."""
    iccid = first_sims(client, alpha)[0]
    first = post_order(client, alpha, order_body(iccid, "ext-1"), key="key-1")
    without_key = post_order(client, alpha, order_body(iccid, "ext-1"))
    with_new_key = post_order(client, alpha, order_body(iccid, "ext-1"), key="key-2")

    assert without_key.status_code == with_new_key.status_code == 201
    assert without_key.get_json()["id"] == first.get_json()["id"]
    assert with_new_key.get_json()["id"] == first.get_json()["id"]
    assert stored_orders(runtime) == 1


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_retries_create_exactly_one_order(
    app: Flask,
    runtime: Runtime,
    network: responses.RequestsMock,
    alpha: dict[str, str],
) -> None:
    iccid = first_sims(app.test_client(), alpha)[0]
    body = order_body(iccid, "ext-race")
    racers = 20
    barrier = threading.Barrier(racers)
    answers: list[tuple[int, dict[str, Any]]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def retry(n: int) -> None:
        try:
            client = app.test_client()
            barrier.wait(timeout=30)
            response = client.post(
                ORDERS,
                json=body,
                headers={**alpha, "Idempotency-Key": "race-key", "X-Correlation-ID": f"r-{n}"},
            )
            with lock:
                answers.append((response.status_code, response.get_json(force=True)))
        except BaseException as exc:  # reported below, with the thread's answer
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=retry, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures, failures
    assert len(answers) == racers
    created = [body for status, body in answers if status == 201]
    in_flight = [body for status, body in answers if status == 409]
    others = [(status, body) for status, body in answers if status not in (201, 409)]
    assert others == []
    # A twin still in flight may be told so (documented 409); nothing else is acceptable.
    assert all(problem["code"] == "IDEMPOTENCY_KEY_IN_FLIGHT" for problem in in_flight), in_flight
    assert created
    assert len({order["id"] for order in created}) == 1
    assert stored_orders(runtime, "ext-race") == 1
    assert stored_orders(runtime) == 1


# --- scope ---------------------------------------------------------------------------------


def test_keys_are_scoped_per_partner(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], bravo: dict[str, str]
) -> None:
    alpha_sim = first_sims(client, alpha)[0]
    bravo_sim = first_sims(client, bravo)[0]
    mine = post_order(client, alpha, order_body(alpha_sim, "ext-1"), key="shared-key")
    assert mine.status_code == 201

    theirs = post_order(
        client, bravo, order_body(bravo_sim, "ext-1", offering="po-us-talk"), key="shared-key"
    )

    assert theirs.status_code == 201, theirs.get_data(as_text=True)
    assert REPLAYED not in theirs.headers
    assert theirs.get_json()["id"] != mine.get_json()["id"]
    assert stored_orders(runtime, "ext-1") == 2
    # Each partner's retry still replays its own answer.
    again = post_order(client, alpha, order_body(alpha_sim, "ext-1"), key="shared-key")
    assert again.get_json()["id"] == mine.get_json()["id"]


def test_another_partner_never_receives_an_answer_stored_under_the_same_key(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], bravo: dict[str, str]
) -> None:
    """Bravo replaying alpha's exact request with alpha's key must not be handed alpha's order."""
    alpha_sim = first_sims(client, alpha)[0]
    body = order_body(alpha_sim, "ext-1")
    mine = post_order(client, alpha, body, key="alpha-key")

    theirs = post_order(client, bravo, body, key="alpha-key")

    # Bravo's agreement is US-only: its own request is refused on its own merits.
    conforms(theirs, "mvne", "createProductOrder")
    assert theirs.status_code == 403
    assert theirs.get_json()["code"] == "MARKET_NOT_IN_AGREEMENT"
    assert REPLAYED not in theirs.headers
    assert mine.get_json()["id"] not in theirs.get_data(as_text=True)
    assert stored_orders(runtime) == 1
