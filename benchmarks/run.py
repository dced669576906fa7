"""Throughput and latency of the Handoff stack under a production WSGI server.

    python benchmarks/run.py [--server gunicorn|granian|both] [--workers 2]
                             [--connections 16] [--duration 10]

For each server it:

1. starts `handoff up --server X --workers N --port P --db sqlite:////tmp/...`
   with a fresh state directory (HANDOFF_STATE_DIR) and waits for /__admin/health;
2. onboards a bench partner (SIM pool of --pool-size, offering po-gb-payg,
   market GB, every capability), activates one subscription (order, settle,
   poll) and lists available ICCIDs for the activation load;
3. loads (a) GET one subscription, (b) POST activation orders, each with a
   fresh externalId and a fresh ICCID, then stops the stack and loads (c) a
   bare Flask endpoint (benchmarks/bare_flask.py) served by the same server
   command with the same worker count;
4. prints a table (req/s, p50/p99, ratios to bare, pass/fail of the targets)
   and the same figures as JSON lines.

The load generator is wrk (benchmarks/wrk/handoff.lua) when installed, else a
Python generator (processes x threads, http.client keep-alive connections).
Targets (issue): GET >= 0.60x bare req/s, POST >= 0.35x, p99 <= 25 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from simulators.mvne.model import ALL_CAPABILITIES  # the capabilities an agreement can grant

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk" / "handoff.lua"

MVNE = "/mvne/tmf-api"
ORDERS = f"{MVNE}/productOrderingManagement/v4/productOrder"
PRODUCTS = f"{MVNE}/productInventoryManagement/v4/product"
SIMS = f"{MVNE}/resourceInventoryManagement/v4/resource"
BARE_PATH = "/ping"
PAGE = 1000  # the contract's maximum page size


# Targets from the issue.
GET_RATIO_TARGET = 0.60
POST_RATIO_TARGET = 0.35
P99_TARGET_MS = 25.0

console = Console(width=None if sys.stdout.isatty() else 150)


# --- results ---------------------------------------------------------------------------


@dataclass
class LoadResult:
    target: str
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # connect/read/write/timeout
    non_2xx: int
    loadgen: str
    exhausted: bool = False
    server_cpu_s: float | None = None  # CPU the server's processes used during the load
    server_wait_s: float | None = None  # time they were runnable but had no CPU
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def starved(self) -> float:
        """Share of the server's runnable time spent waiting for a CPU."""
        if self.server_cpu_s is None or self.server_wait_s is None:
            return math.nan
        busy = self.server_cpu_s + self.server_wait_s
        return self.server_wait_s / busy if busy else math.nan

    @property
    def cpu_ms_per_request(self) -> float:
        if self.server_cpu_s is None or not self.requests:
            return math.nan
        return self.server_cpu_s * 1000 / self.requests


# --- processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f}s")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM the process we started (it stops its own server), then its group if needed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    # Our child ran in its own session: anything left in that group is ours.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.wait(timeout=5)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_tree(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    if root not in parents:
        return set()
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return tree


