"""Bill run throughput: one bill run over N postpaid subscribers with usage, in bills/s.

The stack runs in-process (Flask app mounted into `responses`, as the test suite
does), so the bill run's calls to the MVNE (subscriptions, offerings, rated usage:
paged, 1,000 a page) and to the tax engine (batches of up to 100 quotes) are real
HTTP requests through the contracts, served without sockets. `--tax standin` (the
default) answers the quotes with the contract-shaped stand-in of
`tests/billing/conftest.py`, which does little work, so the figure is mostly billing's
own; `--tax engine` lets the stack's own tax engine quote them (placing each address,
taxing every level, storing each quote), in the same process and on the same CPUs.

Seeding: 10,000 subscriptions through the MVNE's HTTP API (order, network
provisioning, polling) would take far longer than the run being measured, so the
subscriptions, their rated usage and the active billing accounts are written
straight into the store, in bulk, as rows of the MVNE's and billing's model tables
(the shapes `create_product`, `charge_usage` and `create_account` write). Only the
bill run is timed: it reads all of that back through the MVNE's HTTP contract.

Target: >= 500 bills/s on SQLite. `HANDOFF_DB=postgresql+psycopg://...` runs it on
PostgreSQL instead. Besides bills/s (wall time) it prints the CPU time the process
spent per bill (all its threads), the steadier figure on a shared machine.

    python benchmarks/billing.py [--subscribers 10000] [--usage 3] [--tax standin|engine]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import responses
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from simulators.billing import model as billing  # noqa: E402
from simulators.billing import mvne as mvne_client  # noqa: E402
from simulators.billing import steps, taxes  # noqa: E402
from simulators.core.admin import reset_state  # noqa: E402
from simulators.core.config import Settings  # noqa: E402
from simulators.core.inprocess import mount  # noqa: E402
from simulators.mvne import model as mvne  # noqa: E402
from simulators.stack import create_app, runtime_of  # noqa: E402
from simulators.tax import model as tax_model  # noqa: E402

PARTNER = "mvno-bench"
OFFERING = "po-us-data"
T0 = 1772442000.0  # 2026-03-02T09:00:00Z, as in the tests
SECRET = "test-secret-key"  # the tax stand-in checks the key derived from the tests' secret
ADDRESS = {
    "line1": "1 Main St",
    "city": "Springfield",
    "region": "IL",
    "postalCode": "62701-1234",
    "country": "US",
}


def _tax_standin() -> object:
    spec = importlib.util.spec_from_file_location(
        "billing_tax_standin", ROOT / "tests" / "billing" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def seed(runtime: object, subscribers: int, usage_each: int) -> str:
    """The bench partner's subscriptions, usage and billing accounts; return the run id."""
    rt = runtime  # type: ignore[assignment]
    client = rt.app.test_client()  # type: ignore[attr-defined]
    answer = client.post(
        "/__admin/partners",
        json={
            "id": PARTNER,
            "name": "Bench Wireless",
            "agreement": {
                "offerings": ["po-us-data"],
                "markets": ["US"],
                "capabilities": mvne.ALL_CAPABILITIES,
                "simPoolSize": 1,
            },
        },
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    kinds = ("data", "voice", "sms")
    with rt.store.write() as conn:  # type: ignore[attr-defined]
        offering = conn.execute(
            select(mvne.offering_table).where(mvne.offering_table.c.id == OFFERING)
        ).one()
        products, usage, accounts = [], [], []
        for n in range(subscribers):
            product_id = f"bench-product-{n:06d}"
            products.append(
                {
                    "id": product_id,
                    "partner_id": PARTNER,
                    "order_id": "bench-order",
                    "iccid": f"8919{n:015d}",
                    "imsi": f"00101{n:010d}",
                    "msisdn": f"+1999{n:07d}",
                    "offering_id": OFFERING,
                    "market": "US",
                    "currency": "USD",
                    "status": "active",
                    "balance_minor": 100_000,
                    "balance_barred": False,
                    "network_service_id": None,
                    "network_barring": "none",
                    "start_date": T0,
                    "updated_at": T0,
                }
            )
            for k in range(usage_each):
                kind = kinds[k % 3]
                rate = mvne.rate_of(offering, kind)
                usage.append(
                    {
                        "id": f"bench-usage-{n:06d}-{k}",
                        "partner_id": PARTNER,
                        "product_id": product_id,
                        "external_id": f"bench-{n}-{k}",
                        "msisdn": f"+1999{n:07d}",
                        "usage_type": kind,
                        "usage_date": T0 + k,
                        "quantity": 3 + k,
                        "granted_quantity": 3 + k,
                        "unit_price_minor": rate,
                        "charge_minor": rate * (3 + k),
                        "currency": "USD",
                        "balance_after_minor": 100_000,
                        "status": "rated",
                        "reason": None,
                        "barred": False,
                        "rated_at": T0 + k,
                    }
                )
            accounts.append(
                {
                    "id": f"bench-account-{n:06d}",
                    "partner_id": PARTNER,
                    "name": f"Subscriber {n}",
                    "product_id": product_id,
                    "rating_type": "postpaid",
                    "currency": "USD",
                    "credit_limit_minor": None,
                    "customer_type": "B2C",
                    "tax_exemption": [],
                    "place": ADDRESS,
                    "bill_cycle_day": 1,
                    "state": billing.ACTIVE,
                    "state_reason": None,
                    "dunning_stage": "none",
                    "service_status": "active",
                    "created_at": T0,
                }
            )
        conn.execute(mvne.product_table.insert(), products)
        conn.execute(mvne.usage_table.insert(), usage)
        conn.execute(billing.account_table.insert(), accounts)
        run, _created = billing.ensure_run(conn, PARTNER, 1, billing.period_at(T0, 1))
    return str(run.id)


PHASES = {
    "MVNE reads (HTTP)": (mvne_client, ("subscriptions", "rated_usage")),
    "ledger postings": (billing, ("cycle_charges",)),
    "tax quotes (HTTP)": (steps, ("_taxed_drafts",)),
    "bills issued (store)": (billing, ("issue_bills",)),
}


def time_phases() -> dict[str, float]:
    """Wrap the bill run's phases with wall-clock timers (the benchmark's own patching)."""
    spent = dict.fromkeys(PHASES, 0.0)
    for phase, (module, names) in PHASES.items():
        for name in names:
            original = getattr(module, name)

            def timed(*args: object, _f: Any = original, _p: str = phase, **kw: object) -> Any:
                started = time.perf_counter()
                try:
                    return _f(*args, **kw)
                finally:
                    spent[_p] += time.perf_counter() - started

            setattr(module, name, timed)
    return spent


def count_tax_calls() -> dict[str, int]:
    """Count billing's calls to the tax engine (the benchmark's own patching)."""
    calls = {"tax": 0}
    original = taxes.request_quotes

    def counted(*args: Any, **kw: Any) -> Any:
        calls["tax"] += 1
        return original(*args, **kw)

    taxes.request_quotes = counted  # type: ignore[assignment]
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--usage", type=int, default=3, help="usage records per subscriber")
    parser.add_argument(
        "--tax",
        choices=["standin", "engine"],
        default="standin",
        help="who quotes the tax: the tests' stand-in, or the stack's own tax engine",
    )
    args = parser.parse_args(argv)
    standin = _tax_standin()
    with tempfile.TemporaryDirectory(prefix="handoff-billing-bench-") as tmp:
        db_url = os.environ.get("HANDOFF_DB") or f"sqlite:///{tmp}/state.db"
        settings = Settings(db_url=db_url, secret_key=SECRET, background=False, state_dir=tmp)
        app = create_app(settings)
        runtime = runtime_of(app)
        runtime.app = app  # type: ignore[attr-defined]
        reset_state(runtime, None)
        runtime.clock.set(T0, frozen=True)
        started = time.perf_counter()
        run_id = seed(runtime, args.subscribers, args.usage)
        seeded_s = time.perf_counter() - started
        tax = standin.TaxEngine()  # type: ignore[attr-defined]
        routes = standin._Routes()  # type: ignore[attr-defined]
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            stack = mount(routes, app, "http://127.0.0.1:8700")  # type: ignore[arg-type]
            del stack
            for method, (pattern, forward) in routes.callbacks.items():

                def answer(request: object, forward: object = forward) -> object:
                    url = (getattr(request, "url", "") or "").split("?")[0]
                    if args.tax == "standin" and url in (
                        standin.QUOTES_URL,  # type: ignore[attr-defined]
                        standin.BATCHES_URL,  # type: ignore[attr-defined]
                    ):
                        return tax(request)
                    return forward(request)  # type: ignore[operator]

                mock.add_callback(method, pattern, callback=answer)
            with runtime.store.read() as conn:
                run = billing.load_run(conn, run_id)
            runtime.clock.set(run.period_end + 1, frozen=True)
            spent = time_phases()
            calls = count_tax_calls()
            started, cpu_started = time.perf_counter(), time.process_time()
            finished = steps.run_bill_run(runtime, run_id)
            elapsed = time.perf_counter() - started
            cpu_s = time.process_time() - cpu_started
            if args.tax == "engine":
                with runtime.store.read() as conn:
                    quotes = conn.execute(
                        select(func.count()).select_from(tax_model.quotes_table)
                    ).scalar_one()
            else:
                quotes = len(tax.requests)
            batches = calls["tax"]
        runtime.close()
    bills = int(finished.bills_issued)
    rate = bills / elapsed if elapsed else 0.0
    cpu_ms = cpu_s * 1000 / bills if bills else 0.0
    backend = "postgresql" if not db_url.startswith("sqlite") else "sqlite"
    verdict = "PASS" if rate >= 500 else "FAIL"
    print(
        f"{backend}, tax {args.tax}: {args.subscribers} subscribers x {args.usage} usage "
        f"records (seeded in {seeded_s:.1f} s); bill run issued {bills} bills in "
        f"{elapsed:.2f} s = {rate:,.0f} bills/s, {cpu_ms:.2f} ms CPU per bill; {quotes} tax "
        f"quotes in {batches} calls; failures {len(finished.failures)}; "
        f"target >= 500 bills/s {verdict}"
    )
    for phase, seconds in spent.items():
        print(f"  {phase:<22} {seconds:6.2f} s")
    print(json.dumps({"kind": "billing", "backend": backend, "tax": args.tax,
                      "subscribers": args.subscribers, "usagePerSubscriber": args.usage,
                      "bills": bills, "seconds": round(elapsed, 3),
                      "billsPerSecond": round(rate, 1), "cpuMsPerBill": round(cpu_ms, 3),
                      "taxQuotes": quotes, "taxCalls": batches,
                      "pass": rate >= 500}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
