"""`handoff verify` throughput: test cases per second (every phase, every schemathesis check
and the domain checks, probes included) against the stack in-process (the app served by
werkzeug's threaded server inside the verifier's own process) and against `handoff up`
under gunicorn (2 worker processes), both over loopback.

The same role, seed and example budget in both modes. The tax engine is the default role:
no callbacks to wait for.

    python benchmarks/verify.py [--role tax] [--max-examples 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).parent))
from run import handoff_stack  # noqa: E402

from simulators.core.config import Settings, _read_or_create_secret  # noqa: E402
from simulators.core.tenancy import BILLING_PLATFORM, derive_api_key  # noqa: E402
from simulators.stack import create_app  # noqa: E402
from simulators.verify.contract import load  # noqa: E402
from simulators.verify.runner import Options, Outcome, verify  # noqa: E402

console = Console()
# Who calls each role's API, for the roles this benchmark knows.
CALLERS = {"tax": BILLING_PLATFORM, "fulfillment": "mvno-alpha", "care": "mvno-alpha-care"}


def run(role: str, base_url: str, key: str, args: argparse.Namespace) -> Outcome:
    options = Options(
        role=role,
        base_url=base_url,
        keys=(key,),
        max_examples=args.max_examples,
        seed=args.seed,
        callback_grace_s=0.5,
    )
    return verify(options, load(role))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default="tax", choices=sorted(CALLERS))
    parser.add_argument("--max-examples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    caller = CALLERS[args.role]
    results: list[tuple[str, Outcome]] = []
    with tempfile.TemporaryDirectory(prefix="handoff-verify-bench-") as tmp:
        workdir = Path(tmp)
        settings = Settings(db_url=f"sqlite:///{workdir / 'inprocess.db'}", secret_key="bench")
        server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        outcome = run(args.role, base, derive_api_key("bench", caller), args)
        server.shutdown()
        results.append(("in-process (werkzeug)", outcome))
        with handoff_stack("gunicorn", 2, workdir) as (base, _pid):
            secret = _read_or_create_secret(workdir / "state-gunicorn")
            outcome = run(args.role, base, derive_api_key(secret, caller), args)
            results.append(("handoff up, gunicorn x2", outcome))
    table = Table(title=f"handoff verify {args.role}, max-examples {args.max_examples}")
    for column in ("target", "test cases", "seconds", "cases/s", "verdict"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for name, outcome in results:
        table.add_row(
            name,
            str(outcome.cases),
            f"{outcome.duration_s:.1f}",
            f"{outcome.cases_per_second:.1f}",
            "pass" if outcome.passed else f"FAIL ({len(outcome.findings)})",
        )
    console.print(table)
    for name, outcome in results:
        for error in outcome.errors:
            console.print(f"[red]{name}[/red]: {error.splitlines()[0]}", highlight=False)
        for finding in outcome.findings:
            console.print(f"[red]{name}[/red]: {finding.operation} {finding.title}")


if __name__ == "__main__":
    main()
