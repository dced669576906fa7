"""Fixtures: one in-process stack per session, reset to its seeded state before each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from simulators.bdd.snapshot import Snapshot
from simulators.core.admin import reset_state
from simulators.core.config import Settings
from simulators.core.inprocess import CallbackReceiver, MountedStack, mount
from simulators.core.runtime import Runtime
from simulators.core.tenancy import derive_api_key
from simulators.stack import create_app, runtime_of

SECRET = "test-secret-key"
BASE_URL = "http://127.0.0.1:8700"
PARTNER_HOOKS = "http://hooks.partner.test"
# The clock starts here in every test: 2026-03-02T09:00:00Z.
T0 = 1772442000.0
# Property tests run the same examples on every run and never fail on time: a red CI run
# must mean a defect, not a slow moment on a shared machine or an unlucky draw.
hypothesis.settings.register_profile("handoff", deadline=None, derandomize=True)
hypothesis.settings.load_profile("handoff")

# The Redis the rate-limit tests use (`.ci/run` starts it if it is down).
REDIS_URL = os.environ.get("HANDOFF_REDIS_URL") or "redis://127.0.0.1:6379/0"


def redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_reachable(), reason=f"no Redis at {REDIS_URL}")


def _db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return (
        os.environ.get("HANDOFF_DB") or f"sqlite:///{tmp_path_factory.mktemp('store') / 'state.db'}"
    )


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        db_url=_db_url(tmp_path_factory),
        secret_key=SECRET,
        callback_allow_hosts=("hooks.partner.test", "other.partner.test"),
        background=False,
        # Like HANDOFF_DB: the whole suite can run with its rate-limit buckets in Redis.
        redis_url=os.environ.get("HANDOFF_REDIS_URL", ""),
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    runtime_of(app).close()


@pytest.fixture(scope="session")
def runtime(app: Flask) -> Runtime:
    return runtime_of(app)


@pytest.fixture(scope="session")
def seeded(runtime: Runtime) -> Snapshot:
    """The store as a full reset leaves it on the tests' clock, kept once: putting these rows
    back costs a fraction of reseeding every role, which the suite would otherwise pay per test."""
    runtime.clock.set(T0, frozen=True)
    reset_state(runtime, None, seed=runtime.settings.faker_seed)
    snapshot = Snapshot(runtime)
    snapshot.capture()
    return snapshot


@pytest.fixture(autouse=True)
def fresh_state(runtime: Runtime, seeded: Snapshot) -> Iterator[None]:
    seeded.restore()
    runtime.clock.set(T0, frozen=True)
    yield


@pytest.fixture
def network(app: Flask) -> Iterator[responses.RequestsMock]:
    """Every HTTP call the fakes make (peers, callbacks) stays inside this process."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.stack = mount(mock, app, BASE_URL)  # type: ignore[attr-defined]
        yield mock


@pytest.fixture
def outages(network: responses.RequestsMock) -> MountedStack:
    """Make a path of the in-process stack answer an error, as a vendor outage would."""
    stack: MountedStack = network.stack  # type: ignore[attr-defined]
    return stack


@pytest.fixture
def hooks(network: responses.RequestsMock) -> CallbackReceiver:
    receiver = CallbackReceiver(PARTNER_HOOKS)
    receiver.install(network)
    return receiver


@pytest.fixture
def client(app: Flask, network: responses.RequestsMock) -> FlaskClient:
    return app.test_client()


def api_key(partner_id: str) -> str:
    return derive_api_key(SECRET, partner_id)


@pytest.fixture
def alpha() -> dict[str, str]:
    """Headers of the first reference MVNO."""
    return {"X-API-Key": api_key("mvno-alpha")}


@pytest.fixture
def bravo() -> dict[str, str]:
    """Headers of the second reference MVNO."""
    return {"X-API-Key": api_key("mvno-bravo")}


@pytest.fixture
def mno_headers() -> dict[str, str]:
    """Headers of the MVNE platform calling the MNO."""
    return {"X-API-Key": api_key("mvne-platform")}


def settle(runtime: Runtime, seconds: float = 0.0) -> None:
    """Let simulated time pass and run everything that became due."""
    if seconds:
        runtime.advance(seconds)
    else:
        runtime.settle()


