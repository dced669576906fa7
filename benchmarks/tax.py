"""Live tax quotes per second: POST /tax/v1/quotes with 4 invoice lines each (plan, data
usage, activation, SIM) for a Springfield, IL ZIP+4 (every US level, E911 per line), under
`handoff up` (gunicorn, 2 workers, or `--server granian`), loaded by wrk
(benchmarks/wrk/tax.lua). `--batch N` sends the same quotes N at a time to
POST /tax/v1/quoteBatches instead, as the bill run does.

Each quote carries its own documentId; after each run the stored quotes are counted, so a
run that answered 2xx without storing (or stored twice) is caught. Prints quotes/s, p50/p99
(of the requests: with --batch, of a whole batch) and server CPU per quote for each round,
the median, and the verdict against the target.
Target (issue: tax engine): >= 1,000 quotes/s.

    python benchmarks/tax.py [--server gunicorn|granian] [--batch 0|N] [--rounds 3]
                             [--duration 10] [--connections 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from run import (  # noqa: E402
    BARE_PATH,
    HERE,
    Load,
    Loader,
    LoadResult,
    bare_server,
    handoff_stack,
    tree_cpu,
)

from simulators.core.tenancy import BILLING_PLATFORM, derive_api_key  # noqa: E402

console = Console()
QUOTES = "/tax/v1/quotes"
BATCHES = "/tax/v1/quoteBatches"
TAX_SCRIPT = HERE / "wrk" / "tax.lua"
TARGET_QPS = 1000.0


def quote_template() -> str:
    """The request, with `%s` where each request's documentId goes."""
    body: dict[str, Any] = {
        "documentId": "DOCUMENT_ID",
        "date": "2026-03-31",
        "currency": "USD",
        "customer": {"type": "B2C", "vatId": None, "exemptions": []},
        "placeOfPrimaryUse": {
            "line1": "1 Main St",
            "city": "Springfield",
            "region": "IL",
            "postalCode": "62701-1234",
            "country": "US",
        },
        "lines": [
            {
                "lineId": "1",
                "amount": "45.00",
                "transactionType": "wireless",
                "serviceType": "access",
                "lineCount": 2,
            },
            {
                "lineId": "2",
                "amount": "12.37",
                "transactionType": "wireless",
                "serviceType": "usage",
                "lineCount": 2,
            },
            {
                "lineId": "3",
                "amount": "25.00",
                "transactionType": "wireless",
                "serviceType": "activation",
                "lineCount": 1,
            },
            {
                "lineId": "4",
                "amount": "9.99",
                "transactionType": "wireless",
                "serviceType": "equipment",
                "lineCount": 1,
            },
        ],
    }
    return json.dumps(body).replace("DOCUMENT_ID", "%s")


def load_template(batch: int) -> str:
    """What wrk posts, with `DOCUMENT_ID` where it puts each request's own id."""
    if not batch:
        return quote_template() % "DOCUMENT_ID"
    items = [{"request": json.loads(quote_template() % f"DOCUMENT_ID-{k}")} for k in range(batch)]
    return json.dumps({"quotes": items})


def stored_quotes(base: str, key: str) -> int:
    response = requests.get(f"{base}{QUOTES}?limit=1", headers={"X-API-Key": key}, timeout=30)
    response.raise_for_status()
    return int(response.headers["X-Total-Count"])


