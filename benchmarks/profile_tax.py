"""Where a tax quote's time goes: the stack in-process, driven by the Flask test client.

    python benchmarks/profile_tax.py [--quotes 2000] [--batch 100] [--rounds 5] [--no-profile]

Builds the stack on a fresh temp SQLite store (no server, no sockets) and times, in CPU
milliseconds per quote (process time, best of `--rounds`: steadier than wall time on a
shared machine), the layers of the quote path one inside the other:

* `calculate`: placing the address and taxing the 4 lines (model only);
* `+ record`: the quote as stored and answered (`quote_record`);
* `create_quote`: the above plus its insert, in one write transaction per quote;
* `POST /tax/v1/quotes`: the whole request pipeline around it (correlation ID, partner
  authentication, body parsing and validation, journal) with the Flask test client;
* `POST /tax/v1/quoteBatches`: the same quotes `--batch` at a time, per quote.

Then a pyinstrument call tree (if installed) and a cProfile top list of the single POST.
The body is the one `benchmarks/tax.py` loads the live stack with (4 lines, Springfield,
IL ZIP+4: 18 tax lines).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tax import quote_template  # noqa: E402

from simulators.core.config import Settings  # noqa: E402
from simulators.core.tenancy import BILLING_PLATFORM, peer_api_key  # noqa: E402
from simulators.stack import create_app, runtime_of  # noqa: E402
from simulators.tax import model  # noqa: E402

QUOTES = "/tax/v1/quotes"
BATCHES = "/tax/v1/quoteBatches"
Run = Callable[[list[dict[str, Any]]], None]  # one layer of the quote path over some bodies


class Bench:
    def __init__(self, workdir: Path) -> None:
        settings = Settings(
            db_url=f"sqlite:///{workdir / 'state.db'}",
            secret_key="bench-secret",
            background=False,
            state_dir=str(workdir),
        )
        self.app = create_app(settings)
        self.runtime = runtime_of(self.app)
        self.client = self.app.test_client()
        self.headers = {"X-API-Key": peer_api_key(settings, BILLING_PLATFORM)}
        self.template = quote_template()
        self.table = model.load_table()
        self.tag = uuid.uuid4().hex[:8]
        self.n = 0

    def bodies(self, count: int) -> list[dict[str, Any]]:
        """`count` requests, each with a documentId of its own (made before any timing)."""
        self.n += count
        return [
            dict(json.loads(self.template % f"{self.tag}-{n}"))
            for n in range(self.n - count, self.n)
        ]

    def calculate(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            model.calculate(self.table, model.parse_request(body))

    def record(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            model.quote_record(model.calculate(self.table, model.parse_request(body)))

    def create_quote(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            with self.runtime.store.write() as conn:
                model.create_quote(conn, self.table, client_id=BILLING_PLATFORM, body=body, now=0)

    def post(self, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            response = self.client.post(QUOTES, json=body, headers=self.headers)
            assert response.status_code == 201, response.get_data(as_text=True)

    def batches(self, size: int) -> Run:
        def post_batches(bodies: list[dict[str, Any]]) -> None:
            for start in range(0, len(bodies), size):
                items = [{"request": body} for body in bodies[start : start + size]]
                response = self.client.post(BATCHES, json={"quotes": items}, headers=self.headers)
                assert response.status_code == 200, response.get_data(as_text=True)
                results = response.get_json()["results"]
                assert all(item["status"] == 201 for item in results), results[:1]

        return post_batches


def cpu_ms(bench: Bench, fn: Run, count: int, rounds: int) -> float:
    """CPU milliseconds per quote, best of `rounds`."""
    best = float("inf")
    for _ in range(rounds):
        bodies = bench.bodies(count)
        started = time.process_time()
        fn(bodies)
        best = min(best, (time.process_time() - started) * 1000 / count)
    return best


def python_calls(bench: Bench, fn: Run, count: int) -> float:
    """Python function calls per quote: deterministic, so it ranks two versions of the code
    even when a busy machine blurs their timings."""
    bodies = bench.bodies(count)
    prof = cProfile.Profile()
    prof.enable()
    fn(bodies)
    prof.disable()
    return float(pstats.Stats(prof).total_calls) / count  # type: ignore[attr-defined]


def profile(bench: Bench, fn: Run, count: int) -> None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None  # type: ignore[assignment,misc]  # noqa: N806
    if Profiler is not None:
        bodies = bench.bodies(count)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        fn(bodies)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    bodies = bench.bodies(count)
    prof = cProfile.Profile()
    prof.enable()
    fn(bodies)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(30)
    print(f"cProfile, {stats.total_calls / count:.0f} Python calls per quote; top 30 by own time:")  # type: ignore[attr-defined]
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quotes", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="quotes per batch (0: none)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="handoff-profile-tax-") as tmp:
        bench = Bench(Path(tmp))
        bench.post(bench.bodies(100))  # warm: validators, statement caches, the table
        layers: list[tuple[str, Run]] = [
            ("calculate (model)", bench.calculate),
            ("+ record (model)", bench.record),
            ("create_quote (+ insert, 1 tx each)", bench.create_quote),
            ("POST /tax/v1/quotes (pipeline)", bench.post),
        ]
        if args.batch:
            layers.append(
                (f"POST /tax/v1/quoteBatches ({args.batch} a batch)", bench.batches(args.batch))
            )
        print(
            f"per quote, in-process: CPU ms (best of {args.rounds} x {args.quotes} quotes) "
            "and Python function calls"
        )
        for label, fn in layers:
            ms = cpu_ms(bench, fn, args.quotes, args.rounds)
            calls = python_calls(bench, fn, min(args.quotes, 500))
            print(f"  {label:<45} {ms:7.3f} ms {calls:7.0f} calls")
        if not args.no_profile:
            print(f"\n=== POST /tax/v1/quotes, {args.quotes} quotes ===")
            profile(bench, bench.post, args.quotes)
            if args.batch:
                print(f"\n=== POST /tax/v1/quoteBatches, {args.quotes} quotes ===")
                profile(bench, bench.batches(args.batch), args.quotes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
