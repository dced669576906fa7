"""Readiness of every integration point: its owners, its evidence, and the gaps a launch team
must close before it signs off."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .matrix import AREA_TITLES, Matrix, Point
from .results import Results, Scenario, ScenarioRun, VerifyResult

# Worst first: a point's status is that of its worst gap, or ready when it has none.
STATUSES = ("failing", "gap", "unproven", "ready")
STATUS_TEXT = {
    "failing": "failing: a scenario or a verify run failed",
    "gap": "gap: no owner or no escalation contact",
    "unproven": "unproven: nothing has proven it yet",
    "ready": "ready: owned, reachable and proven",
}

# Kind of gap -> (the status it gives the point, what it means).
GAP_KINDS: dict[str, tuple[str, str]] = {
    "scenario-failing": ("failing", "a scenario of the point failed"),
    "verify-failing": ("failing", "handoff verify failed for a role that proves the point"),
    "not-in-matrix": ("gap", "the point is not in the responsibility matrix: nobody owns it"),
    "no-accountable": ("gap", "a responsibility area of the point has no Accountable role"),
    "no-responsible": ("gap", "a responsibility area of the point has no Responsible role"),
    "no-escalation": ("gap", "no escalation chain with a named contact"),
    "no-passing-scenario": ("unproven", "no scenario of the point passed"),
    "verify-missing": ("unproven", "no handoff verify result for a role that proves the point"),
    "verify-warned": (
        "unproven",
        "handoff verify passed with a warning: part of the role was never exercised",
    ),
}


@dataclass(frozen=True)
class Gap:
    point: str
    kind: str
    detail: str

    @property
    def status(self) -> str:
        return GAP_KINDS[self.kind][0]


@dataclass(frozen=True)
class VerifyEvidence:
    role: str
    results: tuple[VerifyResult, ...]

    @property
    def status(self) -> str:
        if not self.results:
            return "missing"
        return "pass" if all(result.passed for result in self.results) else "fail"


@dataclass(frozen=True)
class PointReadiness:
    point: Point
    runs: tuple[ScenarioRun, ...]
    verifies: tuple[VerifyEvidence, ...]
    gaps: tuple[Gap, ...]

    @property
    def status(self) -> str:
        return min((gap.status for gap in self.gaps), key=STATUSES.index, default="ready")

    def count(self, outcome: str) -> int:
        return sum(1 for run in self.runs if run.outcome == outcome)


@dataclass(frozen=True)
class Readiness:
    matrix: Matrix
    points: tuple[PointReadiness, ...]
    sources: tuple[str, ...]
    generated_at: str
    # JUnit testcases that are no scenario of features/ (unit tests in the same file).
    unmatched_testcases: int = 0
    # Verify results whose role no point names in `verify`.
    unlinked_verifies: tuple[VerifyResult, ...] = ()

    @property
    def gaps(self) -> list[Gap]:
        """Every gap, worst first, in point order within a status: the launch checklist."""
        order = {readiness.point.id: index for index, readiness in enumerate(self.points)}
        found = [gap for readiness in self.points for gap in readiness.gaps]
        return sorted(found, key=lambda gap: (STATUSES.index(gap.status), order[gap.point]))

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for readiness in self.points:
            counts[readiness.status] += 1
        return counts

    def by_id(self, point_id: str) -> PointReadiness:
        return next(readiness for readiness in self.points if readiness.point.id == point_id)


def assess(
    matrix: Matrix,
    features: Mapping[str, list[Scenario]],
    results: Results,
    generated_at: str = "",
) -> Readiness:
    """The readiness of every point of `matrix` from the scenarios of `features` and the
    JUnit and verify `results`."""
    points = []
    for point in matrix.points:
        runs = tuple(
            ScenarioRun(scenario, *results.outcomes.get(scenario.test_name, ("not run", "")))
            for scenario in features.get(point.id, [])
        )
        verifies = tuple(
            VerifyEvidence(role, tuple(v for v in results.verifies if v.role == role))
            for role in point.verify
        )
        gaps = _ownership_gaps(point) + _evidence_gaps(point, runs, verifies)
        points.append(PointReadiness(point, runs, verifies, tuple(gaps)))
    scenario_tests = {s.test_name for scenarios in features.values() for s in scenarios}
    linked = {role for point in matrix.points for role in point.verify}
    return Readiness(
        matrix=matrix,
        points=tuple(points),
        sources=tuple(results.sources),
        generated_at=generated_at,
        unmatched_testcases=sum(1 for name in results.outcomes if name not in scenario_tests),
        unlinked_verifies=tuple(v for v in results.verifies if v.role not in linked),
    )


def _ownership_gaps(point: Point) -> list[Gap]:
    if not point.listed:
        return [Gap(point.id, "not-in-matrix", "not in the responsibility matrix: no owner")]
    gaps = []
    if not point.areas:
        gaps += [
            Gap(point.id, "no-accountable", "no responsibility area, so no Accountable"),
            Gap(point.id, "no-responsible", "no responsibility area, so no Responsible"),
        ]
    for area, raci in point.raci.items():
        if raci.accountable is None:
            gaps.append(Gap(point.id, "no-accountable", f"nobody is Accountable for {_area(area)}"))
        if not raci.responsible:
            gaps.append(Gap(point.id, "no-responsible", f"nobody is Responsible for {_area(area)}"))
    if point.chain is None:
        gaps.append(Gap(point.id, "no-escalation", "no escalation chain: nobody to call"))
    elif not point.escalation:
        gaps.append(Gap(point.id, "no-escalation", f"escalation chain {point.chain} names nobody"))
    return gaps


def _area(area: str) -> str:
    return AREA_TITLES[area].lower()


def _evidence_gaps(
    point: Point, runs: tuple[ScenarioRun, ...], verifies: tuple[VerifyEvidence, ...]
) -> list[Gap]:
    gaps = [
        Gap(
            point.id,
            "scenario-failing",
            f"scenario {run.scenario.name!r} ({run.scenario.feature}:{run.scenario.line}) "
            f"failed" + (f": {run.message}" if run.message else ""),
        )
        for run in runs
        if run.outcome == "failed"
    ]
    if not runs:
        gaps.append(Gap(point.id, "no-passing-scenario", f"features/{point.id} has no scenario"))
    elif not any(run.outcome in ("passed", "failed") for run in runs):
        # (Where some failed and none passed, the failures are the gaps to close.)
        tally = ", ".join(
            f"{sum(1 for run in runs if run.outcome == outcome)} {outcome}"
            for outcome in ("skipped", "not run")
            if any(run.outcome == outcome for run in runs)
        )
        gaps.append(
            Gap(point.id, "no-passing-scenario", f"none of {len(runs)} scenarios passed ({tally})")
        )
    for evidence in verifies:
        if evidence.status == "missing":
            gaps.append(
                Gap(point.id, "verify-missing", f"no handoff verify result for {evidence.role}")
            )
        for result in evidence.results:
            if not result.passed:
                gaps.append(Gap(point.id, "verify-failing", _verify_failure(result)))
            gaps.extend(
                Gap(point.id, "verify-warned", f"handoff verify {result.role}: {warning}")
                for warning in result.warnings
            )
    return gaps


def _verify_failure(result: VerifyResult) -> str:
    where = f" against {result.base_url}" if result.base_url else ""
    parts = []
    if result.failed_checks:
        parts.append("checks " + _few(result.failed_checks))
    if result.failed_operations:
        parts.append("operations " + _few(result.failed_operations))
    failed = "; ".join(parts) if parts else "verdict fail"
    return f"handoff verify {result.role}{where} failed: {failed}"


def _few(names: tuple[str, ...], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
