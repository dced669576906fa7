"""The stack as users run it: `handoff up` under gunicorn, two workers, stopped and restarted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from conftest import REDIS_URL, SECRET, api_key, needs_redis, order_body, publish

pytestmark = pytest.mark.live

MVNE = "/mvne/tmf-api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver(ThreadingHTTPServer):
    """A partner's webhook endpoint on loopback."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], dict]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(handler) -> None:  # noqa: N805 - http.server's convention
                length = int(handler.headers.get("Content-Length", 0))
                body = json.loads(handler.rfile.read(length))
                self.deliveries.append((dict(handler.headers), body))
                handler.send_response(204)
                handler.end_headers()

            def log_message(handler, *args: object) -> None:  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Stack:
    def __init__(self, settings, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            HANDOFF_DB=settings.db_url,
            HANDOFF_SECRET_KEY=SECRET,
            HANDOFF_STATE_DIR=str(tmp),
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *options: str) -> None:
        command = [
            sys.executable,
            "-m",
            "simulators.cli",
            "up",
            "--workers",
            "2",
            "--port",
            str(self.port),
            *options,
        ]
        self.process = subprocess.Popen(
            command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/__admin/health", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError("handoff up did not start:\n" + self.stop())

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=90)
        return output.decode()


@pytest.fixture
def stack(settings, runtime, tmp_path) -> Iterator[Stack]:
    runtime.clock.set(time.time(), frozen=False)  # live processes run on wall time
    runtime.store.dispose()
    live = Stack(settings, tmp_path)
    yield live
    if live.process and live.process.poll() is None:
        live.stop()


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("timed out")


def test_two_workers_one_order_signed_callbacks_and_state_kept_across_restart(stack):
    alpha = {"X-API-Key": api_key("mvno-alpha")}
    receiver = Receiver()
    stack.start()
    hub = requests.post(
        f"{stack.url}{MVNE}/productOrderingManagement/v4/hub",
        json={"callback": f"http://127.0.0.1:{receiver.server_address[1]}/hooks"},
        headers=alpha,
        timeout=5,
    )
    assert hub.status_code == 201
    sims = requests.get(
        f"{stack.url}{MVNE}/resourceInventoryManagement/v4/resource?limit=1",
        headers=alpha,
        timeout=5,
    )
    body = order_body(sims.json()[0]["iccid"], "live-1")

    def submit(_: int) -> requests.Response:
        return requests.post(
            f"{stack.url}{MVNE}/productOrderingManagement/v4/productOrder",
            json=body,
            headers=alpha,
            timeout=30,
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(submit, range(20)))
    assert {answer.status_code for answer in answers} == {201}
    order_ids = {answer.json()["id"] for answer in answers}
    assert len(order_ids) == 1
    order_url = f"{stack.url}{MVNE}/productOrderingManagement/v4/productOrder/{order_ids.pop()}"

    def completed():
        order = requests.get(order_url, headers=alpha, timeout=5).json()
        return order if order["state"] == "completed" else None

    order = wait_for(completed)
    wait_for(lambda: len(receiver.deliveries) >= 3)
    time.sleep(1)  # nothing more may arrive: each event exactly once
    ids = [headers["webhook-id"] for headers, _ in receiver.deliveries]
    assert len(ids) == len(set(ids)) == 3
    assert [body["event"]["productOrder"]["state"] for _, body in receiver.deliveries] == [
        "acknowledged",
        "inProgress",
        "completed",
    ]
    product_id = order["productOrderItem"][0]["product"]["id"]
    product_url = f"{stack.url}{MVNE}/productInventoryManagement/v4/product/{product_id}"
    before = requests.get(product_url, headers=alpha, timeout=5).json()
    orders_before = requests.get(
        f"{stack.url}{MVNE}/productOrderingManagement/v4/productOrder", headers=alpha, timeout=5
    ).json()

    output = stack.stop()
    assert "Partner API keys" in output and api_key("mvno-alpha") in output
    stack.start()
    assert requests.get(product_url, headers=alpha, timeout=5).json() == before
    assert (
        requests.get(
            f"{stack.url}{MVNE}/productOrderingManagement/v4/productOrder", headers=alpha, timeout=5
        ).json()
        == orders_before
    )
    balance = requests.get(
        f"{stack.url}{MVNE}/prepayBalanceManagement/v4/bucket/{before['id']}",
        headers=alpha,
        timeout=5,
    )
    assert balance.json()["remainingValue"] == {"amount": 5.0, "units": "GBP"}


CHAINED = 48  # concurrent requests that each wait on a peer of the same server


