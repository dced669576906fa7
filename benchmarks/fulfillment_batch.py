"""Fulfillment's side of a large SIM batch: one production order of N SIMs (100,000 by
default) from the vendor's file to the partner's stock, in seconds and peak memory.

The stack runs in-process (Flask app mounted into `responses`, as the test suite does).
The clock is driven by hand: the vendor accepts, then delivers its output file (written,
hashed and stored: timed as "vendor file"); the load step sends it to the MVNE with
`PUT /mvne/v1/simBatches/{batchNumber}` and, on the MVNE's 201, puts the N SIMs into the
partner's stock in one transaction (timed as "load"). Until the MVNE serves that endpoint
the PUT is answered by an acceptor that reads the body, hashes it and answers the
interface's `SimBatch`, so the figure is fulfillment's own work; once it does, the real
MVNE loads it and its time is included.

Peak memory is the process's peak RSS (`ru_maxrss`), before and after. The interface's
target for the MVNE's load (<= 10 s, <= 200 MB) is the budget fulfillment must stay well
inside.

    python benchmarks/fulfillment_batch.py [--sims 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import responses
from requests import PreparedRequest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulators.core.admin import reset_state  # noqa: E402
from simulators.core.config import Settings  # noqa: E402
from simulators.core.contract import load_contract  # noqa: E402
from simulators.core.inprocess import mount  # noqa: E402
from simulators.core.tenancy import derive_api_key  # noqa: E402
from simulators.fulfillment import model  # noqa: E402
from simulators.stack import create_app, runtime_of  # noqa: E402

T0 = 1772442000.0  # 2026-03-02T09:00:00Z, as in the tests
SECRET = "bench-secret-key"
BASE_URL = "http://127.0.0.1:8700"
BATCHES = re.compile(re.escape(BASE_URL) + r"/mvne/v1/simBatches/([^/?]+)$")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mvne_loads_batches() -> bool:
    paths = load_contract("mvne").document.get("paths", {})
    return any(re.fullmatch(r"/v1/simBatches/\{[^}]+\}", path) for path in paths)


def acceptor(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
    """Reads the file and answers 201 SimBatch, as the interface specifies (no checks)."""
    match = BATCHES.fullmatch((request.url or "").split("?")[0])
    assert match is not None
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    answer = {
        "id": match[1],
        "href": f"{BASE_URL}/mvne/v1/simBatches/{match[1]}",
        "@type": "SimBatch",
        "batchNumber": match[1],
        "sha256": hashlib.sha256(body).hexdigest(),
        "loadedAt": "2026-03-02T09:00:00.000Z",
    }
    return 201, {"Content-Type": "application/json"}, json.dumps(answer)


class Routes:
    """The stack's in-process routes, collected so the batch path can be put in front
    (`responses` pops a route when two match one request)."""

    def __init__(self) -> None:
        self.callbacks: dict[str, tuple[Any, Callable[[PreparedRequest], Any]]] = {}

    def add_callback(
        self, method: str, pattern: Any, callback: Callable[[PreparedRequest], Any]
    ) -> None:
        self.callbacks[method] = (pattern, callback)


def routed(
    forward: Callable[[PreparedRequest], Any], real_mvne: bool
) -> Callable[[PreparedRequest], Any]:
    def answer(request: PreparedRequest) -> Any:
        url = (request.url or "").split("?")[0]
        if not real_mvne and request.method == "PUT" and BATCHES.fullmatch(url):
            return acceptor(request)
        return forward(request)

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=100_000)
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="handoff-bench-")
    settings = Settings(
        db_url=os.environ.get("HANDOFF_DB") or f"sqlite:///{directory}/state.db",
        secret_key=SECRET,
        background=False,
    )
    app = create_app(settings)
    runtime = runtime_of(app)
    reset_state(runtime, None)
    runtime.clock.set(T0, frozen=True)
    real_mvne = mvne_loads_batches()
    routes = Routes()
    mount(routes, app, BASE_URL)  # type: ignore[arg-type]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method, (pattern, forward) in routes.callbacks.items():
            mock.add_callback(method, pattern, callback=routed(forward, real_mvne))
        client = app.test_client()
        headers = {"X-API-Key": derive_api_key(SECRET, "mvno-alpha")}
        created = client.post(
            "/fulfillment/v1/productionOrders",
            json={"profileType": "UICC", "quantity": args.sims},
            headers=headers,
        )
        assert created.status_code == 201, created.get_data(as_text=True)
        order_id = created.get_json()["id"]
        before = peak_rss_mb()
        runtime.advance(model.VENDOR_ACCEPT_S)
        started = time.perf_counter()
        runtime.clock.set(runtime.clock.now() + model.PRODUCTION_S["UICC"])
        runtime.tasks.run_due(runtime, limit=1)  # the vendor delivers; the load is queued
        vendor_s = time.perf_counter() - started
        started = time.perf_counter()
        runtime.settle()  # the load: PUT to the MVNE, then the stock
        load_s = time.perf_counter() - started
        order = client.get(f"/fulfillment/v1/productionOrders/{order_id}", headers=headers)
        body: dict[str, Any] = order.get_json()
        stock = client.get("/fulfillment/v1/sims?limit=1", headers=headers)
    assert body["state"] == "loaded", body
    assert int(stock.headers["X-Total-Count"]) == args.sims
    mvne = "the real MVNE" if real_mvne else "an acceptor standing in for the MVNE"
    print(f"{args.sims:,} SIMs, {settings.db_url.split(':')[0]}, loaded by {mvne}")
    print(f"  vendor file (write, hash, store): {vendor_s:6.2f} s")
    print(f"  load (PUT, stock in one transaction): {load_s:6.2f} s")
    print(f"  peak RSS: {before:.0f} MB before the batch, {peak_rss_mb():.0f} MB after")
    runtime.close()


if __name__ == "__main__":
    main()
