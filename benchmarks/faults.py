"""The fault engine's cost on the hot path: GET subscription with 0 and with N rules that
concern the MVNE but match nothing, under `handoff up` (gunicorn, 2 workers).

Interleaved rounds (0 rules, N rules, 0 rules, ...) on one stack, so machine drift
touches both alike; prints req/s, p99 and CPU per request for each, and the ratio.
Target (issue: faults): N = 50 rules cost at most 10 % of req/s.

    python benchmarks/faults.py [--rules 50] [--rounds 3] [--duration 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import requests
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from run import PRODUCTS, Load, Loader, handoff_stack, prepare  # noqa: E402

console = Console()


def non_matching_rules(count: int) -> list[dict]:
    """Rules a GET subscription must look at (same role) and pass over: each names a
    partner that does not exist, several on the very operation being measured."""
    operations = ["getProduct", "listProducts", "createProductOrder", "getProductOrder"]
    return [
        {
            "id": f"bench-{n}",
            "match": {
                "role": "mvne",
                "operation": operations[n % len(operations)],
                "partner": f"no-such-partner-{n}",
            },
            "effect": {"type": "status", "status": 503},
        }
        for n in range(count)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args(argv)
    args.server = "gunicorn"
    with tempfile.TemporaryDirectory(prefix="handoff-faults-bench-") as tmp:
        workdir = Path(tmp)
        loader = Loader(args, workdir)
        results: dict[int, list] = {0: [], args.rules: []}
        with handoff_stack("gunicorn", args.workers, workdir) as (base, pid):
            loader.server_pid = pid
            prepared = prepare(base, 1000)
            load = Load("GET subscription", f"{base}{PRODUCTS}/{prepared.product_id}", "get",
                        prepared.api_key)  # fmt: skip
            for _ in range(args.rounds):
                for count in (0, args.rules):
                    requests.delete(f"{base}/__admin/faults", timeout=10).raise_for_status()
                    for rule in non_matching_rules(count):
                        requests.post(
                            f"{base}/__admin/faults", json=rule, timeout=10
                        ).raise_for_status()
                    loader.run(load, args.warmup)
                    result = loader.run(load, args.duration)
                    if result.errors or result.non_2xx:
                        raise SystemExit(f"errors under load: {result}")
                    results[count].append(result)
                    console.print(f"  {count:>3} rules: {result.rps:8.0f} req/s  "
                                  f"p99 {result.p99_ms:6.1f} ms  "
                                  f"CPU {result.cpu_ms_per_request:.3f} ms/req")  # fmt: skip
    summary = {}
    table = Table(title=f"Fault engine on GET subscription, {args.workers} gunicorn workers")
    for column in ("rules", "req/s (median)", "p99 ms (median)", "CPU ms/req (median)"):
        table.add_column(column)
    for count, runs in results.items():
        rps = statistics.median(r.rps for r in runs)
        p99 = statistics.median(r.p99_ms for r in runs)
        cpu = statistics.median(r.cpu_ms_per_request for r in runs)
        summary[count] = {"rps": round(rps, 1), "p99_ms": round(p99, 2), "cpu_ms": round(cpu, 3)}
        table.add_row(str(count), f"{rps:,.0f}", f"{p99:.1f}", f"{cpu:.3f}")
    console.print(table)
    cost = 1 - summary[args.rules]["rps"] / summary[0]["rps"]
    cpu_cost = summary[args.rules]["cpu_ms"] / summary[0]["cpu_ms"] - 1
    verdict = "PASS" if cost <= 0.10 else "FAIL"
    console.print(f"{args.rules} non-matching rules cost {cost:.1%} of req/s "
                  f"({cpu_cost:+.1%} CPU per request): target <= 10 % {verdict}")  # fmt: skip
    print(json.dumps({"kind": "faults", "rules": args.rules, "results": summary,
                      "rps_cost": round(cost, 4), "cpu_cost": round(cpu_cost, 4),
                      "pass": cost <= 0.10}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