def test_many_requests_waiting_on_peers_of_the_same_server_all_get_their_answer(stack):
    """Network traffic is charged by the MNO calling the MVNE over HTTP, on the same
    server: 48 of them at once, more than the two workers have CPUs or requests in
    compute at a time, are each rated once, and the balance moves by exactly their
    charges (none answered 502 while the MVNE charged it anyway)."""
    alpha = {"X-API-Key": api_key("mvno-alpha")}
    stack.start()
    iccid = requests.get(
        f"{stack.url}{MVNE}/resourceInventoryManagement/v4/resource?limit=1",
        headers=alpha,
        timeout=5,
    ).json()[0]["iccid"]
    created = requests.post(
        f"{stack.url}{MVNE}/productOrderingManagement/v4/productOrder",
        json=order_body(iccid, "chained-1"),
        headers=alpha,
        timeout=30,
    )
    order_url = f"{stack.url}{MVNE}/productOrderingManagement/v4/productOrder/"
    order_url += created.json()["id"]

    def completed():
        order = requests.get(order_url, headers=alpha, timeout=5).json()
        return order if order["state"] == "completed" else None

    product_id = wait_for(completed)["productOrderItem"][0]["product"]["id"]
    product = requests.get(
        f"{stack.url}{MVNE}/productInventoryManagement/v4/product/{product_id}",
        headers=alpha,
        timeout=5,
    ).json()

    def sms(_: int) -> requests.Response:
        return requests.post(
            f"{stack.url}/__admin/traffic",
            json={"msisdn": product["msisdn"], "usageType": "sms", "quantity": 1},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=CHAINED) as pool:
        answers = list(pool.map(sms, range(CHAINED)))
    assert [answer.status_code for answer in answers] == [201] * CHAINED
    assert {answer.json()["status"] for answer in answers} == {"rated"}
    charged = sum(round(answer.json()["charge"]["amount"] * 100) for answer in answers)
    bucket = requests.get(
        f"{stack.url}{MVNE}/prepayBalanceManagement/v4/bucket/{product_id}",
        headers=alpha,
        timeout=5,
    ).json()
    assert charged == CHAINED * 6  # 6p an SMS on po-gb-payg
    assert round(bucket["remainingValue"]["amount"] * 100) == 500 - charged


def test_up_applies_a_scenario_pack_before_serving(stack):
    stack.start("--scenario", "unmapped-iccid")
    rules = requests.get(f"{stack.url}/__admin/faults", timeout=5).json()
    assert [rule["source"] for rule in rules] == ["scenario:unmapped-iccid"]
    alpha = {"X-API-Key": api_key("mvno-alpha")}
    sims = requests.get(
        f"{stack.url}{MVNE}/resourceInventoryManagement/v4/resource?limit=1",
        headers=alpha,
        timeout=5,
    ).json()
    refused = requests.post(
        f"{stack.url}{MVNE}/productOrderingManagement/v4/productOrder",
        json=order_body(sims[0]["iccid"], "pack-1"),
        headers=alpha,
        timeout=5,
    )
    assert refused.status_code == 422 and refused.json()["code"] == "ICCID_UNMAPPED"
    output = stack.stop()
    assert "Scenario unmapped-iccid: 1 fault rules on" in output, output


def test_fault_rules_drop_real_connections_on_every_worker(stack):
    alpha = {"X-API-Key": api_key("mvno-alpha")}
    orders = f"{stack.url}{MVNE}/productOrderingManagement/v4/productOrder"
    stack.start()

    def add(effect: dict) -> None:
        rule = {"match": {"role": "mvne", "operation": "listProductOrders"}, "effect": effect}
        assert requests.post(f"{stack.url}/__admin/faults", json=rule, timeout=5).status_code == 201

    def clear() -> None:
        assert requests.delete(f"{stack.url}/__admin/faults", timeout=5).status_code == 200

    add({"type": "reset"})
    # Fresh connections land on either worker: every one of them applies the rule.
    for _ in range(6):
        with pytest.raises(requests.ConnectionError):
            requests.get(orders, headers=alpha, timeout=5)
    clear()
    assert requests.get(orders, headers=alpha, timeout=5).status_code == 200
    add({"type": "empty"})
    with pytest.raises(requests.ConnectionError):
        requests.get(orders, headers=alpha, timeout=5)
    clear()
    add({"type": "timeout", "holdSeconds": 2})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(orders, headers=alpha, timeout=0.5)
    clear()
    add({"type": "status", "status": 503, "retryAfter": 1})
    refused = requests.get(orders, headers=alpha, timeout=5)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
    clear()
    assert requests.get(orders, headers=alpha, timeout=5).status_code == 200
    output = stack.stop()
    assert "Traceback" not in output, output


