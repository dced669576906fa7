"""Wholesale settlement throughput: ingest, deduplicate, rate and post N usage events for three
partners, in events/s, with the process's peak memory.

The events are what the network hands to mediation (`simulators.mno.rating.NetworkUsage`),
streamed from a generator as a CDR feed would be, never held in memory all at once: three
wholesale partners (the two reference MVNOs and a third registered for the run, each with
its own agreement), data, voice and SMS in turn, event times moving forward through a
month or two. One event in a hundred is a resend of a recent one (same network event id: the
duplicate must be dropped, never charged) and one in five hundred arrives days late (out of
order, after its day's summary was due). They go through `rating.ingest` in batches, one
write transaction each, exactly as the usage path and the tests call it: identity check,
agreement version at event time, tiered rating over the month's volume, period resolution,
one ledger entry per event.

Targets: 1,000,000 events in <= 30 s on SQLite with peak RSS <= 300 MB; 10,000,000 in <=
10x that time with the same memory (`--events 10000000`, or `--ten-million`).
`HANDOFF_DB=postgresql+psycopg://...` runs it on PostgreSQL (the database is emptied of the
stack's tables first).

    python benchmarks/settlement.py [--events 1000000] [--batch 10000] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulators.core.admin import reset_state  # noqa: E402
from simulators.core.config import Settings  # noqa: E402
from simulators.core.store import metadata  # noqa: E402
from simulators.mno import agreements, ledger, partners, rating  # noqa: E402
from simulators.stack import create_app, runtime_of  # noqa: E402

T0 = 1772323200.0  # 2026-03-01T00:00:00Z
# Two events a second (about 170,000 a day): a batch of 10,000 spans under an hour and a
# half, so the feed arrives about as it happens; 10,000,000 events span two months.
EVENT_STEP_S = 0.5
THIRD = "mvno-charlie"
PARTNERS = ("mvno-alpha", "mvno-bravo", THIRD)
USAGE = (("data", "MB"), ("voice", "min"), ("sms", "msg"))
LINES_PER_PARTNER = 1000
DUPLICATE_EVERY = 100
LATE_EVERY = 500
LATE_BY_S = 3 * 86400.0


def rss_mb() -> float:
    """The process's resident memory now (Linux), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def feed(events: int) -> Iterator[rating.NetworkUsage]:
    """The CDR feed: `events` records, deterministic, a few duplicates and late ones."""
    services = {
        partner: [f"svc-{partner}-{line:04d}" for line in range(LINES_PER_PARTNER)]
        for partner in PARTNERS
    }
    numbers = [f"+4477009{line:05d}" for line in range(LINES_PER_PARTNER)]
    sizes = (37, 512, 3, 120, 1, 88, 2048, 15, 640, 9)
    recent: list[rating.NetworkUsage] = []
    make = rating.NetworkUsage._make
    for number in range(events):
        if number % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and recent:
            yield recent[number % len(recent)]
            continue
        partner = PARTNERS[number % 3]
        usage_type, unit = USAGE[(number // 3) % 3]
        at = T0 + number * EVENT_STEP_S
        if number % LATE_EVERY == LATE_EVERY // 2:
            at -= LATE_BY_S
        line = number % LINES_PER_PARTNER
        record = make(
            (
                f"cdr-{number:010d}",
                partner,
                services[partner][line],
                numbers[line],
                usage_type,
                at,
                sizes[number % 10] if usage_type == "data" else 1 + number % 30,
                unit,
                "208" if number % 17 == 0 else None,
            )
        )
        if len(recent) < 64:
            recent.append(record)
        else:
            recent[number % 64] = record
        yield record


def prepare(db_url: str) -> Any:
    """A seeded stack on `db_url` with a third wholesale partner; its runtime."""
    settings = Settings(db_url=db_url, secret_key="bench-secret", background=False)
    if not db_url.startswith("sqlite"):
        from sqlalchemy import create_engine

        engine = create_engine(db_url)
        metadata.drop_all(engine)
        engine.dispose()
    app = create_app(settings)
    runtime = runtime_of(app)
    reset_state(runtime, None, seed=2026)
    runtime.clock.set(T0, frozen=True)
    with runtime.store.write() as conn:
        partners.register(
            conn,
            secret_key=settings.secret_key,
            partner_id=THIRD,
            name="Charlie Telecom",
            imsi_prefixes=["0010126003"],
            mvne_partner_id=None,
            now=T0,
        )
        agreements.add_version(
            conn,
            partner_id=THIRD,
            agreement_id=f"wa-{THIRD}",
            effective_from=partners.REFERENCE_EFFECTIVE_FROM,
            terms=agreements.reference_terms("EUR"),
            now=T0,
            actor="bench",
            correlation_id=None,
            allow_past=True,
        )
    return runtime


def run(runtime: Any, events: int, batch_size: int) -> dict[str, Any]:
    store = runtime.store
    samples: list[tuple[int, float]] = []
    totals = {"received": 0, "rated": 0, "duplicates": 0, "late": 0, "unrated": 0}
    batch: list[rating.NetworkUsage] = []
    sample_every = max(events // 10, batch_size)
    rss_before = rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()

    def flush() -> None:
        with store.write() as conn:
            outcome = rating.ingest(conn, batch, now=batch[-1].event_time + 60, tasks=runtime.tasks)
        for name in totals:
            totals[name] += int(getattr(outcome, name))
        batch.clear()

    for number, record in enumerate(feed(events), 1):
        batch.append(record)
        if len(batch) == batch_size:
            flush()
        if number % sample_every == 0:
            samples.append((number, round(rss_mb(), 1)))
    if batch:
        flush()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    with store.read() as conn:
        table = ledger.ledger
        entries, amount = conn.execute(
            select(func.count(), func.sum(table.c.amount_micros)).where(
                table.c.kind == ledger.USAGE
            )
        ).one()
    expected_duplicates = (events // DUPLICATE_EVERY) if events >= DUPLICATE_EVERY else 0
    assert totals["received"] == events
    assert totals["duplicates"] == expected_duplicates, totals
    assert int(entries) == totals["rated"] == events - expected_duplicates
    return {
        "store": store.url.get_backend_name(),
        "events": events,
        "batch": batch_size,
        "seconds": round(elapsed, 2),
        # On a shared machine wall time swings with what else runs; the process's own CPU
        # time (user + system) is the steadier measure of the work.
        "cpu_seconds": round(cpu, 2),
        "events_per_s": round(events / elapsed),
        "ledger_entries": int(entries),
        "duplicates_dropped": totals["duplicates"],
        "late": totals["late"],
        "charged": agreements.micros_text(int(amount or 0)),
        "rss_before_mb": round(rss_before, 1),
        "rss_samples_mb": samples,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ten-million", action="store_true", help="--events 10000000")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--json", help="append the result as one JSON line to this file")
    args = parser.parse_args()
    events = 10_000_000 if args.ten_million else args.events
    with tempfile.TemporaryDirectory(prefix="handoff-settlement-") as scratch:
        db_url = os.environ.get("HANDOFF_DB") or f"sqlite:///{scratch}/state.db"
        runtime = prepare(db_url)
        try:
            result = run(runtime, events, args.batch)
        finally:
            runtime.close()
    print(
        f"{result['store']}: {result['events']:,} events in {result['seconds']} s "
        f"({result['cpu_seconds']} s CPU) = "
        f"{result['events_per_s']:,} events/s; {result['ledger_entries']:,} ledger entries, "
        f"{result['duplicates_dropped']:,} duplicates dropped, {result['late']:,} late; "
        f"peak RSS {result['peak_rss_mb']} MB (RSS before the feed {result['rss_before_mb']} MB, "
        f"during: {', '.join(str(mb) for _, mb in result['rss_samples_mb'])})"
    )
    if args.json:
        with open(args.json, "a") as out:
            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
