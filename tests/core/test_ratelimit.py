"""Partner rate limits as a partner meets them: 429 past the burst with an honest
Retry-After, RateLimit headers, a limit per partner and per API, changed at run time, and
one bucket shared by every process on the store (SQLite, PostgreSQL) or on Redis."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ORDERS,
    REDIS_URL,
    SIMS,
    T0,
    conforms,
    first_sims,
    needs_redis,
    order_body,
)
from flask import Flask
from flask.testing import FlaskClient
from mno_support import ALPHA_CLIENT, BRAVO_CLIENT, TOKEN, Network, basic, bearer
from sqlalchemy import func, select

from simulators.core import audit
from simulators.core.config import Settings
from simulators.core.ratelimit import RateLimit, RedisBuckets, StoreBuckets
from simulators.core.runtime import Runtime
from simulators.core.tenancy import get_partner, partners
from simulators.mvne.model import order_table
from simulators.stack import create_app, runtime_of

LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}
LIMITED = "mvno-limited"
MNO_SERVICES = "/mno/tmf-api/serviceInventory/v4/service"
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def onboard(
    client: FlaskClient, rate_limit: dict[str, Any] | None, partner_id: str = LIMITED
) -> dict[str, str]:
    """Onboard an MVNO with this rate limit; return its headers."""
    agreement: dict[str, Any] = {
        "offerings": ["po-gb-payg"],
        "markets": ["GB"],
        "capabilities": ["QUERY_INVENTORY", "SUBMIT_ORDER", "ACTIVATE_SIM"],
        "simPoolSize": 5,
    }
    if rate_limit is not None:
        agreement["rateLimit"] = rate_limit
    response = client.post(
        "/__admin/partners",
        json={"id": partner_id, "name": "Limited Mobile", "agreement": agreement},
        environ_base=LOOPBACK,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return {"X-API-Key": response.get_json()["apiKey"]}


def put_limit(client: FlaskClient, partner_id: str, rate_limit: Any) -> Any:
    return client.put(
        f"/__admin/partners/{partner_id}/rate-limit",
        json={"rateLimit": rate_limit},
        environ_base=LOOPBACK,
    )


def sims(client: FlaskClient, headers: dict[str, str]) -> Any:
    return client.get(f"{SIMS}?limit=1", headers=headers)


def rate_headers(response: Any) -> dict[str, str]:
    return {name: response.headers[name] for name in RATE_HEADERS if name in response.headers}


def assert_rate_limited(response: Any, operation_id: str, role: str = "mvne") -> dict[str, Any]:
    assert response.status_code == 429, response.get_data(as_text=True)
    body = conforms(response, role, operation_id)
    assert body["code"] == "RATE_LIMITED"
    assert body["retryable"] is True
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["Retry-After"]) >= 1
    return dict(body)


def count(runtime: Runtime, table: Any) -> int:
    with runtime.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# --- what a limited partner sees -------------------------------------------------------------


def test_past_the_burst_a_request_is_429_with_a_problem_naming_the_limit(
    client: FlaskClient,
) -> None:
    limited = onboard(client, {"requestsPerSecond": 1, "burst": 3})
    answers = [sims(client, limited) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [rate_headers(answer) for answer in answers] == [
        {"RateLimit-Limit": "3", "RateLimit-Remaining": "2", "RateLimit-Reset": "1"},
        {"RateLimit-Limit": "3", "RateLimit-Remaining": "1", "RateLimit-Reset": "2"},
        {"RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "3"},
    ]
    refused = sims(client, limited)
    body = assert_rate_limited(refused, "listSims")
    assert refused.headers["Retry-After"] == "1"
    assert body["rateLimit"] == {"requestsPerSecond": 1, "burst": 3}
    assert "3 requests at once" in body["detail"] and "1 per second" in body["detail"]
    assert body["correlationId"] == refused.headers["X-Correlation-ID"]


def test_a_retry_after_retry_after_seconds_succeeds_and_not_before(
    client: FlaskClient, runtime: Runtime
) -> None:
    limited = onboard(client, {"requestsPerSecond": 0.25, "burst": 2})
    assert [sims(client, limited).status_code for _ in range(2)] == [200, 200]
    refused = sims(client, limited)
    assert_rate_limited(refused, "listSims")
    wait = int(refused.headers["Retry-After"])
    assert wait == 4
    runtime.clock.advance(wait - 1)
    early = sims(client, limited)
    assert_rate_limited(early, "listSims")
    assert early.headers["Retry-After"] == "1", "the wait shrinks as the clock moves"
    runtime.clock.advance(1)
    retried = sims(client, limited)
    assert retried.status_code == 200
    assert retried.headers["RateLimit-Remaining"] == "0"


def test_a_fractional_rate_rounds_retry_after_up_to_a_whole_second(
    client: FlaskClient, runtime: Runtime
) -> None:
    limited = onboard(client, {"requestsPerSecond": 3, "burst": 1})
    assert sims(client, limited).status_code == 200
    refused = sims(client, limited)
    assert refused.headers["Retry-After"] == "1"  # one third of a second, said honestly
    runtime.clock.advance(1)
    assert sims(client, limited).status_code == 200


def test_every_answer_to_a_limited_partner_carries_the_headers_and_others_get_none(
    client: FlaskClient, alpha: dict[str, str]
) -> None:
    limited = onboard(client, {"requestsPerSecond": 1, "burst": 5})
    missing = client.get(f"{ORDERS}/no-such-order", headers=limited)
    assert missing.status_code == 404
    assert rate_headers(missing)["RateLimit-Remaining"] == "4"
    plain = sims(client, alpha)
    assert plain.status_code == 200
    assert rate_headers(plain) == {} and "Retry-After" not in plain.headers


def test_one_partners_limit_leaves_other_partners_alone(
    client: FlaskClient, alpha: dict[str, str], bravo: dict[str, str]
) -> None:
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 1})
    other = onboard(client, {"requestsPerSecond": 0.01, "burst": 1}, partner_id="mvno-other")
    assert sims(client, limited).status_code == 200
    assert_rate_limited(sims(client, limited), "listSims")
    assert sims(client, other).status_code == 200
    for _ in range(20):
        assert sims(client, alpha).status_code == 200
        assert sims(client, bravo).status_code == 200


def test_a_refused_request_changes_nothing_and_is_refused_before_its_body_is_read(
    client: FlaskClient, runtime: Runtime
) -> None:
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 1})
    iccid = first_sims(client, limited)[0]  # the one request the bucket holds
    orders_before = count(runtime, order_table)
    refused = client.post(ORDERS, json=order_body(iccid, "limited-1"), headers=limited)
    assert_rate_limited(refused, "createProductOrder")
    not_json = client.post(
        ORDERS, data="{not json", headers={**limited, "Content-Type": "application/json"}
    )
    assert_rate_limited(not_json, "createProductOrder")
    assert count(runtime, order_table) == orders_before


def test_a_request_refused_later_in_the_pipeline_still_counts(client: FlaskClient) -> None:
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 2})
    bad = client.post(ORDERS, json={"externalId": "x"}, headers=limited)
    assert bad.status_code == 400
    assert bad.headers["RateLimit-Remaining"] == "1"
    assert sims(client, limited).status_code == 200
    assert_rate_limited(sims(client, limited), "listSims")


def test_unauthenticated_requests_count_against_no_one(client: FlaskClient) -> None:
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 1})
    for key in ("hk_mvno-limited_0000", ""):
        assert sims(client, {"X-API-Key": key}).status_code == 401
    assert sims(client, limited).status_code == 200


def test_an_onboarded_partner_without_a_limit_is_unlimited(client: FlaskClient) -> None:
    unlimited = onboard(client, None)
    for _ in range(30):
        answer = sims(client, unlimited)
        assert answer.status_code == 200 and rate_headers(answer) == {}


# --- the agreement and the control plane -------------------------------------------------------


@pytest.mark.parametrize(
    ("rate_limit", "field"),
    [
        ({"requestsPerSecond": 0, "burst": 1}, "agreement.rateLimit.requestsPerSecond"),
        ({"requestsPerSecond": -2, "burst": 1}, "agreement.rateLimit.requestsPerSecond"),
        ({"requestsPerSecond": "fast", "burst": 1}, "agreement.rateLimit.requestsPerSecond"),
        ({"requestsPerSecond": 1e9, "burst": 1}, "agreement.rateLimit.requestsPerSecond"),
        ({"requestsPerSecond": 1, "burst": 0}, "agreement.rateLimit.burst"),
        ({"requestsPerSecond": 1, "burst": 2.5}, "agreement.rateLimit.burst"),
        ({"requestsPerSecond": 1}, "agreement.rateLimit.burst"),
        ({"burst": 1}, "agreement.rateLimit.requestsPerSecond"),
        ({"requestsPerSecond": 1, "burst": 1, "window": 60}, "agreement.rateLimit"),
        (5, "agreement.rateLimit"),
    ],
)
def test_onboarding_with_a_bad_rate_limit_is_400_naming_the_field_and_creates_nothing(
    client: FlaskClient, runtime: Runtime, rate_limit: Any, field: str
) -> None:
    partners_before = count(runtime, partners)
    response = client.post(
        "/__admin/partners",
        json={
            "id": LIMITED,
            "name": "Limited Mobile",
            "agreement": {
                "offerings": ["po-gb-payg"],
                "markets": ["GB"],
                "capabilities": ["QUERY_INVENTORY"],
                "rateLimit": rate_limit,
            },
        },
        environ_base=LOOPBACK,
    )
    body = conforms(response, "admin", "onboardPartner")
    assert response.status_code == 400
    assert body["field"] == field, body
    assert count(runtime, partners) == partners_before
    assert client.get(f"/__admin/partners/{LIMITED}", environ_base=LOOPBACK).status_code == 404


def test_the_limit_changes_at_run_time_and_only_the_limit(
    client: FlaskClient, runtime: Runtime
) -> None:
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 1})
    with runtime.store.read() as conn:
        agreement_before = get_partner(conn, LIMITED).agreement
    assert sims(client, limited).status_code == 200
    assert_rate_limited(sims(client, limited), "listSims")

    changed = put_limit(client, LIMITED, {"requestsPerSecond": 0.5, "burst": 4})
    assert conforms(changed, "admin", "setPartnerRateLimit") == {
        "partnerId": LIMITED,
        "role": "mvne",
        "rateLimit": {"requestsPerSecond": 0.5, "burst": 4},
    }
    # The bucket starts full under the new limit.
    answers = [sims(client, limited) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200] * 4
    assert answers[0].headers["RateLimit-Limit"] == "4"
    assert_rate_limited(sims(client, limited), "listSims")
    with runtime.store.read() as conn:
        agreement_after = get_partner(conn, LIMITED).agreement
    assert agreement_after == {
        **agreement_before,
        "rateLimit": {"requestsPerSecond": 0.5, "burst": 4},
    }
    shown = client.get(f"/__admin/partners/{LIMITED}", environ_base=LOOPBACK).get_json()
    assert shown["agreement"]["rateLimit"] == {"requestsPerSecond": 0.5, "burst": 4}

    lifted = put_limit(client, LIMITED, None)
    assert conforms(lifted, "admin", "setPartnerRateLimit")["rateLimit"] is None
    for _ in range(10):
        answer = sims(client, limited)
        assert answer.status_code == 200 and rate_headers(answer) == {}


def test_a_limit_change_is_audited(client: FlaskClient, runtime: Runtime) -> None:
    onboard(client, {"requestsPerSecond": 1, "burst": 2})
    changed = client.put(
        f"/__admin/partners/{LIMITED}/rate-limit",
        json={"rateLimit": {"requestsPerSecond": 10, "burst": 20}},
        headers={"X-Correlation-ID": "limit-change-1"},
        environ_base=LOOPBACK,
    )
    assert changed.status_code == 200
    with runtime.store.read() as conn:
        _, records = audit.query(conn, correlation_id="limit-change-1")
    assert [(r["action"], r["actor"], r["partner_id"]) for r in records] == [
        ("partner.rateLimitChanged", "admin", LIMITED)
    ]
    assert records[0]["details"] == {
        "from": {"requestsPerSecond": 1, "burst": 2},
        "to": {"requestsPerSecond": 10, "burst": 20},
    }


@pytest.mark.parametrize(
    ("rate_limit", "field"),
    [
        ({"requestsPerSecond": 0, "burst": 1}, "rateLimit.requestsPerSecond"),
        ({"requestsPerSecond": 1, "burst": -1}, "rateLimit.burst"),
        ({"requestsPerSecond": 1}, "rateLimit.burst"),
        ("unlimited", "rateLimit"),
    ],
)
def test_a_bad_limit_change_is_400_naming_the_field_and_keeps_the_limit(
    client: FlaskClient, runtime: Runtime, rate_limit: Any, field: str
) -> None:
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 1})
    assert sims(client, limited).status_code == 200
    response = put_limit(client, LIMITED, rate_limit)
    body = conforms(response, "admin", "setPartnerRateLimit")
    assert response.status_code == 400
    assert body["field"] == field, body
    assert_rate_limited(sims(client, limited), "listSims")
    with runtime.store.read() as conn:
        assert get_partner(conn, LIMITED).agreement["rateLimit"] == {
            "requestsPerSecond": 0.01,
            "burst": 1,
        }


def test_a_limit_change_for_an_unknown_or_terminated_partner_is_refused(
    client: FlaskClient,
) -> None:
    unknown = put_limit(client, "mvno-nobody", {"requestsPerSecond": 1, "burst": 1})
    assert conforms(unknown, "admin", "setPartnerRateLimit")["code"] == "NOT_FOUND"
    onboard(client, None)
    client.post(f"/__admin/partners/{LIMITED}/terminate", environ_base=LOOPBACK)
    terminated = put_limit(client, LIMITED, {"requestsPerSecond": 1, "burst": 1})
    assert terminated.status_code == 409
    assert conforms(terminated, "admin", "setPartnerRateLimit")["code"] == "PARTNER_TERMINATED"


def test_the_mno_limits_the_mvne_platform_on_its_own_api_only(
    client: FlaskClient, mno_headers: dict[str, str], alpha: dict[str, str]
) -> None:
    changed = put_limit(client, "mvne-platform", {"requestsPerSecond": 0.01, "burst": 2})
    assert changed.get_json()["role"] == "mno"
    assert client.get(MNO_SERVICES, headers=mno_headers).status_code == 200
    assert client.get(MNO_SERVICES, headers=mno_headers).status_code == 200
    assert_rate_limited(client.get(MNO_SERVICES, headers=mno_headers), "listServices", "mno")
    for _ in range(5):
        assert sims(client, alpha).status_code == 200


def test_a_reset_forgets_the_buckets_and_the_limits_of_reference_partners(
    client: FlaskClient, runtime: Runtime, alpha: dict[str, str]
) -> None:
    put_limit(client, "mvno-alpha", {"requestsPerSecond": 0.01, "burst": 1})
    assert sims(client, alpha).status_code == 200
    assert sims(client, alpha).status_code == 429
    assert client.post("/__admin/reset", environ_base=LOOPBACK).status_code == 200
    for _ in range(5):
        assert sims(client, alpha).status_code == 200


# --- one bucket for every process -----------------------------------------------------------


def _take_concurrently(buckets: list[Any], partner_id: str, limit: RateLimit, calls: int) -> int:
    def take(index: int) -> bool:
        decision = buckets[index % len(buckets)].take("mvne", partner_id, limit)
        assert decision is not None
        return bool(decision.admitted)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return sum(pool.map(take, range(calls)))


@pytest.fixture
def second_stack(settings: Settings) -> Iterator[Flask]:
    """Another process's view of the same store: its own runtime, engine and caches."""
    app = create_app(settings)
    yield app
    runtime_of(app).close()


