"""Where a request's time goes: the stack in-process, driven by the Flask test client.

    python benchmarks/profile_app.py [--get 2000] [--post 500] [--html DIR]
                                     [--experiments]

Builds the stack on a fresh temp SQLite store (no server, no sockets; peer
calls go through `responses` as in the test suite), onboards a bench partner,
activates one subscription, then profiles N GET subscription and N POST
activation requests with pyinstrument (cProfile if pyinstrument is missing).

`--experiments` re-times the same requests with parts of the pipeline patched
out *in this process only* (journal off, journal bodies skipped, per-request
auth cached, ...), to size each suggested fix before anyone writes it. The
patches are benchmark-local monkeypatches; nothing in simulators/ changes.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import responses
from flask import Flask
from flask.testing import FlaskClient

from simulators.core.config import Settings
from simulators.core.inprocess import mount
from simulators.stack import create_app, runtime_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import ALL_CAPABILITIES, ORDERS, PRODUCTS, SIMS, activation_body  # noqa: E402

BASE_URL = "http://127.0.0.1:8700"


class Bench:
    def __init__(self, workdir: Path, pool_size: int) -> None:
        settings = Settings(
            db_url=f"sqlite:///{workdir / 'state.db'}",
            secret_key="bench-secret",
            background=False,
        )
        self.app: Flask = create_app(settings)
        self.runtime = runtime_of(self.app)
        self.client: FlaskClient = self.app.test_client()
        self.environ = {"REMOTE_ADDR": "127.0.0.1"}
        response = self.client.post(
            "/__admin/partners",
            json={
                "id": "bench",
                "name": "Bench",
                "agreement": {
                    "offerings": ["po-gb-payg"],
                    "markets": ["GB"],
                    "capabilities": ALL_CAPABILITIES,
                    "simPoolSize": pool_size,
                },
            },
            environ_base=self.environ,
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        self.headers = {"X-API-Key": response.get_json()["apiKey"]}
        self.iccids = self._iccids(min(pool_size, 12_000))
        self.product_id = self._activate(self.iccids.pop(0))

    def _iccids(self, count: int) -> list[str]:
        found: list[str] = []
        while len(found) < count:
            page = self.client.get(
                f"{SIMS}?resourceStatus=available&limit=1000&offset={len(found)}",
                headers=self.headers,
            ).get_json()
            if not page:
                break
            found += [sim["iccid"] for sim in page]
        return found[:count]

    def _activate(self, iccid: str) -> str:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            mount(mock, self.app, BASE_URL)
            order = self.client.post(
                ORDERS, json=activation_body("seed", iccid), headers=self.headers
            ).get_json()
            self.runtime.advance(30)
        state = self.client.get(f"{ORDERS}/{order['id']}", headers=self.headers).get_json()
        assert state["state"] == "completed", state
        return str(state["productOrderItem"][0]["product"]["id"])

    def get(self, n: int) -> None:
        url = f"{PRODUCTS}/{self.product_id}"
        for _ in range(n):
            response = self.client.get(url, headers=self.headers)
            assert response.status_code == 200, response.status_code

    def post(self, n: int) -> None:
        tag = uuid.uuid4().hex[:8]
        for i in range(n):
            response = self.client.post(
                ORDERS, json=activation_body(f"{tag}-{i}", self.iccids.pop()), headers=self.headers
            )
            assert response.status_code == 201, response.get_data(as_text=True)


def timed(fn: Callable[[int], None], n: int) -> float:
    """Milliseconds per request."""
    started = time.perf_counter()
    fn(n)
    return (time.perf_counter() - started) * 1000 / n


def profile(label: str, fn: Callable[[int], None], n: int, html_dir: Path | None) -> None:
    print(f"\n=== {label}: {n} requests in-process ===")
    try:
        from pyinstrument import Profiler
    except ImportError:
        Profiler = None  # type: ignore[assignment,misc]  # noqa: N806
    if Profiler is not None:
        profiler = Profiler(interval=0.001)
        profiler.start()
        started = time.perf_counter()
        fn(n)
        elapsed = time.perf_counter() - started
        profiler.stop()
        print(f"{elapsed * 1000 / n:.3f} ms/request under the profiler")
        print(profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False))
        if html_dir:
            html_dir.mkdir(parents=True, exist_ok=True)
            path = html_dir / f"{label.replace(' ', '_').lower()}.html"
            path.write_text(profiler.output_html())
            print(f"HTML: {path}")
    prof = cProfile.Profile()
    prof.enable()
    fn(n)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(25)
    print("cProfile, top 25 by own time:")
    print(out.getvalue())


# --- experiments: size each suggested fix by patching it out in this process ------------


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


def experiments(bench: Bench, n_get: int, n_post: int) -> None:
    from simulators.core import http, journal, tenancy

    print("\n=== experiments (ms/request in-process, lower is better) ===")
    rows: list[tuple[str, float, float]] = []

    def measure(label: str) -> None:
        bench.get(200)  # settle caches
        get_ms = min(timed(bench.get, n_get) for _ in range(3))
        post_ms = timed(bench.post, n_post)
        rows.append((label, get_ms, post_ms))
        print(f"  {label:<58} GET {get_ms:6.3f}  POST {post_ms:6.3f}", flush=True)

    measure("as is")

    with patched(http, "body_text", lambda raw: None):
        measure("journal keeps no bodies (body_text skipped)")

    with patched(bench.runtime.journal, "record", lambda **fields: None):
        measure("journal.record is a no-op")

    cache: dict[tuple[str, str | None], tenancy.Partner] = {}
    original_authenticate = tenancy.authenticate

    def cached_authenticate(conn: Any, role: str, api_key: str | None) -> tenancy.Partner:
        key = (role, api_key)
        if key not in cache:
            cache[key] = original_authenticate(conn, role, api_key)
        return cache[key]

    with patched(http, "authenticate", cached_authenticate):
        measure("partner lookup cached per key (no 2 SELECTs per request)")

    with (
        patched(http, "body_text", lambda raw: None),
        patched(http, "authenticate", cached_authenticate),
    ):
        measure("both: no journal bodies + cached partner")

    with (
        patched(bench.runtime.journal, "record", lambda **fields: None),
        patched(http, "authenticate", cached_authenticate),
    ):
        measure("upper bound: no journal at all + cached partner")

    del journal  # imported for symmetry with the patches above


def bare_reference(n: int) -> float:
    from bare_flask import app

    client = app.test_client()

    def run(k: int) -> None:
        for _ in range(k):
            client.get("/ping")

    run(200)
    return min(timed(run, n) for _ in range(3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--get", type=int, default=2000)
    parser.add_argument("--post", type=int, default=500)
    parser.add_argument("--pool-size", type=int, default=20_000)
    parser.add_argument("--html", type=Path, default=None, help="write pyinstrument HTML here")
    parser.add_argument("--experiments", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="handoff-profile-") as tmp:
        bench = Bench(Path(tmp), args.pool_size)
        bench.get(200)
        bench.post(20)
        bare_ms = bare_reference(args.get)
        get_ms = min(timed(bench.get, args.get) for _ in range(3))
        post_ms = timed(bench.post, args.post)
        print(
            f"in-process, no server: bare Flask {bare_ms:.3f} ms/request, "
            f"GET subscription {get_ms:.3f} ms ({bare_ms / get_ms:.2f}x bare), "
            f"POST activation {post_ms:.3f} ms ({bare_ms / post_ms:.2f}x bare)"
        )
        if not args.no_profile:
            profile("GET subscription", bench.get, args.get, args.html)
            profile("POST activation", bench.post, args.post, args.html)
        if args.experiments:
            experiments(bench, args.get, args.post)
    return 0


if __name__ == "__main__":
    sys.exit(main())
