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
        self.iccids = self._iccids(pool_size)
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
    """CPU milliseconds per request (process time: steadier than wall time on a shared box)."""
    started = time.process_time()
    fn(n)
    return (time.process_time() - started) * 1000 / n


def best(fn: Callable[[int], None], n: int, rounds: int = 3) -> float:
    return min(timed(fn, n) for _ in range(rounds))


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


# Statements built once with bind parameters: SQLAlchemy then skips building the
# expression and its cache key on every call (measured below as "prebuilt").
def _prebuilt() -> dict[str, Any]:
    from sqlalchemy import bindparam, select

    from simulators.core.tenancy import capabilities, partners
    from simulators.mvne.model import product_table

    return {
        "auth": select(
            partners.c.id,
            partners.c.role,
            partners.c.name,
            partners.c.status,
            partners.c.agreement,
            capabilities.c.capability,
            capabilities.c.status.label("cap_status"),
        )
        .select_from(partners.outerjoin(capabilities, capabilities.c.partner_id == partners.c.id))
        .where(partners.c.key_hash == bindparam("key_hash"), partners.c.role == bindparam("role")),
        "product": select(product_table).where(
            product_table.c.id == bindparam("id"), product_table.c.partner_id == bindparam("pid")
        ),
    }


_STATEMENTS: dict[str, Any] = {}


def prebuilt_authenticate(conn: Any, role: str, api_key: str | None) -> Any:
    from simulators.core import tenancy

    if not _STATEMENTS:
        _STATEMENTS.update(_prebuilt())
    if not api_key:
        raise tenancy.Unauthenticated("Send the partner API key in the X-API-Key header")
    rows = conn.execute(
        _STATEMENTS["auth"], {"key_hash": tenancy.hash_key(api_key), "role": role}
    ).all()
    if not rows:
        raise tenancy.Unauthenticated("The API key is not known to this API")
    first = rows[0]
    partner = tenancy.Partner(
        id=first.id,
        role=first.role,
        name=first.name,
        status=first.status,
        agreement=dict(first.agreement),
        capabilities={row.capability: row.cap_status for row in rows if row.capability},
    )
    if partner.status != tenancy.PARTNER_ACTIVE:
        raise tenancy.PartnerInactive(f"Partner {partner.id} is {partner.status}")
    return partner


def prebuilt_get_product(conn: Any, partner: Any, product_id: str) -> Any:
    from simulators.mvne import errors

    if not _STATEMENTS:
        _STATEMENTS.update(_prebuilt())
    row = conn.execute(_STATEMENTS["product"], {"id": product_id, "pid": partner.id}).first()
    if row is None:
        raise errors.ProductNotFound(f"No subscription {product_id}")
    return row


def experiments(bench: Bench, n_get: int, n_post: int, rounds: int) -> None:
    """Each variant patches part of the pipeline out; variants are interleaved round by round
    and the best round kept, so a noisy neighbour skews them all alike."""
    from simulators.core import http, tenancy
    from simulators.mvne import model as mvne_model

    cache: dict[tuple[str, str | None], tenancy.Partner] = {}
    original_authenticate = tenancy.authenticate

    def cached_authenticate(conn: Any, role: str, api_key: str | None) -> tenancy.Partner:
        key = (role, api_key)
        if key not in cache:
            cache[key] = original_authenticate(conn, role, api_key)
        return cache[key]

    journal = bench.runtime.journal
    no_bodies = (http, "body_text", lambda raw: None)
    no_journal = (journal, "record", lambda **fields: None)
    auth_cached = (http, "authenticate", cached_authenticate)
    auth_prebuilt = (http, "authenticate", prebuilt_authenticate)
    product_prebuilt = (mvne_model, "get_product", prebuilt_get_product)
    variants: list[tuple[str, list[tuple[Any, str, Any]]]] = [
        ("as is", []),
        ("journal keeps no bodies (body_text skipped)", [no_bodies]),
        ("journal.record is a no-op", [no_journal]),
        ("auth: one prebuilt SELECT (partner JOIN capability)", [auth_prebuilt]),
        ("auth: partner cached per key (upper bound)", [auth_cached]),
        ("prebuilt auth + prebuilt get_product", [auth_prebuilt, product_prebuilt]),
        (
            "prebuilt auth + get_product + no journal bodies",
            [auth_prebuilt, product_prebuilt, no_bodies],
        ),
        ("cached partner + no journal at all", [auth_cached, no_journal]),
    ]  # fmt: skip
    best_get = {label: float("inf") for label, _ in variants}
    best_post = {label: float("inf") for label, _ in variants}
    for _ in range(rounds):
        for label, patches in variants:
            with contextlib.ExitStack() as stack:
                for target, name, value in patches:
                    stack.enter_context(patched(target, name, value))
                bench.get(50)
                best_get[label] = min(best_get[label], timed(bench.get, n_get))
                best_post[label] = min(best_post[label], timed(bench.post, n_post))
    # Python function calls per request: deterministic, so it ranks the variants even
    # when a noisy neighbour blurs the timings.
    calls_get: dict[str, float] = {}
    calls_post: dict[str, float] = {}
    for label, patches in variants:
        with contextlib.ExitStack() as stack:
            for target, name, value in patches:
                stack.enter_context(patched(target, name, value))
            calls_get[label] = python_calls(bench.get, 200)
            calls_post[label] = python_calls(bench.post, 50)
    print(
        f"\n=== experiments: CPU ms/request in-process, best of {rounds} interleaved rounds "
        f"({n_get} GET, {n_post} POST each), and Python function calls/request ==="
    )
    base = {
        "get": best_get["as is"],
        "post": best_post["as is"],
        "cget": calls_get["as is"],
        "cpost": calls_post["as is"],
    }
    for label, _ in variants:
        get_ms, post_ms = best_get[label], best_post[label]
        print(
            f"  {label:<48} GET {get_ms:6.3f} ms ({get_ms / base['get'] - 1:+4.0%}) "
            f"{calls_get[label]:6.0f} calls ({calls_get[label] / base['cget'] - 1:+4.0%})"
            f" | POST {post_ms:6.3f} ms ({post_ms / base['post'] - 1:+4.0%}) "
            f"{calls_post[label]:6.0f} calls ({calls_post[label] / base['cpost'] - 1:+4.0%})"
        )


