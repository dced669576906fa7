"""Fulfillment's side of a large SIM batch: one production order of N SIMs (100,000 by
default) from the vendor's file to the partner's stock, in seconds and peak memory.

The stack runs in-process (Flask app mounted into `responses`, as the test suite does).
The clock is driven by hand: the vendor accepts, then delivers its output file (written,
hashed and stored: timed as "vendor file"); the load step sends it to the MVNE with
`PUT /mvne/v1/simBatches/{batchNumber}`, the MVNE checks and loads the rows, and on its
201 fulfillment puts the N SIMs into the partner's stock in one transaction (all of it
timed as "load"; `benchmarks/sim_batch.py` measures the MVNE's part alone, served by
gunicorn).

Peak memory is the process's peak RSS (`ru_maxrss`) before and after the batch: the whole
stack is one process here, so the difference is what the batch costs both roles.

    python benchmarks/fulfillment_batch.py [--sims 100000]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import responses

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulators.core.admin import reset_state  # noqa: E402
from simulators.core.config import Settings  # noqa: E402
from simulators.core.inprocess import mount  # noqa: E402
from simulators.core.tenancy import derive_api_key  # noqa: E402
from simulators.fulfillment import model, mvne  # noqa: E402
from simulators.stack import create_app, runtime_of  # noqa: E402

T0 = 1772442000.0  # 2026-03-02T09:00:00Z, as in the tests
SECRET = "bench-secret-key"
BASE_URL = "http://127.0.0.1:8700"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_put(spent: list[float]) -> None:
    """Count the time the load step waits on the MVNE's answer to the PUT."""
    load_batch = mvne.load_batch

    def timed(*args: Any, **kwargs: Any) -> mvne.Answer:
        started = time.perf_counter()
        try:
            return load_batch(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    mvne.load_batch = timed  # type: ignore[assignment]


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
    put_s: list[float] = []
    timed_put(put_s)
    runtime.clock.set(T0, frozen=True)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mount(mock, app, BASE_URL)
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
    print(f"{args.sims:,} SIMs, {settings.db_url.split(':')[0]}")
    print(f"  vendor file (write, hash, store): {vendor_s:6.2f} s")
    print(f"  load (PUT, the MVNE's load, the stock): {load_s:6.2f} s")
    print(f"    of which the PUT until the MVNE answered: {sum(put_s):6.2f} s")
    print(f"  peak RSS: {before:.0f} MB before the batch, {peak_rss_mb():.0f} MB after")
    runtime.close()


if __name__ == "__main__":
    main()