def test_two_stacks_on_one_store_share_one_bucket(client: FlaskClient, second_stack: Flask) -> None:
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 4})
    other = second_stack.test_client()
    answers = [
        (client if i % 2 else other).get(f"{SIMS}?limit=1", headers=limited) for i in range(6)
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 429, 429]
    assert [answer.headers["RateLimit-Remaining"] for answer in answers] == [
        "3",
        "2",
        "1",
        "0",
        "0",
        "0",
    ]


def test_concurrent_requests_on_two_runtimes_never_lose_a_spent_token(
    runtime: Runtime, settings: Settings
) -> None:
    other = Runtime(settings)
    try:
        buckets = [StoreBuckets(runtime.store), StoreBuckets(other.store)]
        limit = RateLimit(requests_per_second=0.0001, burst=25)
        assert _take_concurrently(buckets, "mvno-concurrent", limit, 80) == 25
    finally:
        other.close()


# --- Redis ---------------------------------------------------------------------------------


@pytest.fixture
def redis_stack(settings: Settings, runtime: Runtime) -> Iterator[Flask]:
    """The stack with its buckets in Redis, on the session's store."""
    app = create_app(settings.with_overrides(redis_url=REDIS_URL))
    redis_runtime = runtime_of(app)
    redis_runtime.rate_limits.clear(None)
    yield app
    redis_runtime.rate_limits.clear(None)
    redis_runtime.close()