def tree_cpu(root: int) -> tuple[float, float] | None:
    """(CPU seconds used, seconds spent runnable but waiting for a CPU) of a process tree.

    Linux /proc only. Throughput swings with whatever else the machine runs; the
    CPU the server's own processes spend per request is a much steadier measure
    of its cost, and the run-queue wait says how starved of CPU it was.
    """
    cpu = wait = 0.0
    pids = _process_tree(root)
    if not pids:
        return None
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            for task in Path(f"/proc/{pid}/task").iterdir():
                wait += int((task / "schedstat").read_text().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return cpu, wait


def handoff_command() -> list[str]:
    """The `handoff` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("handoff")
    if script.exists():
        return [str(script)]
    found = shutil.which("handoff")
    if found:
        return [found]
    return [sys.executable, "-c", "from simulators.cli import main; main()"]


@contextmanager
def handoff_stack(
    server: str, workers: int, workdir: Path, *options: str
) -> Iterator[tuple[str, int]]:
    port = free_port()
    state_dir = workdir / f"state-{server}"
    state_dir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{state_dir / 'state.db'}"  # absolute path: sqlite:////tmp/...
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANDOFF_")}
    env["HANDOFF_STATE_DIR"] = str(state_dir)
    log_path = workdir / f"stack-{server}.log"
    cmd = [
        *handoff_command(), "up", "--server", server, "--workers", str(workers),
        "--port", str(port), "--db", db_url, *options,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{base}/__admin/health", process, timeout_s=90)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- {log_path} ---\n{log_tail(log_path)}") from None
        yield base, process.pid
    finally:
        stop_process(process)


@contextmanager
def bare_server(server: str, workers: int, workdir: Path) -> Iterator[tuple[str, int]]:
    """benchmarks/bare_flask.py under the exact command `handoff up` uses for the stack."""
    from simulators.cli import _server_command
    from simulators.core.config import Settings

    port = free_port()
    settings = Settings(host="127.0.0.1", port=port, secret_key="bench")
    cmd = [
        "bare_flask:app" if part == "simulators.wsgi:app" else part
        for part in _server_command(server, settings, workers)
    ]
    assert "bare_flask:app" in cmd, cmd
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    log_path = workdir / f"bare-{server}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http(f"{base}{BARE_PATH}", process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- {log_path} ---\n{log_tail(log_path)}") from None
        yield base, process.pid
    finally:
        stop_process(process)


# --- preparing the stack ------------------------------------------------------------------


@dataclass
class Prepared:
    api_key: str
    product_id: str


def onboard(base: str, pool_size: int) -> str:
    partner_id = f"bench-{uuid.uuid4().hex[:8]}"
    response = requests.post(
        f"{base}/__admin/partners",
        json={
            "id": partner_id,
            "name": "Benchmark partner",
            "agreement": {
                "offerings": ["po-gb-payg"],
                "markets": ["GB"],
                "capabilities": ALL_CAPABILITIES,
                "simPoolSize": pool_size,
            },
        },
        timeout=300,
    )
    if response.status_code != 201:
        raise RuntimeError(f"onboarding answered {response.status_code}: {response.text[:500]}")
    body = response.json()
    if body["simPool"]["available"] < pool_size:
        raise RuntimeError(f"pool has only {body['simPool']['available']} available SIMs")
    return str(body["apiKey"])


def activation_body(external_id: str, iccid: str) -> dict[str, Any]:
    return {
        "externalId": external_id,
        "productOrderItem": [
            {
                "id": "1",
                "action": "add",
                "productOffering": {"id": "po-gb-payg"},
                "product": {
                    "productCharacteristic": [{"name": "ICCID", "value": iccid}],
                    "place": [{"id": "GB", "role": "market"}],
                },
            }
        ],
    }


def list_available(base: str, api_key: str, offset: int, count: int) -> list[str]:
    """Available ICCIDs [offset, offset+count) in the API's order, pages fetched in parallel."""
    offsets = list(range(offset, offset + count, PAGE))

    def page(start: int) -> list[str]:
        limit = min(PAGE, offset + count - start)
        response = requests.get(
            f"{base}{SIMS}",
            params={"resourceStatus": "available", "limit": limit, "offset": start},
            headers={"X-API-Key": api_key},
            timeout=60,
        )
        response.raise_for_status()
        return [sim["iccid"] for sim in response.json()]

    with ThreadPoolExecutor(max_workers=4) as pool:
        pages = list(pool.map(page, offsets))
    return [iccid for chunk in pages for iccid in chunk]


def activate_one(base: str, api_key: str, iccid: str, timeout_s: float = 60.0) -> str:
    """Order one activation and drive it to completed; return the subscription id."""
    headers = {"X-API-Key": api_key}
    response = requests.post(
        f"{base}{ORDERS}",
        json=activation_body(f"bench-seed-{uuid.uuid4().hex[:8]}", iccid),
        headers=headers,
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"activation answered {response.status_code}: {response.text[:500]}")
    order_id = response.json()["id"]
    # `handoff up` runs the dispatcher that drives the order (the MNO provisions it
    # after ~2 simulated seconds), so poll. POST /__admin/settle would run the steps
    # inside a server worker, and their HTTP call to the MNO needs a second free
    # worker: with --workers 1 each such call waits for the peer timeout.
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        order = requests.get(f"{base}{ORDERS}/{order_id}", headers=headers, timeout=30).json()
        if order["state"] == "completed":
            return str(order["productOrderItem"][0]["product"]["id"])
        if order["state"] not in ("acknowledged", "inProgress"):
            raise RuntimeError(f"seed activation ended {order['state']}: {order}")
        time.sleep(0.2)
    raise RuntimeError(f"seed activation {order_id} did not complete in {timeout_s:.0f}s")


def prepare(base: str, pool_size: int) -> Prepared:
    t0 = time.perf_counter()
    api_key = onboard(base, pool_size)
    t1 = time.perf_counter()
    first = list_available(base, api_key, 0, 1)
    product_id = activate_one(base, api_key, first[0])
    t2 = time.perf_counter()
    console.print(
        f"  onboarded {pool_size} SIMs in {t1 - t0:.1f}s, "
        f"seed subscription {product_id} in {t2 - t1:.1f}s"
    )
    return Prepared(api_key, product_id)


def fresh_iccids(base: str, api_key: str, count: int, used: list[str]) -> list[str]:
    """`count` available ICCIDs no earlier load was given.

    The API lists available SIMs in ICCID order; SIMs handed to an earlier load
    come first (those it reserved are no longer listed, any an order released
    are again), so list past them and drop every one of them.
    """
    started = time.perf_counter()
    exclude = set(used)
    listed = list_available(base, api_key, 0, count + len(exclude))
    found = [iccid for iccid in listed if iccid not in exclude][:count]
    console.print(
        f"  listed {len(listed)} available ICCIDs in {time.perf_counter() - started:.1f}s"
    )
    return found


def journal_total(base: str, role: str) -> int | None:
    try:
        response = requests.get(
            f"{base}/__admin/journal",
            params={"role": role, "direction": "inbound", "limit": 1},
            timeout=60,
        )
        return int(response.headers["X-Total-Count"])
    except (requests.RequestException, KeyError, ValueError):
        return None


def count_orders(base: str, api_key: str) -> int | None:
    try:
        response = requests.get(
            f"{base}{ORDERS}", params={"limit": 1}, headers={"X-API-Key": api_key}, timeout=60
        )
        return int(response.headers["X-Total-Count"])
    except (requests.RequestException, KeyError, ValueError):
        return None


# --- load generators ------------------------------------------------------------------------


@dataclass
class Load:
    """One load: what to send."""

    name: str
    url: str
    mode: str  # get | post | bare
    api_key: str | None = None
    iccids: list[str] = field(default_factory=list)


def run_wrk(
    load: Load, connections: int, threads: int, duration: float, workdir: Path
) -> LoadResult:
    threads = max(1, min(threads, connections))
    args = [load.mode]
    if load.mode in ("get", "post"):
        args.append(load.api_key or "")
    if load.mode == "post":
        iccid_file = workdir / f"iccids-{uuid.uuid4().hex[:6]}.txt"
        iccid_file.write_text("\n".join(load.iccids) + "\n")
        args += [str(iccid_file), str(threads), f"wrk{uuid.uuid4().hex[:8]}"]
    cmd = [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s",
        "--timeout", "10s", "--latency", "-s", str(WRK_SCRIPT), load.url, "--", *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    match = re.search(r"^BENCH_RESULT (\{.*\})$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(match.group(1))
    errors = data["errors"]
    latency = data["latency_us"]
    return LoadResult(
        target=load.name,
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        non_2xx=errors["status"],
        loadgen=f"wrk -t{threads} -c{connections}",
        exhausted=data["exhausted_threads"] > 0,
    )


def _py_worker(
    host: str,
    port: int,
    path: str,
    mode: str,
    api_key: str | None,
    iccid_slices: list[list[str]],
    tag: str,
    start_at: float,
    stop_at: float,
    out: Any,
) -> None:
    """One load process: a thread per connection, each with its own keep-alive connection."""
    results: list[tuple[int, int, int, bool, list[float]]] = []
    lock = threading.Lock()

    def connection_loop(index: int, iccids: list[str]) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        headers = {"X-API-Key": api_key} if api_key else {}
        if mode == "post":
            headers["Content-Type"] = "application/json"
        latencies: list[float] = []
        ok = non_2xx = errors = 0
        exhausted = False
        n = 0
        while time.time() < start_at:
            time.sleep(0.001)
        while True:
            now = time.time()
            if now >= stop_at:
                break
            body = None
            if mode == "post":
                if n >= len(iccids):
                    exhausted = True
                    break
                body = json.dumps(activation_body(f"{tag}-{index}-{n}", iccids[n]))
            n += 1
            started = time.perf_counter()
            try:
                conn.request("POST" if mode == "post" else "GET", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                continue
            if time.time() > stop_at:
                break  # finished after the window: not counted
            latencies.append((time.perf_counter() - started) * 1000)
            if 200 <= response.status < 300:
                ok += 1
            else:
                non_2xx += 1
        conn.close()
        with lock:
            results.append((ok, non_2xx, errors, exhausted, latencies))

    threads = [
        threading.Thread(target=connection_loop, args=(i, iccid_slices[i]))
        for i in range(len(iccid_slices))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = sum(r[0] for r in results)
    non_2xx = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    exhausted = any(r[3] for r in results)
    latencies = [value for r in results for value in r[4]]
    out.put((ok, non_2xx, errors, exhausted, latencies))


def run_python(load: Load, connections: int, processes: int, duration: float) -> LoadResult:
    processes = max(1, min(processes, connections))
    match = re.match(r"http://([^:/]+):(\d+)(/.*)$", load.url)
    assert match, load.url
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    # Connection i takes ICCIDs i, i+C, i+2C, ...: no two requests share a SIM.
    slices = [load.iccids[i::connections] for i in range(connections)]
    per_process = [slices[p::processes] for p in range(processes)]
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    out = ctx.Queue()
    start_at = time.time() + 1.0 + 0.1 * processes
    stop_at = start_at + duration
    tag = f"py{uuid.uuid4().hex[:8]}"
    workers = [
        ctx.Process(
            target=_py_worker,
            args=(
                host,
                port,
                path,
                load.mode,
                load.api_key,
                chunk,
                f"{tag}-{p}",
                start_at,
                stop_at,
                out,
            ),
        )
        for p, chunk in enumerate(per_process)
    ]
    for worker in workers:
        worker.start()
    collected = [out.get(timeout=duration + 120) for _ in workers]
    for worker in workers:
        worker.join()
    ok = sum(c[0] for c in collected)
    non_2xx = sum(c[1] for c in collected)
    errors = sum(c[2] for c in collected)
    latencies = sorted(value for c in collected for value in c[4])

    def pct(q: float) -> float:
        if not latencies:
            return math.nan
        return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))]

    return LoadResult(
        target=load.name,
        requests=ok + non_2xx,
        duration_s=duration,
        p50_ms=pct(50),
        p90_ms=pct(90),
        p99_ms=pct(99),
        max_ms=latencies[-1] if latencies else math.nan,
        errors=errors,
        non_2xx=non_2xx,
        loadgen=f"python -P{processes} -c{connections}",
        exhausted=any(c[3] for c in collected),
    )


class Loader:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        wanted = args.loadgen
        if wanted == "auto":
            wanted = "wrk" if shutil.which("wrk") else "python"
        if wanted == "wrk" and not shutil.which("wrk"):
            raise SystemExit("wrk is not installed (apt-get install -y wrk), use --loadgen python")
        self.kind = wanted

    server_pid: int | None = None

    def run(self, load: Load, duration: float) -> LoadResult:
        before = tree_cpu(self.server_pid) if self.server_pid else None
        if self.kind == "wrk":
            result = run_wrk(load, self.args.connections, self.args.threads, duration, self.workdir)
        else:
            result = run_python(load, self.args.connections, self.args.threads, duration)
        after = tree_cpu(self.server_pid) if self.server_pid else None
        if before is not None and after is not None:
            result.server_cpu_s = after[0] - before[0]
            result.server_wait_s = after[1] - before[1]
        return result

    def measure(self, load: Load) -> LoadResult:
        """A warm-up (not counted; fills the workers' caches and pools), then the measured run."""
        warm_requests = 0
        if self.args.warmup > 0:
            warm_requests = self.run(load, self.args.warmup).requests
        result = self.run(load, self.args.duration)
        result.extra["warmup_requests"] = warm_requests
        return result


# --- one server --------------------------------------------------------------------------


def bench_server(
    server: str, args: argparse.Namespace, loader: Loader, workdir: Path
) -> dict[str, LoadResult]:
    results: dict[str, LoadResult] = {}
    console.rule(f"[bold]{server}[/bold], {args.workers} workers, {args.connections} connections")
    # Bare Flask before and after the stack: the spread shows how steady the machine was.
    with bare_server(server, args.workers, workdir) as (base, loader.server_pid):
        results["bare_before"] = loader.measure(
            Load("bare Flask (before)", f"{base}{BARE_PATH}", "bare")
        )
        show(results["bare_before"])
    with handoff_stack(server, args.workers, workdir) as (base, loader.server_pid):
        console.print(f"  stack up on {base}")
        prepared = prepare(base, args.pool_size)
        key = prepared.api_key
        get = Load("GET subscription", f"{base}{PRODUCTS}/{prepared.product_id}", "get", key)
        results["get"] = loader.measure(get)
        show(results["get"])

        url = f"{base}{ORDERS}"
        orders_before = count_orders(base, key)
        used: list[str] = []
        rate = args.max_post_rate
        warm_requests = 0
        if args.warmup > 0:
            warm_count = min(args.pool_size - 1, math.ceil(args.max_post_rate * args.warmup))
            used = fresh_iccids(base, key, warm_count, [])
            warm = loader.run(Load("POST warm-up", url, "post", key, used), args.warmup)
            warm_requests = warm.requests
            rate = max(warm.rps, 1.0)
        # Size the measured run's ICCIDs on the warm-up rate, with room to spare.
        need = min(
            args.pool_size - 1 - len(used),
            args.iccids or math.ceil(rate * args.duration * 2 + 500),
        )
        iccids = fresh_iccids(base, key, need, used)
        mno_before = journal_total(base, "mno")
        results["post"] = loader.run(
            Load("POST activation", url, "post", key, iccids), args.duration
        )
        mno_after = journal_total(base, "mno")
        orders_after = count_orders(base, key)
        extra = results["post"].extra
        extra["warmup_requests"] = warm_requests
        extra["iccids_given"] = len(iccids)
        if orders_before is not None and orders_after is not None:
            extra["orders_created"] = orders_after - orders_before
        if mno_before is not None and mno_after is not None:
            # Lifecycle steps of the dispatcher call the MNO on the same workers.
            extra["mno_requests_during_post"] = mno_after - mno_before
        show(results["post"])
    with bare_server(server, args.workers, workdir) as (base, loader.server_pid):
        results["bare_after"] = loader.measure(
            Load("bare Flask (after)", f"{base}{BARE_PATH}", "bare")
        )
        show(results["bare_after"])
    return results


def show(result: LoadResult) -> None:
    note = ""
    if result.errors or result.non_2xx:
        note = f"  [red]{result.errors} errors, {result.non_2xx} non-2xx[/red]"
    if result.exhausted:
        note += "  [red]ran out of ICCIDs: raise --iccids / --max-post-rate[/red]"
    console.print(
        f"  {result.target:<20} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
        f"p99 {result.p99_ms:6.1f} ms  server CPU {result.cpu_ms_per_request:5.2f} ms/req, "
        f"waited for a CPU {result.starved:4.0%}{note}"
    )


# --- report -----------------------------------------------------------------------------


def bare_rps(results: dict[str, LoadResult]) -> float:
    return (results["bare_before"].rps + results["bare_after"].rps) / 2 or math.nan


def bare_cpu(results: dict[str, LoadResult]) -> float:
    return (
        results["bare_before"].cpu_ms_per_request + results["bare_after"].cpu_ms_per_request
    ) / 2


def verdicts(results: dict[str, LoadResult]) -> dict[str, Any]:
    bare = bare_rps(results)
    get_ratio = results["get"].rps / bare
    post_ratio = results["post"].rps / bare
    before, after = results["bare_before"].rps, results["bare_after"].rps
    cpu = bare_cpu(results)
    return {
        "bare_rps": bare,
        "bare_cpu": cpu,
        "get_cpu_ratio": cpu / results["get"].cpu_ms_per_request,
        "post_cpu_ratio": cpu / results["post"].cpu_ms_per_request,
        "bare_drift": abs(after - before) / bare,
        "get_ratio": get_ratio,
        "post_ratio": post_ratio,
        "get_ratio_pass": get_ratio >= GET_RATIO_TARGET,
        "post_ratio_pass": post_ratio >= POST_RATIO_TARGET,
        "get_p99_pass": results["get"].p99_ms <= P99_TARGET_MS,
        "post_p99_pass": results["post"].p99_ms <= P99_TARGET_MS,
        "valid": all(
            not r.exhausted and r.errors == 0 and r.non_2xx == 0 for r in results.values()
        ),
    }


def mark(ok: bool) -> str:
    return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"


def report(
    all_results: dict[str, dict[str, LoadResult]], args: argparse.Namespace, loader: Loader
) -> list[dict[str, Any]]:
    table = Table(
        title=(
            f"Handoff vs bare Flask: {args.workers} workers, {args.connections} connections, "
            f"{args.duration:g}s per load, {loader.kind}, {os.cpu_count()} CPUs"
        ),
        caption=(
            "x bare = req/s over the mean of the two bare Flask runs of the same server; "
            "CPU ms/req = CPU of the server's processes per request (steadier on a busy box); "
            "CPU x bare = bare CPU ms/req over this one's"
        ),
    )
    for column, justify in (
        ("server", "left"),
        ("load", "left"),
        ("req/s", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("errors", "right"),
        ("x bare", "right"),
        ("CPU ms/req", "right"),
        ("CPU x bare", "right"),
        ("req/s target", "left"),
        (f"p99 <= {P99_TARGET_MS:g} ms", "left"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    lines: list[dict[str, Any]] = []
    for server, results in all_results.items():
        verdict = verdicts(results)
        bare = verdict["bare_rps"]
        rows: list[tuple[str, str, bool | None, bool | None]] = [
            ("bare_before", "(reference)", None, None),
            (
                "get",
                f">= {GET_RATIO_TARGET:.2f}x",
                verdict["get_ratio_pass"],
                verdict["get_p99_pass"],
            ),
            (
                "post",
                f">= {POST_RATIO_TARGET:.2f}x",
                verdict["post_ratio_pass"],
                verdict["post_p99_pass"],
            ),
            ("bare_after", "(reference)", None, None),
        ]
        for key, target, ratio_ok, p99_ok in rows:
            result = results[key]
            ratio = result.rps / bare
            cpu_ratio = verdict["bare_cpu"] / result.cpu_ms_per_request
            problems = result.errors + result.non_2xx
            table.add_row(
                server,
                result.target + (" [red](ICCIDs ran out)[/red]" if result.exhausted else ""),
                f"{result.rps:,.0f}",
                f"{result.p50_ms:.1f}",
                f"{result.p99_ms:.1f}",
                f"[red]{problems}[/red]" if problems else "0",
                f"{ratio:.2f}",
                f"{result.cpu_ms_per_request:.2f}",
                f"{cpu_ratio:.2f}",
                target + ("" if ratio_ok is None else " " + mark(ratio_ok)),
                "" if p99_ok is None else mark(p99_ok),
            )
            lines.append(
                {
                    "kind": "load",
                    "server": server,
                    "target": key,
                    "name": result.target,
                    "workers": args.workers,
                    "connections": args.connections,
                    "duration_s": round(result.duration_s, 3),
                    "requests": result.requests,
                    "rps": round(result.rps, 1),
                    "p50_ms": round(result.p50_ms, 2),
                    "p90_ms": round(result.p90_ms, 2),
                    "p99_ms": round(result.p99_ms, 2),
                    "max_ms": round(result.max_ms, 2),
                    "errors": result.errors,
                    "non_2xx": result.non_2xx,
                    "ratio_to_bare": round(ratio, 3),
                    "server_cpu_ms_per_request": round(result.cpu_ms_per_request, 3),
                    "cpu_ratio_to_bare": round(cpu_ratio, 3),
                    "server_cpu_wait_share": round(result.starved, 3),
                    "loadgen": result.loadgen,
                    "exhausted": result.exhausted,
                    **result.extra,
                }
            )
        table.add_section()
        lines.append(
            {
                "kind": "summary",
                "server": server,
                "workers": args.workers,
                "connections": args.connections,
                "bare_rps": round(bare, 1),
                "bare_drift": round(verdict["bare_drift"], 3),
                "get_rps": round(results["get"].rps, 1),
                "post_rps": round(results["post"].rps, 1),
                "get_ratio": round(verdict["get_ratio"], 3),
                "post_ratio": round(verdict["post_ratio"], 3),
                "get_cpu_ratio": round(verdict["get_cpu_ratio"], 3),
                "post_cpu_ratio": round(verdict["post_cpu_ratio"], 3),
                "get_p99_ms": round(results["get"].p99_ms, 2),
                "post_p99_ms": round(results["post"].p99_ms, 2),
                "targets": {
                    "get_ratio_ge_0_60": verdict["get_ratio_pass"],
                    "post_ratio_ge_0_35": verdict["post_ratio_pass"],
                    "get_p99_le_25ms": verdict["get_p99_pass"],
                    "post_p99_le_25ms": verdict["post_p99_pass"],
                },
                "pass": all(
                    verdict[k]
                    for k in ("get_ratio_pass", "post_ratio_pass", "get_p99_pass", "post_p99_pass")
                ),
                "valid": verdict["valid"],
            }
        )
    console.print(table)
    for server, results in all_results.items():
        verdict = verdicts(results)
        if verdict["bare_drift"] > 0.15:
            console.print(
                f"[yellow]{server}: bare Flask moved {verdict['bare_drift']:.0%} between its two "
                "runs; the machine was not steady (other load?), ratios are approximate.[/yellow]"
            )
        starved = max(r.starved for r in results.values())
        if starved > 0.25:
            console.print(
                f"[yellow]{server}: the server's processes waited for a CPU up to {starved:.0%} "
                "of their runnable time (load generator and other processes share the CPUs); "
                "req/s understate capacity, CPU ms/req are the steadier figures.[/yellow]"
            )
        if not verdict["valid"]:
            console.print(
                f"[red]{server}: errors, non-2xx answers or ICCIDs ran out; see above.[/red]"
            )
    return lines


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("flask", "werkzeug", "gunicorn", "granian", "sqlalchemy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=["gunicorn", "granian", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured load")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of uncounted load before each"
    )
    parser.add_argument(
        "--threads", type=int, default=2,
        help="wrk threads (or load processes for --loadgen python)",
    )  # fmt: skip
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--pool-size", type=int, default=100_000, help="bench partner's SIM pool")
    parser.add_argument(
        "--iccids", type=int, default=0,
        help="ICCIDs for the measured POST load (default: 2 x warm-up rate x duration + 500)",
    )  # fmt: skip
    parser.add_argument(
        "--max-post-rate", type=float, default=2500.0,
        help="highest POST req/s expected; sizes the warm-up's ICCID list",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON lines here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (stores, logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    servers = ["gunicorn", "granian"] if args.server == "both" else [args.server]
    workdir = Path(tempfile.mkdtemp(prefix="handoff-bench-", dir="/tmp"))
    loader = Loader(args, workdir)
    env = versions()
    console.print(
        f"[bold]Handoff benchmark[/bold]  {platform.machine()}, {os.cpu_count()} CPUs, "
        + ", ".join(f"{k} {v}" for k, v in env.items())
        + f"; load generator {loader.kind} (shares the CPUs with the server); temp dir {workdir}"
    )
    started = time.perf_counter()
    all_results: dict[str, dict[str, LoadResult]] = {}
    try:
        for server in servers:
            all_results[server] = bench_server(server, args, loader, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    lines = report(all_results, args, loader)
    console.print(f"total {time.perf_counter() - started:.0f}s")
    meta = {"kind": "environment", "cpus": os.cpu_count(), "loadgen": loader.kind, **env}
    out = [meta, *lines]
    for line in out:
        print(json.dumps(line), flush=True)
    if args.json:
        args.json.write_text("".join(json.dumps(line) + "\n" for line in out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
