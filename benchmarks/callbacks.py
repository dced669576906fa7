"""Callback dispatcher throughput and delivery lag, into the stack's own callback sink.

    python benchmarks/callbacks.py [--server gunicorn] [--workers 2] [--events 20000]
                                   [--rate 2000] [--duration 10]

It:

1. starts `handoff up --server X --workers N --port P --db sqlite:////tmp/...` with a
   fresh state directory (HANDOFF_STATE_DIR) and waits for /__admin/health;
2. onboards a bench partner (POST /__admin/partners) and subscribes it to order
   events with the callback `<stack>/__sink/bench` (POST .../productOrderingManagement/v4/hub);
3. **burst**: queues --events order events at once, straight into the stack's store
   with `Outbox.publish` in one transaction (what one large state change does), and
   waits until the dispatcher of `handoff up` has delivered every one: delivered
   events/s = events / (last delivered - queued);
4. **steady**: queues events at --rate per second for --duration seconds (a batch
   every 50 ms) and measures each one's lag, created -> delivered on the stack's
   clock (p50/p99/max), and the delivered rate over the window;
5. reads the sink through GET /__admin/sinks/bench: every event received, none twice,
   every signature valid;
6. prints a table and one JSON line per phase.

With --split it also sends the same number of signed callbacks as the burst without
the dispatcher, from the dispatcher's HTTP client on as many threads as it sends from:
7. **sink only**: straight to the stack's `/__sink/bench` (the receiving side's cost:
   Handoff's pipeline, signature check, duplicate check, committed record);
8. **floor**: to benchmarks/bare_flask.py's `POST /hook`, which keeps nothing, under the
   exact server command `handoff up` uses: what the server, Flask and the loopback
   network cost before Handoff does anything. The CPU per callback of server and
   sender, printed for each, says where a callback's cost goes.

Events are queued through the store rather than produced by order traffic: orders
would bring their own work (intake, the network's lifecycle steps, benchmarks/run.py)
onto the same two CPUs and measure the order path, not the dispatcher. Targets
(issue): >= 2,000 callbacks/s with 2 gunicorn workers, p99 lag <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from rich.table import Table
from run import bare_server, console, handoff_stack, onboard, tree_cpu
from sqlalchemy import func, select

from simulators.core.config import Settings
from simulators.core.outbox import RESPONSE_LIMIT, USER_AGENT, outbox_table, signer, webhook_secret
from simulators.core.runtime import Runtime
from simulators.core.webhook_http import WebhookClient

RATE_TARGET = 2000.0
P99_TARGET_S = 1.0
SINK = "bench"
HUB = "/mvne/tmf-api/productOrderingManagement/v4/hub"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["gunicorn", "granian"], default="gunicorn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--dispatchers", type=int, default=1, help="handoff up --dispatchers (processes)"
    )
    parser.add_argument("--events", type=int, default=20_000, help="burst size")
    parser.add_argument("--rate", type=float, default=2000.0, help="steady events per second")
    parser.add_argument("--duration", type=float, default=10.0, help="steady seconds")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--split",
        action="store_true",
        help="also measure the sink alone and a bare Flask receiver (the floor)",
    )
    return parser.parse_args(argv)


def publish(runtime: Runtime, partner_id: str, first: int, count: int) -> None:
    now = runtime.clock.now()
    with runtime.store.write() as conn:
        for number in range(first, first + count):
            runtime.outbox.publish(
                conn,
                role="mvne",
                api="productOrderingManagement",
                partner_id=partner_id,
                event_type="ProductOrderStateChangeEvent",
                resource_name="productOrder",
                resource={"id": f"bench-{number}", "state": "inProgress", "@type": "ProductOrder"},
                correlation_id=f"bench-{number}",
                now=now,
            )


def delivered_count(runtime: Runtime) -> int:
    with runtime.store.read() as conn:
        return int(
            conn.execute(select(func.count()).where(outbox_table.c.status == "done")).scalar_one()
        )


def wait_delivered(runtime: Runtime, total: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while delivered_count(runtime) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {delivered_count(runtime)} of {total} delivered")
        time.sleep(0.1)


def lags(runtime: Runtime, first_id: int) -> list[tuple[float, float]]:
    with runtime.store.read() as conn:
        rows = conn.execute(
            select(outbox_table.c.created_at, outbox_table.c.delivered_at).where(
                outbox_table.c.id >= first_id, outbox_table.c.status == "done"
            )
        ).all()
    return [(float(created), float(delivered)) for created, delivered in rows]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def max_id(runtime: Runtime) -> int:
    with runtime.store.read() as conn:
        return int(conn.execute(select(func.max(outbox_table.c.id))).scalar() or 0)


def send_signed(
    kind: str, url: str, secret: str, count: int, threads: int, server_pid: int
) -> dict[str, Any]:
    """`count` callbacks signed and sent as the dispatcher sends them, `threads` at a time,
    each answered 2xx; the rate, and the CPU per callback of the server and of this sender."""
    client = WebhookClient(RESPONSE_LIMIT)
    webhook = signer(secret)
    body = json.dumps(
        {
            "eventType": "ProductOrderStateChangeEvent",
            "event": {"productOrder": {"id": "bench", "state": "inProgress"}},
        },
        separators=(",", ":"),
    )
    failures: list[str] = []

    def send(first: int, number: int) -> None:
        for message in range(first, first + number):
            sent_at = int(time.time())
            message_id = f"msg_{kind}_{message}"
            headers = {
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                "webhook-id": message_id,
                "webhook-timestamp": str(sent_at),
                "webhook-signature": webhook.sign(
                    message_id, datetime.fromtimestamp(sent_at, UTC), body
                ),
            }
            answer = client.post(url, headers, body.encode(), 10.0)
            if answer.status >= 300:
                failures.append(f"{message_id}: {answer.status}")

    send(-threads, threads)  # one kept connection per thread before the clock starts
    share = count // threads
    senders = [threading.Thread(target=send, args=(n * share, share)) for n in range(threads)]
    server_before, own_before = tree_cpu(server_pid), resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    elapsed = time.monotonic() - started
    server_after, own_after = tree_cpu(server_pid), resource.getrusage(resource.RUSAGE_SELF)
    client.close()
    if failures:
        raise RuntimeError(f"{kind}: {len(failures)} callbacks refused, first {failures[0]}")
    sent = share * threads
    own = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    server = server_after[0] - server_before[0] if server_before and server_after else float("nan")
    return {
        "kind": kind,
        "events": sent,
        "delivered_per_s": round(sent / elapsed, 1),
        "server_cpu_ms": round(server * 1000 / sent, 3),
        "sender_cpu_ms": round(own * 1000 / sent, 3),
    }


def run(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    options = ("--dispatchers", str(args.dispatchers))
    with handoff_stack(args.server, args.workers, workdir, *options) as (base, pid):
        state_dir = workdir / f"state-{args.server}"
        settings = Settings(
            db_url=f"sqlite:///{state_dir / 'state.db'}",
            secret_key=(state_dir / "secret.key").read_text().strip(),
            background=False,
        )
        runtime = Runtime(settings)
        try:
            api_key = onboard(base, 1)
            partners = requests.get(f"{base}/__admin/partners", timeout=10).json()
            partner_id = next(p["id"] for p in partners if p["id"].startswith("bench-"))
            hub = requests.post(
                f"{base}{HUB}",
                json={"callback": f"{base}/__sink/{SINK}"},
                headers={"X-API-Key": api_key},
                timeout=10,
            )
            hub.raise_for_status()

            # Burst.
            first = max_id(runtime) + 1
            publish(runtime, partner_id, 0, args.events)
            cpu_before = tree_cpu(pid)
            started = runtime.clock.now()
            wait_delivered(runtime, args.events, args.timeout)
            cpu_after = tree_cpu(pid)
            burst = lags(runtime, first)
            span = max(delivered for _, delivered in burst) - started
            cpu = (cpu_after[0] - cpu_before[0]) if cpu_before and cpu_after else None
            results.append(
                {
                    "kind": "burst",
                    "events": args.events,
                    "delivered_per_s": round(args.events / span, 1),
                    "seconds": round(span, 2),
                    "p99_lag_s": round(percentile([d - c for c, d in burst], 0.99), 3),
                    "cpu_ms_per_event": round(cpu * 1000 / args.events, 3) if cpu else None,
                }
            )

            # Steady rate.
            first = max_id(runtime) + 1
            queued = 0
            tick = 0.05
            per_tick = max(1, round(args.rate * tick))
            started_wall = time.monotonic()
            while time.monotonic() - started_wall < args.duration:
                publish(runtime, partner_id, args.events + queued, per_tick)
                queued += per_tick
                behind = started_wall + queued / args.rate - time.monotonic()
                if behind > 0:
                    time.sleep(behind)
            offered = queued / (time.monotonic() - started_wall)
            wait_delivered(runtime, args.events + queued, args.timeout)
            steady = lags(runtime, first)
            lag = [delivered - created for created, delivered in steady]
            window = max(d for _, d in steady) - min(c for c, _ in steady)
            results.append(
                {
                    "kind": "steady",
                    "events": queued,
                    "offered_per_s": round(offered, 1),
                    "delivered_per_s": round(queued / window, 1),
                    "p50_lag_s": round(percentile(lag, 0.50), 3),
                    "p99_lag_s": round(percentile(lag, 0.99), 3),
                    "max_lag_s": round(max(lag), 3),
                }
            )

            sink = requests.get(f"{base}/__admin/sinks/{SINK}", timeout=30).json()
            total = args.events + queued
            results.append(
                {
                    "kind": "sink",
                    "received": sink["received"],
                    "unique_webhook_ids": sink["uniqueWebhookIds"],
                    "duplicates": sink["duplicates"],
                    "invalid_signatures": sink["invalidSignatures"],
                    "missing_signatures": sink["missingSignatures"],
                    "complete": sink["uniqueWebhookIds"] == total,
                }
            )
            if args.split:
                secret = webhook_secret(settings.secret_key, hub.json()["id"])
                url = f"{base}/__sink/{SINK}"
                threads = settings.callback_concurrency
                results.append(send_signed("sink only", url, secret, args.events, threads, pid))
        finally:
            runtime.close()
    if args.split:
        with bare_server(args.server, args.workers, workdir) as (base, pid):
            # Signed as the sink's callbacks are; bare Flask checks nothing.
            secret = webhook_secret("bench", "floor")
            threads = Settings().callback_concurrency
            results.append(send_signed("floor", f"{base}/hook", secret, args.events, threads, pid))
    return results


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    table = Table(title=f"Callbacks into /__sink: {args.server}, {args.workers} workers")
    for column in ("phase", "events", "delivered/s", "p50 lag", "p99 lag", "max lag", "target"):
        table.add_column(column, justify="right")
    for line in results:
        if line["kind"] not in ("burst", "steady"):
            continue
        rate_ok = line["delivered_per_s"] >= RATE_TARGET
        lag_ok = line["kind"] == "burst" or line["p99_lag_s"] <= P99_TARGET_S
        table.add_row(
            line["kind"],
            str(line["events"]),
            f"{line['delivered_per_s']:.0f}",
            f"{line.get('p50_lag_s', float('nan')):.3f} s",
            f"{line['p99_lag_s']:.3f} s",
            f"{line.get('max_lag_s', float('nan')):.3f} s",
            "[green]met[/green]" if rate_ok and lag_ok else "[red]missed[/red]",
        )
    console.print(table)
    sink = next(line for line in results if line["kind"] == "sink")
    console.print(
        f"sink: {sink['received']} received, {sink['unique_webhook_ids']} distinct webhook ids, "
        f"{sink['duplicates']} duplicates, {sink['invalid_signatures']} invalid and "
        f"{sink['missing_signatures']} missing signatures"
    )
    split = [line for line in results if line["kind"] in ("sink only", "floor")]
    if split:
        table = Table(title="Without the dispatcher: the dispatcher's client, signed callbacks")
        for column in ("receiver", "callbacks", "answered/s", "server CPU", "sender CPU"):
            table.add_column(column, justify="right")
        for line in split:
            table.add_row(
                "Handoff /__sink" if line["kind"] == "sink only" else "bare Flask (floor)",
                str(line["events"]),
                f"{line['delivered_per_s']:.0f}",
                f"{line['server_cpu_ms']:.3f} ms",
                f"{line['sender_cpu_ms']:.3f} ms",
            )
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="handoff-callbacks-", dir="/tmp"))
    console.print(
        f"[bold]Handoff callback benchmark[/bold]  {platform.machine()}, {os.cpu_count()} CPUs; "
        f"temp dir {workdir}"
    )
    try:
        results = run(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results, args)
    meta = {"kind": "environment", "cpus": os.cpu_count(), "server": args.server}
    for line in [meta, *results]:
        print(json.dumps({**line, "workers": args.workers}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