@pytest.mark.redis
@needs_redis
def test_redis_buckets_refuse_past_the_burst_and_refill_on_the_simulated_clock(
    redis_stack: Flask,
) -> None:
    client = redis_stack.test_client()
    runtime = runtime_of(redis_stack)
    assert isinstance(runtime.rate_limits, RedisBuckets)
    limited = onboard(client, {"requestsPerSecond": 0.5, "burst": 2})
    assert [sims(client, limited).status_code for _ in range(2)] == [200, 200]
    refused = sims(client, limited)
    assert_rate_limited(refused, "listSims")
    assert refused.headers["Retry-After"] == "2"
    runtime.clock.advance(1)
    assert sims(client, limited).status_code == 429
    runtime.clock.advance(1)
    assert sims(client, limited).status_code == 200
    assert runtime.clock.now() == T0 + 2


@pytest.mark.redis
@needs_redis
def test_redis_buckets_are_shared_by_two_stacks_and_lose_no_token(
    redis_stack: Flask, settings: Settings
) -> None:
    other = Runtime(settings.with_overrides(redis_url=REDIS_URL))
    try:
        buckets = [runtime_of(redis_stack).rate_limits, other.rate_limits]
        limit = RateLimit(requests_per_second=0.0001, burst=25)
        assert _take_concurrently(buckets, "mvno-concurrent", limit, 80) == 25
    finally:
        other.close()