def python_calls(fn: Callable[[int], None], n: int) -> float:
    prof = cProfile.Profile()
    prof.enable()
    fn(n)
    prof.disable()
    return pstats.Stats(prof).total_calls / n  # type: ignore[attr-defined]


def write_lock_hold(bench: Bench, n: int) -> None:
    """How long each POST holds SQLite's write lock (BEGIN IMMEDIATE .. COMMIT).

    One writer at a time across every worker: when the lock is held for nearly the
    whole request, POST throughput cannot pass 1 / hold time, whatever the workers.
    """
    from sqlalchemy import event

    engine = bench.runtime.store.engine
    holds: list[float] = []
    opened: dict[int, float] = {}

    def on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("handoff_write", False):
            opened[id(conn)] = time.perf_counter()

    def on_end(conn: Any) -> None:
        started = opened.pop(id(conn), None)
        if started is not None:
            holds.append(time.perf_counter() - started)

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "commit", on_end)
    event.listen(engine, "rollback", on_end)
    try:
        started = time.perf_counter()
        bench.post(n)
        wall = time.perf_counter() - started
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "commit", on_end)
        event.remove(engine, "rollback", on_end)
    held = sum(holds)
    print(
        f"\nPOST write lock: {len(holds) / n:.2f} write transactions/request, held "
        f"{held * 1000 / n:.2f} ms of {wall * 1000 / n:.2f} ms per request ({held / wall:.0%}); "
        f"ceiling for any number of workers ~{n / held:.0f} POST/s on this machine"
    )


def bare_reference(n: int) -> float:
    from bare_flask import app

    client = app.test_client()

    def run(k: int) -> None:
        for _ in range(k):
            client.get("/ping")

    run(200)
    return best(run, n)


def db_references(workdir: Path, n: int) -> dict[str, float]:
    """Floors for a DB-backed endpoint: bare Flask plus one primary-key SELECT, raw
    sqlite3 vs SQLAlchemy Core as Handoff uses it (connect + BEGIN + execute + COMMIT)."""
    import sqlite3

    from flask import Flask, jsonify
    from sqlalchemy import Column, MetaData, String, Table, create_engine, select

    path = workdir / "reference.db"
    raw = sqlite3.connect(path, check_same_thread=False)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("CREATE TABLE item (id TEXT PRIMARY KEY, name TEXT)")
    raw.executemany("INSERT INTO item VALUES (?, ?)", [(f"id{i}", f"n{i}") for i in range(1000)])
    raw.commit()
    engine = create_engine(f"sqlite:///{path}")
    item = Table("item", MetaData(), Column("id", String, primary_key=True), Column("name", String))
    app = Flask("reference")

    @app.get("/raw/<item_id>")
    def by_raw(item_id: str) -> Any:
        row = raw.execute("SELECT id, name FROM item WHERE id = ?", (item_id,)).fetchone()
        return jsonify(id=row[0], name=row[1])

    @app.get("/core/<item_id>")
    def by_core(item_id: str) -> Any:
        with engine.connect() as conn, conn.begin():
            row = conn.execute(select(item).where(item.c.id == item_id)).one()
        return jsonify(id=row.id, name=row.name)

    client = app.test_client()
    found = {}
    for name in ("raw", "core"):

        def run(k: int, name: str = name) -> None:
            for i in range(k):
                client.get(f"/{name}/id{i % 1000}")

        run(200)
        found[name] = best(run, n)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--get", type=int, default=2000)
    parser.add_argument("--post", type=int, default=500)
    parser.add_argument("--pool-size", type=int, default=20_000)
    parser.add_argument("--html", type=Path, default=None, help="write pyinstrument HTML here")
    parser.add_argument("--experiments", action="store_true")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved experiment rounds")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="handoff-profile-") as tmp:
        bench = Bench(Path(tmp), args.pool_size)
        bench.get(200)
        bench.post(20)
        bare_ms = bare_reference(args.get)
        get_ms = best(bench.get, args.get)
        post_ms = best(bench.post, args.post)
        print(
            f"in-process, no server, CPU time: bare Flask {bare_ms:.3f} ms/request, "
            f"GET subscription {get_ms:.3f} ms ({bare_ms / get_ms:.2f}x bare), "
            f"POST activation {post_ms:.3f} ms ({bare_ms / post_ms:.2f}x bare)"
        )
        refs = db_references(Path(tmp), args.get)
        print(
            f"references: bare Flask + 1 PK SELECT via sqlite3 {refs['raw']:.3f} ms, "
            f"via SQLAlchemy Core (connect, BEGIN, SELECT, COMMIT) {refs['core']:.3f} ms"
        )
        write_lock_hold(bench, args.post)
        if not args.no_profile:
            profile("GET subscription", bench.get, args.get, args.html)
            profile("POST activation", bench.post, args.post, args.html)
        if args.experiments:
            experiments(bench, args.get // 2, args.post // 5, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