def run_wrk(
    url: str, key: str, body_file: Path, args: argparse.Namespace, duration: float, server_pid: int
) -> LoadResult:
    threads = max(1, min(args.threads, args.connections))
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(args.connections),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(TAX_SCRIPT),
        url,
        "--",
        key,
        str(body_file),
        f"bench{uuid.uuid4().hex[:8]}",
    ]
    before = tree_cpu(server_pid)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    after = tree_cpu(server_pid)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(match.group(1))
    errors, latency = data["errors"], data["latency_us"]
    result = LoadResult(
        target=f"POST tax quote batch ({args.batch} x 4 lines)"
        if args.batch
        else "POST tax quote (4 lines)",
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        non_2xx=errors["status"],
        loadgen=f"wrk -t{threads} -c{args.connections}",
    )
    if before is not None and after is not None:
        result.server_cpu_s = after[0] - before[0]
        result.server_wait_s = after[1] - before[1]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", choices=["gunicorn", "granian"], default="gunicorn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--batch", type=int, default=0, help="quotes per POST /tax/v1/quoteBatches (0: single)"
    )
    args = parser.parse_args(argv)
    per_request = max(1, args.batch)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    args.loadgen = "wrk"
    results: list[LoadResult] = []
    with tempfile.TemporaryDirectory(prefix="handoff-tax-bench-") as tmp:
        workdir = Path(tmp)
        # The ceiling of this machine right now: bare Flask under the same server command.
        loader = Loader(args, workdir)
        with bare_server(args.server, args.workers, workdir) as (bare_base, loader.server_pid):
            bare = loader.measure(Load("bare Flask", f"{bare_base}{BARE_PATH}", "bare"))
        console.print(f"  bare Flask: {bare.rps:,.0f} req/s, waited for a CPU {bare.starved:.0%}")
        body_file = workdir / "quote.json"
        body_file.write_text(load_template(args.batch))
        with handoff_stack(args.server, args.workers, workdir) as (base, pid):
            # `handoff up` keeps its master key in the state directory; the billing
            # platform's key derives from it.
            secret = (workdir / f"state-{args.server}" / "secret.key").read_text().strip()
            key = derive_api_key(secret, BILLING_PLATFORM)
            url = f"{base}{BATCHES if args.batch else QUOTES}"
            probe = requests.post(
                url,
                data=load_template(args.batch).replace("DOCUMENT_ID", "probe"),
                timeout=10,
                headers={"X-API-Key": key, "Content-Type": "application/json"},
            )
            probe.raise_for_status()
            answered = probe.json()
            if args.batch:
                statuses = {result["status"] for result in answered["results"]}
                if statuses != {201}:
                    raise SystemExit(f"the probe batch was not quoted whole: {statuses}")
                answered = answered["results"][0]["quote"]
            console.print(
                f"  stack up on {base}; one quote taxes "
                f"{sum(len(line['taxes']) for line in answered['lines'])} "
                f"tax lines, totalTax {answered['totalTax']}"
                + (f"; {args.batch} quotes per request" if args.batch else "")
            )
            run_wrk(url, key, body_file, args, args.warmup, pid)
            for _ in range(args.rounds):
                before = stored_quotes(base, key)
                result = run_wrk(url, key, body_file, args, args.duration, pid)
                # wrk stops counting at the deadline; answers still in flight are stored
                # too, so `stored` may exceed the quotes counted by up to the connection
                # count (times the batch).
                stored = stored_quotes(base, key) - before
                if result.errors or result.non_2xx:
                    raise SystemExit(f"errors under load: {result}")
                result.extra["stored"] = stored
                results.append(result)
                console.print(
                    f"  {result.rps * per_request:8.0f} quotes/s  p50 {result.p50_ms:5.1f} ms  "
                    f"p99 {result.p99_ms:6.1f} ms  "
                    f"CPU {result.cpu_ms_per_request / per_request:.3f} ms/quote  "
                    f"waited for a CPU {result.starved:.0%}  "
                    f"stored {stored} / {result.requests * per_request}"
                )
    rps = statistics.median(r.rps * per_request for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    cpu = statistics.median(r.cpu_ms_per_request / per_request for r in results)
    verdict = rps >= TARGET_QPS
    table = Table(
        title=f"Tax quotes (4 lines{f', {args.batch} per batch' if args.batch else ''}), "
        f"{args.workers} {args.server} workers, {args.connections} connections"
    )
    for column in ("quotes/s", "x bare", "p99 ms", "CPU ms/quote", "target"):
        table.add_column(column)
    table.add_row(
        f"{rps:,.0f}",
        f"{rps / bare.rps:.2f}",
        f"{p99:.1f}",
        f"{cpu:.3f}",
        f">= {TARGET_QPS:,.0f} {'PASS' if verdict else 'FAIL'}",
    )
    console.print(table)
    rounds = [
        {
            "quotes_per_s": round(r.rps * per_request, 1),
            "p50_ms": r.p50_ms,
            "p99_ms": r.p99_ms,
            "cpu_ms_per_quote": round(r.cpu_ms_per_request / per_request, 3),
            "starved": round(r.starved, 3),
            "requests": r.requests,
            "quotes": r.requests * per_request,
            "stored": r.extra["stored"],
        }
        for r in results
    ]
    summary = {
        "kind": "tax",
        "server": args.server,
        "workers": args.workers,
        "batch": args.batch,
        "rounds": rounds,
        "median_quotes_per_s": round(rps, 1),
        "median_cpu_ms_per_quote": round(cpu, 3),
        "bare_rps": round(bare.rps, 1),
        "pass": verdict,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