@pytest.mark.redis
@needs_redis
def test_redis_buckets_start_full_after_a_limit_change_and_after_a_reset(
    redis_stack: Flask,
) -> None:
    client = redis_stack.test_client()
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 1})
    assert sims(client, limited).status_code == 200
    assert sims(client, limited).status_code == 429
    put_limit(client, LIMITED, {"requestsPerSecond": 0.01, "burst": 1})
    assert sims(client, limited).status_code == 200
    assert sims(client, limited).status_code == 429
    assert client.post("/__admin/reset", environ_base=LOOPBACK).status_code == 200
    limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 1})
    assert sims(client, limited).status_code == 200


def test_the_redis_namespace_follows_the_store(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    """Stacks on one store share buckets; stacks on different stores never do."""
    same = RedisBuckets(REDIS_URL, runtime.store, runtime.clock)
    other_store = Runtime(settings.with_overrides(db_url=f"sqlite:///{tmp_path / 'other.db'}"))
    try:
        different = RedisBuckets(REDIS_URL, other_store.store, other_store.clock)
        assert same.prefix == RedisBuckets(REDIS_URL, runtime.store, runtime.clock).prefix
        assert same.prefix != different.prefix
    finally:
        other_store.close()


def test_unreachable_redis_lets_requests_through_and_says_so(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 1 on loopback refuses at once: nothing listens there.
    app = create_app(settings.with_overrides(redis_url="redis://127.0.0.1:1/0"))
    try:
        client = app.test_client()
        limited = onboard(client, {"requestsPerSecond": 0.01, "burst": 1})
        with caplog.at_level("WARNING", logger="handoff.ratelimit"):
            answers = [sims(client, limited) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [200, 200, 200]
        assert all(rate_headers(answer) == {} for answer in answers)
        assert "rate-limit buckets unreachable" in caplog.text
    finally:
        runtime_of(app).close()


def test_a_camara_client_s_limit_holds_for_its_tokens_and_its_token_requests(
    client: FlaskClient, runtime: Runtime
) -> None:
    network = Network(client, runtime)
    token = network.token("sim-swap")
    assert (
        put_limit(client, ALPHA_CLIENT, {"requestsPerSecond": 0.5, "burst": 2}).status_code == 200
    )

    def check(access_token: str) -> Any:
        return client.post(
            "/mno/sim-swap/v2/check",
            json={"phoneNumber": "+447700900001"},
            headers=bearer(access_token),
        )

    assert [check(token).status_code != 429 for _ in range(2)] == [True, True]
    refused = check(token)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    asked = client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "sim-swap"},
        headers=basic(ALPHA_CLIENT),
    )
    assert asked.status_code == 429  # the same client's bucket, whichever API it calls
    # Another client, and a caller with a token that does not check out, spend nothing of it.
    assert check(network.token("sim-swap", client_id=BRAVO_CLIENT)).status_code != 429
    assert check("not-a-token").status_code == 401