def network_order_polls(client: FlaskClient, correlation_id: str) -> list[dict[str, Any]]:
    """The MVNE's looks at network orders (GET serviceOrder/{id}) for one correlation ID."""
    entries = client.get(
        "/__admin/journal", query_string={"correlationId": correlation_id, "limit": 1000}
    ).get_json()
    return [
        entry
        for entry in entries
        if entry["role"] == "mvne"
        and entry["direction"] == "outbound"
        and entry["method"] == "GET"
        and "/serviceOrder/" in entry["url"]
    ]


def json_of(response: Any) -> Any:
    return response.get_json(force=True)


def conforms(response: Any, role: str, operation_id: str) -> Any:
    """Assert the response is one the contract documents for this operation; return its JSON."""
    from jsonschema import Draft202012Validator

    from simulators.core.contract import FORMAT_CHECKER, load_contract

    contract = load_contract(role)
    operation = next(
        spec
        for item in contract.document["paths"].values()
        for method, spec in item.items()
        if isinstance(spec, dict) and spec.get("operationId") == operation_id
    )
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{operation_id} answered {status}, undocumented: {response.get_data(as_text=True)[:300]}"
    )
    documented = contract._resolve(operation["responses"][status])
    content = documented.get("content")
    if not content:
        assert not response.get_data(), f"{operation_id} {status} must have no body"
        return None
    media = response.mimetype
    assert media in content, (
        f"{operation_id} {status} answered {media}, contract says {list(content)}"
    )
    schema = dict(content[media]["schema"])
    schema["components"] = contract.document.get("components", {})
    body = response.get_json(force=True)
    errors = sorted(
        Draft202012Validator(schema, format_checker=FORMAT_CHECKER).iter_errors(body), key=str
    )
    assert not errors, f"{operation_id} {status} breaks its contract: {errors[0].message}"
    return body


MVNE = "/mvne/tmf-api"
ORDERS = f"{MVNE}/productOrderingManagement/v4/productOrder"
PRODUCTS = f"{MVNE}/productInventoryManagement/v4/product"
SIMS = f"{MVNE}/resourceInventoryManagement/v4/resource"


def first_sims(client: FlaskClient, headers: dict[str, str], count: int = 1) -> list[str]:
    response = client.get(f"{SIMS}?resourceStatus=available&limit={count}", headers=headers)
    assert response.status_code == 200
    return [sim["iccid"] for sim in response.get_json()]


def order_body(
    iccid: str, external_id: str = "ext-1", offering: str = "po-gb-payg", **item: Any
) -> dict[str, Any]:
    return {
        "externalId": external_id,
        "productOrderItem": [
            {
                "id": "1",
                "action": "add",
                "productOffering": {"id": offering},
                "product": {"productCharacteristic": [{"name": "ICCID", "value": iccid}], **item},
            }
        ],
    }


def activate(
    client: FlaskClient,
    runtime: Runtime,
    headers: dict[str, str],
    external_id: str = "ext-1",
    **kw: Any,
) -> dict[str, Any]:
    """Order one activation and let the network complete it; return the subscription."""
    iccid = first_sims(client, headers)[0]
    created = client.post(ORDERS, json=order_body(iccid, external_id, **kw), headers=headers)
    assert created.status_code == 201, created.get_data(as_text=True)
    settle(runtime)
    settle(runtime, 5)
    order = client.get(f"{ORDERS}/{created.get_json()['id']}", headers=headers).get_json()
    assert order["state"] == "completed", order
    product_id = order["productOrderItem"][0]["product"]["id"]
    return client.get(f"{PRODUCTS}/{product_id}", headers=headers).get_json()


def publish(runtime: Runtime, count: int, first: int = 0) -> None:
    """Queue `count` order events of mvno-alpha, one resource each, in one transaction."""
    now = runtime.clock.now()
    with runtime.store.write() as conn:
        for number in range(first, first + count):
            runtime.outbox.publish(
                conn,
                role="mvne",
                api="productOrderingManagement",
                partner_id="mvno-alpha",
                event_type="ProductOrderStateChangeEvent",
                resource_name="productOrder",
                resource={"id": f"order-{number}", "state": "inProgress"},
                correlation_id=f"corr-{number}",
                now=now,
            )
