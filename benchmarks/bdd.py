"""The in-process BDD suite's speed: every scenario of features/ run by pytest as the test
suite runs them (tests/bdd/test_features.py, stack mounted into `responses`, no sockets).

Prints scenarios/s over the whole run (collection and the stack's start-up included), the
median and p90 scenario time (setup + steps + teardown), and where a scenario's time goes:
starting from the seeded store, pytest-bdd finding each step's definition, and the rest
(the steps' HTTP calls and the stack's work). Target (issue: Gherkin step library): the
whole suite under a minute, median scenario <= 20 ms.

The same machine has run this suite's median anywhere from 18 to 30 ms as its CPUs sped up
and slowed down, so the run also times a fixed piece of pure Python (ten million
additions) before and after: compare medians only between runs whose reference agrees.

    python benchmarks/bdd.py [--rounds 3] [-k EXPRESSION]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
FEATURES_TEST = ROOT / "tests" / "bdd" / "test_features.py"


class Timings:
    """A pytest plugin that times each scenario and the parts of it worth naming."""

    def __init__(self) -> None:
        self.scenario_s: dict[str, float] = defaultdict(float)
        self.failed: list[str] = []
        self.start_s: list[float] = []
        self.lookup_s: list[float] = []

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.scenario_s[report.nodeid] += report.duration
        if report.failed:
            self.failed.append(report.nodeid)

    def pytest_configure(self, config: Any) -> None:
        # Once pytest has loaded (and rewritten) the plugins: importing them earlier would
        # trip its warning about modules it cannot rewrite.
        import pytest_bdd.scenario  # noqa: F401 - the module, shadowed by its function below

        from simulators.bdd.world import World

        bdd_scenario = sys.modules["pytest_bdd.scenario"]

        start, lookup = World.start_scenario, bdd_scenario.get_step_function

        def timed_start(world: World) -> None:
            began = time.perf_counter()
            start(world)
            self.start_s.append(time.perf_counter() - began)

        def timed_lookup(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return lookup(*args, **kwargs)
            finally:
                self.lookup_s.append(time.perf_counter() - began)

        World.start_scenario = timed_start  # type: ignore[method-assign]
        bdd_scenario.get_step_function = timed_lookup  # type: ignore[attr-defined]


def reference_s() -> float:
    """Seconds for ten million additions in a Python loop: this machine's speed right now."""
    began = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.perf_counter() - began


def one_round(keyword: str | None) -> tuple[Timings, float, int]:
    timings = Timings()
    args = [str(FEATURES_TEST), "-q", "-p", "no:cacheprovider", "--no-header", "-o",
            "console_output_style=classic"]  # fmt: skip
    if keyword:
        args += ["-k", keyword]
    began = time.perf_counter()
    code = pytest.main(args, plugins=[timings])
    return timings, time.perf_counter() - began, int(code)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    options = parser.parse_args()
    console = Console()
    columns = ["round", "scenarios", "wall s", "scenarios/s", "median ms", "p90 ms",
               "start ms (median)", "step lookup ms (median)", "lookup ms/scenario"]  # fmt: skip
    table = Table(*columns)
    medians = []
    reference_before = reference_s()
    for number in range(1, options.rounds + 1):
        timings, wall, code = one_round(options.keyword)
        if code != 0:
            console.print(f"[red]round {number}: pytest exited {code}: {timings.failed}[/red]")
            return 1
        durations = sorted(timings.scenario_s.values())
        count = len(durations)
        median = statistics.median(durations)
        medians.append(median)
        p90 = durations[int(0.9 * (count - 1))]
        table.add_row(
            str(number),
            str(count),
            f"{wall:.1f}",
            f"{count / wall:.1f}",
            f"{median * 1000:.0f}",
            f"{p90 * 1000:.0f}",
            f"{statistics.median(timings.start_s) * 1000:.1f}",
            f"{statistics.median(timings.lookup_s) * 1000:.2f}",
            f"{sum(timings.lookup_s) / count * 1000:.1f}",
        )
    console.print(table)
    console.print(
        f"machine reference (10 million additions in Python): {reference_before:.2f} s before, "
        f"{reference_s():.2f} s after"
    )
    verdict = "met" if statistics.median(medians) <= 0.020 else "not met"
    console.print(
        f"median scenario {statistics.median(medians) * 1000:.0f} ms: target 20 ms {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
