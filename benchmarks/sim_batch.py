"""Load one SIM vendor batch file into the MVNE's inventory: seconds, rows/s, peak memory.

Writes a valid vendor output file of N rows (default 100,000) to disk with the format's own
writer (`simulators/core/simfile.py`, a line at a time), starts `handoff up` under gunicorn
with one worker, and PUTs the file to `/mvne/v1/simBatches/{batch}` as a streamed
text/plain body (requests sends the open file). It then checks that every SIM is in the
inventory and sends the same file again (the exactly-once answer: 200, nothing loaded).

Prints the file's size, the seconds and rows/s of the load and of the re-delivery, and the
peak resident memory (VmHWM) of the server worker that took the file, with its peak before
the load for comparison. Targets: <= 10 s and <= 200 MB peak RSS for 100,000 rows.
`HANDOFF_DB=postgresql+psycopg://...` runs it on PostgreSQL (the database is used as is:
point it at an empty one).

    python benchmarks/sim_batch.py [--rows 100000] [--esim] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))
from run import _process_tree, handoff_stack  # noqa: E402

from simulators.core import simfile  # noqa: E402
from simulators.core.identifiers import iccid_with_check_digit  # noqa: E402
from simulators.core.tenancy import derive_api_key  # noqa: E402

PARTNER = "mvno-alpha"
TARGET_S = 10.0
TARGET_MB = 200.0
SIMS = "/mvne/tmf-api/resourceInventoryManagement/v4/resource"


def write_vendor_file(path: Path, rows: int, esim: bool, batch: str) -> None:
    profile_type = "eSIM" if esim else "UICC"
    header = simfile.FileHeader(
        customer=PARTNER,
        profile_type=profile_type,
        batch=batch,
        quantity=rows,
        # Issuer 77, MSINs from 100: outside every pool the reference agreement seeds.
        first_iccid=iccid_with_check_digit("894477000000000001"),
        first_imsi="001010000000100",
        columns=simfile.columns_for(profile_type),
    )
    body = simfile.consecutive_rows(
        header,
        pin1=lambda n: f"{n * 7919 % 10_000:04d}",
        puk1=lambda n: f"{n * 104_729 % 100_000_000:08d}",
        matching_id=lambda n: f"{batch}-{n:08d}",
    )
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.writelines(simfile.write_file(header, body))


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the most resident memory the process has held since it started."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def worker_pids(root: int) -> list[int]:
    """The gunicorn workers under `handoff up` (the processes that serve requests)."""
    found = []
    for pid in _process_tree(root) - {root}:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            parent = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(parent[parent.rindex(")") + 2 :].split()[1])
        if b"gunicorn" in command and ppid != root:
            found.append(pid)
    return found


def put_file(base: str, key: str, path: Path, batch: str) -> tuple[int, float, dict]:
    started = time.perf_counter()
    with path.open("rb") as handle:
        response = requests.put(
            f"{base}/mvne/v1/simBatches/{batch}",
            data=handle,
            headers={"X-API-Key": key, "Content-Type": "text/plain; charset=utf-8"},
            timeout=300,
        )
    return response.status_code, time.perf_counter() - started, response.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--esim", action="store_true", help="an eSIM file (with MATCHING_ID)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (file, store, log)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="handoff-simbatch-"))
    batch = "BENCH-0001"
    path = workdir / f"{batch}.out"
    started = time.perf_counter()
    write_vendor_file(path, args.rows, args.esim, batch)
    print(
        f"file: {args.rows:,} {'eSIM' if args.esim else 'UICC'} rows, "
        f"{path.stat().st_size / 1e6:.1f} MB, written in {time.perf_counter() - started:.1f} s"
    )
    options = ["--db", os.environ["HANDOFF_DB"]] if os.environ.get("HANDOFF_DB") else []
    try:
        with handoff_stack("gunicorn", 1, workdir, *options) as (base, root):
            key = derive_api_key((workdir / "state-gunicorn" / "secret.key").read_text(), PARTNER)
            workers = worker_pids(root)
            before = max((peak_rss_mb(pid) or 0.0) for pid in workers)
            status, seconds, answer = put_file(base, key, path, batch)
            if status != 201:
                print(f"load answered {status}: {answer}")
                return 1
            peak = max((peak_rss_mb(pid) or 0.0) for pid in worker_pids(root))
            loaded = requests.get(
                f"{base}{SIMS}",
                params={"batchNumber": batch, "limit": 1},
                headers={"X-API-Key": key},
                timeout=30,
            ).headers["X-Total-Count"]
            again_status, again_seconds, _ = put_file(base, key, path, batch)
    finally:
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    store = "PostgreSQL" if options else "SQLite"
    print(f"store: {store}; server: gunicorn, 1 worker")
    print(f"load:        {seconds:.2f} s, {args.rows / seconds:,.0f} rows/s (201, {loaded} SIMs)")
    print(f"re-delivery: {again_seconds:.2f} s ({again_status}, nothing loaded)")
    print(f"worker peak RSS: {peak:.0f} MB (before the load: {before:.0f} MB)")
    ok = seconds <= TARGET_S and peak <= TARGET_MB and int(loaded) == args.rows
    print(f"targets <= {TARGET_S:.0f} s and <= {TARGET_MB:.0f} MB: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
