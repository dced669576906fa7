"""The request pipeline every fake shares, seen through the MVNE: correlation IDs, the
error model, body handling, routing and authentication."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from conftest import ORDERS, SIMS, api_key, conforms, first_sims, order_body
from flask import Flask, Response, g, has_request_context
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import EnvironBuilder, run_wsgi_app

from simulators.core.runtime import Runtime
from simulators.mvne import model as mvne_model
from simulators.mvne.model import order_table, sim_table

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code"}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MIB = 1024 * 1024


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert PROBLEM_MEMBERS <= set(body), body
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].startswith("https://")
    assert body["title"] and body["detail"]
    return dict(body)


def order_count(runtime: Runtime) -> int:
    with runtime.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(order_table)).scalar_one())


# --- correlation -------------------------------------------------------------------------


def test_x_correlation_id_is_echoed(client: FlaskClient, alpha: dict[str, str]) -> None:
    response = client.get(SIMS, headers={**alpha, "X-Correlation-ID": "order-42:retry.1"})
    assert response.status_code == 200
    assert response.headers["X-Correlation-ID"] == "order-42:retry.1"


def test_the_correlation_id_is_echoed_on_a_refusal_too(client: FlaskClient) -> None:
    response = client.get(SIMS, headers={"X-Correlation-ID": "corr-refused"})
    body = assert_problem(response, 401, "UNAUTHENTICATED")
    assert response.headers["X-Correlation-ID"] == "corr-refused"
    assert body["correlationId"] == "corr-refused"


def test_a_256_character_correlation_id_is_accepted(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    longest = "a" * 256
    response = client.get(SIMS, headers={**alpha, "X-Correlation-ID": longest})
    assert response.status_code == 200
    assert response.headers["X-Correlation-ID"] == longest


def test_a_traceparent_trace_id_becomes_the_correlation_id(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    response = client.get(SIMS, headers={**alpha, "traceparent": TRACEPARENT})
    assert response.status_code == 200
    assert response.headers["X-Correlation-ID"] == TRACE_ID


def test_x_correlation_id_wins_over_traceparent(client: FlaskClient, alpha: dict[str, str]) -> None:
    response = client.get(
        SIMS, headers={**alpha, "traceparent": TRACEPARENT, "X-Correlation-ID": "mine"}
    )
    assert response.headers["X-Correlation-ID"] == "mine"


def test_a_malformed_traceparent_is_ignored_and_an_id_minted(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    response = client.get(SIMS, headers={**alpha, "traceparent": "not-a-traceparent"})
    assert response.status_code == 200
    assert UUID.match(response.headers["X-Correlation-ID"])


def test_without_any_id_each_request_gets_its_own(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    first = client.get(SIMS, headers=alpha).headers["X-Correlation-ID"]
    second = client.get(SIMS, headers=alpha).headers["X-Correlation-ID"]
    assert UUID.match(first) and UUID.match(second)
    assert first != second


@pytest.mark.parametrize(
    "value",
    [
        "has space",
        "a" * 300,
        'semi;colon-ok-but-quote"-not',
        "emoji-\u2603".encode().decode("latin-1"),
    ],
)
def test_an_invalid_correlation_id_is_400(
    client: FlaskClient, alpha: dict[str, str], value: str
) -> None:
    response = client.get(SIMS, headers={**alpha, "X-Correlation-ID": value})
    body = assert_problem(response, 400, "INVALID_CORRELATION_ID")
    assert body["field"] == "X-Correlation-ID"


def test_an_invalid_correlation_id_refuses_a_write_before_anything_is_stored(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    response = client.post(
        ORDERS, json=order_body(iccid), headers={**alpha, "X-Correlation-ID": "a b"}
    )
    assert_problem(response, 400, "INVALID_CORRELATION_ID")
    assert order_count(runtime) == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/mvne/tmf-api/noSuchApi/v4/thing", 404),
        ("DELETE", ORDERS, 405),
    ],
)
def test_the_correlation_id_is_echoed_when_no_route_matches(
    client: FlaskClient, alpha: dict[str, str], method: str, path: str, status: int
) -> None:
    """Design: every request gets or echoes X-Correlation-ID, including a wrong URL or
    method, which is exactly when a partner needs the ID to ask what went wrong."""
    response = client.open(path, method=method, headers={**alpha, "X-Correlation-ID": "lost-1"})
    body = assert_problem(response, status, "NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED")
    assert response.headers.get("X-Correlation-ID") == "lost-1"
    assert body.get("correlationId") == "lost-1"


# --- bodies ---------------------------------------------------------------------------------


def test_malformed_json_is_400(client: FlaskClient, alpha: dict[str, str]) -> None:
    response = client.post(
        ORDERS,
        data='{"externalId": "ext-1",',
        headers={**alpha, "Content-Type": "application/json"},
    )
    conforms(response, "mvne", "createProductOrder")
    assert_problem(response, 400, "MALFORMED_JSON")


def test_a_body_that_is_not_utf8_is_malformed_json(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    response = client.post(
        ORDERS,
        data=b'{"externalId": "\xff\xfe"}',
        headers={**alpha, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "MALFORMED_JSON")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_a_body_that_is_not_json_is_415(
    client: FlaskClient,
    runtime: Runtime,
    alpha: dict[str, str],
    content_type: str | None,
) -> None:
    iccid = first_sims(client, alpha)[0]
    headers = dict(alpha)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(ORDERS, data=json.dumps(order_body(iccid)), headers=headers)
    conforms(response, "mvne", "createProductOrder")
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert order_count(runtime) == 0


def test_a_json_suffix_media_type_is_accepted(client: FlaskClient, alpha: dict[str, str]) -> None:
    iccid = first_sims(client, alpha)[0]
    response = client.post(
        ORDERS,
        data=json.dumps(order_body(iccid)),
        headers={**alpha, "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)


def test_a_body_over_one_mebibyte_is_413_and_nothing_is_stored(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    body = order_body(iccid)
    body["description"] = "x" * MIB
    response = client.post(ORDERS, json=body, headers=alpha)
    conforms(response, "mvne", "createProductOrder")
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert order_count(runtime) == 0
    with runtime.store.read() as conn:
        status = conn.execute(select(sim_table.c.status).where(sim_table.c.iccid == iccid)).scalar()
    assert status == "available"


def test_a_uri_over_sixteen_kib_is_a_problem_document_naming_its_length(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    sims = "/mvne/tmf-api/resourceInventoryManagement/v4/resource"
    response = client.get(f"{sims}?batchNumber={'9' * 17_000}", headers=alpha)
    conforms(response, "mvne", "listSims")
    assert_problem(response, 400, "URI_TOO_LONG")
    assert "at most 16384" in response.get_json()["detail"]
    camara = client.get(f"/mno/sim-swap/v2/openapi.json?{'x' * 17_000}")
    assert camara.status_code == 400 and camara.get_json()["code"] == "INVALID_ARGUMENT"


def test_a_body_of_exactly_one_mebibyte_is_read(client: FlaskClient, alpha: dict[str, str]) -> None:
    """The bound is inclusive: a 1 MiB body gets past the size check to the contract check."""
    iccid = first_sims(client, alpha)[0]
    body = order_body(iccid)
    body["description"] = ""
    padding = MIB - len(json.dumps(body))
    body["description"] = "x" * padding
    raw = json.dumps(body)
    assert len(raw) == MIB
    response = client.post(ORDERS, data=raw, headers={**alpha, "Content-Type": "application/json"})
    problem = assert_problem(response, 400, "INVALID_REQUEST")
    assert problem["field"] == "description"


def test_a_large_body_is_refused_without_a_content_length(
    app: Flask, client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    """A chunked upload has no Content-Length to check up front; the read is still bounded."""
    iccid = first_sims(client, alpha)[0]
    body = order_body(iccid)
    body["description"] = "x" * (2 * MIB)
    raw = json.dumps(body).encode()
    builder = EnvironBuilder(
        path=ORDERS,
        method="POST",
        input_stream=io.BytesIO(raw),
        headers={**alpha, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    environ = builder.get_environ()
    del environ["CONTENT_LENGTH"]
    # What a WSGI server (gunicorn) sets once it has de-chunked the body; the test client
    # would rebuild the environ without it, so the app is called directly.
    environ["wsgi.input_terminated"] = True
    app_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    response = Response(b"".join(app_iter), status=status, headers=headers)
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert order_count(runtime) == 0


# --- routing -------------------------------------------------------------------------------


def test_an_unknown_route_is_a_404_problem(client: FlaskClient, alpha: dict[str, str]) -> None:
    response = client.get("/mvne/tmf-api/noSuchApi/v4/thing", headers=alpha)
    body = assert_problem(response, 404, "NOT_FOUND")
    assert body["instance"] == "/mvne/tmf-api/noSuchApi/v4/thing"


def test_an_unknown_resource_is_a_404_problem_with_its_own_code(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    response = client.get(f"{ORDERS}/no-such-order", headers=alpha)
    conforms(response, "mvne", "getProductOrder")
    assert_problem(response, 404, "ORDER_NOT_FOUND")


def test_a_wrong_method_is_405_with_allow(client: FlaskClient, alpha: dict[str, str]) -> None:
    response = client.delete(ORDERS, headers=alpha)
    assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert "DELETE" not in allowed


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "hk_mvno-alpha_00000000000000000000000000000000"},
        # A valid key of another API: the MVNE's own credential at the MNO is not an MVNO key.
        {"X-API-Key": api_key("mvne-platform")},
    ],
    ids=["missing", "empty", "wrong", "other-api"],
)
def test_missing_or_wrong_api_key_is_401_with_www_authenticate(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    response = client.get(SIMS, headers=headers)
    conforms(response, "mvne", "listSims")
    assert_problem(response, 401, "UNAUTHENTICATED")
    assert "X-API-Key" in response.headers["WWW-Authenticate"]


def test_an_unauthenticated_write_stores_nothing(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    response = client.post(ORDERS, json=order_body(iccid), headers={"X-API-Key": "nope"})
    assert_problem(response, 401, "UNAUTHENTICATED")
    assert order_count(runtime) == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"{not json", "application/json"), (b"<order/>", "application/xml"), (b"{}", None)],
    ids=["malformed", "wrong-media-type", "invalid"],
)
def test_the_caller_is_refused_before_the_body_is(
    client: FlaskClient, body: bytes, content_type: str | None
) -> None:
    headers = {"X-API-Key": "nope", "Content-Type": content_type or "application/json"}
    response = client.post(ORDERS, data=body, headers=headers)
    assert_problem(response, 401, "UNAUTHENTICATED")


def test_a_write_takes_the_write_turn_only_once_its_request_is_read_and_checked(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str], monkeypatch: Any
) -> None:
    # Every other writer waits while one holds the turn: parsing and checking the body is
    # no work of the store's.
    seen_at_write: list[Any] = []
    write = runtime.store.write

    def watched_write() -> Any:
        if has_request_context():
            seen_at_write.append(g.get("raw_body"))
        return write()

    monkeypatch.setattr(runtime.store, "write", watched_write)
    iccid = first_sims(client, alpha)[0]
    response = client.post(ORDERS, json=order_body(iccid), headers=alpha)
    assert response.status_code == 201
    assert seen_at_write and b"externalId" in seen_at_write[0], seen_at_write
    assert order_count(runtime) == 1


# --- validation -------------------------------------------------------------------------------


def test_a_missing_field_is_named(client: FlaskClient, alpha: dict[str, str]) -> None:
    response = client.post(ORDERS, json={"externalId": "ext-1"}, headers=alpha)
    conforms(response, "mvne", "createProductOrder")
    body = assert_problem(response, 400, "INVALID_REQUEST")
    assert body["field"] == "productOrderItem"
    assert {"field": "productOrderItem", "message": body["errors"][0]["message"]} in body["errors"]
    assert "productOrderItem" in body["detail"]


def test_a_nested_field_is_named_as_the_partner_writes_it(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    body = order_body(iccid)
    del body["productOrderItem"][0]["productOffering"]["id"]
    response = client.post(ORDERS, json=body, headers=alpha)
    problem = assert_problem(response, 400, "INVALID_REQUEST")
    assert problem["field"] == "productOrderItem[0].productOffering.id"
    assert [error["field"] for error in problem["errors"]] == [
        "productOrderItem[0].productOffering.id"
    ]


def test_every_invalid_field_is_listed(client: FlaskClient, alpha: dict[str, str]) -> None:
    iccid = first_sims(client, alpha)[0]
    body = order_body(iccid)
    body["externalId"] = ""
    body["productOrderItem"][0]["action"] = "delete"
    response = client.post(ORDERS, json=body, headers=alpha)
    problem = assert_problem(response, 400, "INVALID_REQUEST")
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"externalId", "productOrderItem[0].action"}
    assert problem["field"] in fields
    assert all(error["message"] for error in problem["errors"])


def test_an_invalid_query_parameter_is_named(client: FlaskClient, alpha: dict[str, str]) -> None:
    for query, field in (("limit=abc", "limit"), ("limit=0", "limit"), ("offset=-1", "offset")):
        response = client.get(f"{SIMS}?{query}", headers=alpha)
        conforms(response, "mvne", "listSims")
        problem = assert_problem(response, 400, "INVALID_REQUEST")
        assert problem["field"] == field, query
        assert problem["errors"][0]["field"] == field


def test_an_iccid_with_a_bad_check_digit_is_refused_by_the_contract(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    iccid = first_sims(client, alpha)[0]
    wrong = iccid[:-1] + str((int(iccid[-1]) + 1) % 10)
    response = client.post(ORDERS, json=order_body(wrong), headers=alpha)
    problem = assert_problem(response, 400, "INVALID_REQUEST")
    assert problem["field"] == "productOrderItem[0].product.productCharacteristic[0].value"


def test_an_unexpected_failure_is_a_500_problem_that_names_the_correlation_id(
    client: FlaskClient, alpha: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 500 is always a bug in a fake; the partner reports it with the correlation ID."""

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug inside the fake")

    monkeypatch.setattr(mvne_model, "list_sims", crash)
    response = client.get(SIMS, headers={**alpha, "X-Correlation-ID": "corr-bug"})
    body = assert_problem(response, 500, "INTERNAL")
    assert "a bug inside the fake" not in response.get_data(as_text=True)
    assert body["correlationId"] == "corr-bug"
    assert response.headers.get("X-Correlation-ID") == "corr-bug"