@pytest.mark.parametrize(
    "buckets", ["store", pytest.param("redis", marks=[pytest.mark.redis, needs_redis])]
)
def test_two_workers_count_one_rate_limit_without_losing_a_request(stack, runtime, buckets):
    if buckets == "redis":
        stack.env["HANDOFF_REDIS_URL"] = REDIS_URL
    else:
        stack.env.pop("HANDOFF_REDIS_URL", None)
    stack.start()
    try:
        onboarded = requests.post(
            f"{stack.url}/__admin/partners",
            json={
                "id": "mvno-limited",
                "name": "Limited Mobile",
                "agreement": {
                    "offerings": ["po-gb-payg"],
                    "markets": ["GB"],
                    "capabilities": ["QUERY_INVENTORY"],
                    "simPoolSize": 5,
                    # One request per 1,000 s: nothing refills while the test runs.
                    "rateLimit": {"requestsPerSecond": 0.001, "burst": 5},
                },
            },
            timeout=30,
        )
        assert onboarded.status_code == 201, onboarded.text
        limited = {"X-API-Key": onboarded.json()["apiKey"]}

        def call(_: int) -> requests.Response:
            return requests.get(
                f"{stack.url}{MVNE}/resourceInventoryManagement/v4/resource?limit=1",
                headers=limited,
                timeout=30,
            )

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(call, range(24)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] * 5 + [429] * 19
        for answer in answers:
            assert answer.headers["RateLimit-Limit"] == "5"
            if answer.status_code == 429:
                assert answer.json()["code"] == "RATE_LIMITED"
                assert int(answer.headers["Retry-After"]) >= 1
    finally:
        stack.stop()
        if buckets == "redis":
            from simulators.core.ratelimit import RedisBuckets

            RedisBuckets(REDIS_URL, runtime.store, runtime.clock).clear(None)


EVENTS = 500
STORMED = 10  # the first ten events each go out STORM times under one webhook-id
STORM = 500


def test_a_callback_storm_into_the_sink_loses_nothing_across_a_restart(stack, runtime):
    """5,490 deliveries: five hundred events, ten of them stormed (five hundred deliveries
    each, a hundred a second); the server restarts (SIGTERM, as an operator would) in
    the middle, with two dispatcher processes taking turns by lease. Afterwards the sink
    holds every webhook-id, duplicates only of the stormed events and exactly as many as
    the storm asked for, every one signed."""
    stack.start("--dispatchers", "2")
    hub = requests.post(
        f"{stack.url}{MVNE}/productOrderingManagement/v4/hub",
        json={"callback": f"{stack.url}/__sink/live"},
        headers={"X-API-Key": api_key("mvno-alpha")},
        timeout=5,
    )
    assert hub.status_code == 201
    storm = {
        "match": {"role": "callbacks", "partner": "mvno-alpha"},
        "effect": {"type": "storm", "perSecond": 100, "seconds": STORM / 100},
        "dosage": {"firstN": STORMED},
    }
    assert requests.post(f"{stack.url}/__admin/faults", json=storm, timeout=5).status_code == 201
    publish(runtime, EVENTS)
    total = EVENTS + STORMED * (STORM - 1)
    sink_url = f"{stack.url}/__admin/sinks/live"

    def received() -> int:
        return requests.get(sink_url, timeout=10).json()["received"]

    wait_for(lambda: received() >= total // 4, timeout=240)
    stack.stop()
    stack.start("--dispatchers", "2")
    in_the_middle = received()
    assert in_the_middle < total, "the run ended before the restart"

    wait_for(lambda: received() >= total, timeout=480)
    summary = requests.get(sink_url, timeout=10).json()
    assert summary["received"] == total
    assert summary["uniqueWebhookIds"] == EVENTS
    assert summary["duplicates"] == STORMED * (STORM - 1)
    assert summary["invalidSignatures"] == summary["missingSignatures"] == 0
    endpoints = requests.get(f"{stack.url}/__admin/callbacks", timeout=10).json()
    [endpoint] = [item for item in endpoints if item["hubId"] == hub.json()["id"]]
    assert (endpoint["delivered"], endpoint["queued"], endpoint["retrying"]) == (total, 0, 0)


def test_card_data_sent_to_the_live_gateway_reaches_no_log_and_no_table(stack, runtime):
    from payments.conftest import METHODS, PAN, PAYMENTS, card_body
    from payments.test_card_data import traces_of_pan

    billing = {"X-API-Key": api_key("billing-merchant")}
    stack.start()
    methods = f"{stack.url}{METHODS}"
    refused = [
        requests.post(methods, json=card_body(memo=PAN), headers=billing, timeout=5),
        requests.post(methods, json=card_body(cvv="123"), headers=billing, timeout=5),
        requests.get(f"{stack.url}{PAYMENTS}/{PAN}", headers=billing, timeout=5),
        requests.get(f"{stack.url}{PAYMENTS}?account.id={PAN}", timeout=5),  # no key: 401
    ]
    assert [response.status_code for response in refused] == [422, 422, 422, 401]
    journal = f"{stack.url}/__admin/journal?role=payments"
    wait_for(lambda: len(requests.get(journal, timeout=5).json()) == len(refused))
    output = stack.stop()
    assert PAN not in output and "4111 1111" not in output
    assert traces_of_pan(runtime) == []
