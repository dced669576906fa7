"""Readiness per integration point: each kind of gap, and the status that JUnit scenario
outcomes and verify results give a point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.scenario import make_python_name
from report_support import (
    ACTIVATED,
    DELIVERED,
    ICCID_REFUSED,
    MATRIX,
    PO_BOX,
    QUOTE_LINES,
    junit,
    matrix,
    verify,
    write_matrix,
)

from simulators.bdd.tags import HANDOFFS
from simulators.report.errors import ReportInputError
from simulators.report.matrix import known_points, load_matrix
from simulators.report.model import Readiness, assess
from simulators.report.results import load_features, python_test_name, read_results
from simulators.verify.report import write_json
from simulators.verify.runner import Finding, Outcome, Tally

REPO = Path(__file__).resolve().parents[2]
ALL_PASSED = {ACTIVATED: "passed", ICCID_REFUSED: "passed", QUOTE_LINES: "passed"}
ALL_PASSED |= {PO_BOX: "passed", DELIVERED: "passed"}


def readiness(
    tmp_path: Path,
    features: Path,
    document: dict[str, Any] | None = None,
    outcomes: dict[str, str] | None = None,
    verifies: list[Path] | None = None,
) -> Readiness:
    path = write_matrix(tmp_path / "matrix.yaml", document or matrix())
    results = [junit(tmp_path / "junit.xml", outcomes)] if outcomes is not None else []
    loaded = load_matrix(path, known_points(features))
    return assess(loaded, load_features(features), read_results(results + (verifies or [])))


def kinds(result: Readiness, point: str) -> list[str]:
    return [gap.kind for gap in result.by_id(point).gaps]


def test_a_point_owned_reachable_and_proven_is_ready(tmp_path: Path, features: Path) -> None:
    result = readiness(
        tmp_path, features, outcomes=ALL_PASSED, verifies=[verify(tmp_path / "v.json", "mvne")]
    )
    activation = result.by_id("partner-activation")
    assert activation.status == "ready"
    assert activation.gaps == ()
    assert [run.outcome for run in activation.runs] == ["passed", "passed"]
    assert [(v.role, v.status) for v in activation.verifies] == [("mvne", "pass")]
    assert activation.point.owners == ("mvno",)
    assert [level.contact.name for level in activation.point.escalation] == ["Ada Noc", "Bo Lead"]
    assert result.by_id("billing-tax").status == "ready"
    assert result.by_id("callbacks").status == "ready"


def test_a_point_the_matrix_leaves_out_has_no_owner(tmp_path: Path, features: Path) -> None:
    result = readiness(tmp_path, features, outcomes=ALL_PASSED)
    payments = result.by_id("billing-payments")
    assert payments.status == "gap"
    assert kinds(result, "billing-payments") == ["not-in-matrix", "no-passing-scenario"]
    assert payments.gaps[1].detail == "features/billing-payments has no scenario"
    # Every handoff of the scenario tags is a point, listed in the matrix or not.
    assert [p.point.id for p in result.points][: len(HANDOFFS)] == list(HANDOFFS)


def test_an_area_without_an_accountable_role_is_a_gap(tmp_path: Path, features: Path) -> None:
    areas = matrix()["areas"]
    del areas["tax"]["accountable"]
    result = readiness(tmp_path, features, matrix(areas=areas), outcomes=ALL_PASSED)
    assert result.by_id("billing-tax").status == "gap"
    assert [(gap.kind, gap.detail) for gap in result.by_id("billing-tax").gaps] == [
        ("no-accountable", "nobody is Accountable for tax")
    ]
    assert result.by_id("billing-tax").point.owners == ("mvno",)  # billing still has one


def test_an_area_without_a_responsible_role_is_a_gap(tmp_path: Path, features: Path) -> None:
    points = matrix()["points"]
    # The point's own RACI replaces the area's entirely: no Responsible is left.
    points["callbacks"]["raci"] = {"activation": {"accountable": "mvne", "informed": ["mvno"]}}
    result = readiness(tmp_path, features, matrix(points=points), outcomes=ALL_PASSED)
    callbacks = result.by_id("callbacks")
    assert [(gap.kind, gap.detail) for gap in callbacks.gaps] == [
        ("no-responsible", "nobody is Responsible for activation")
    ]
    assert callbacks.point.owners == ("mvne",)
    assert result.by_id("partner-activation").point.owners == ("mvno",)


def test_a_point_with_no_areas_has_no_owner(tmp_path: Path, features: Path) -> None:
    points = matrix()["points"]
    points["callbacks"]["areas"] = []
    result = readiness(tmp_path, features, matrix(points=points), outcomes=ALL_PASSED)
    assert kinds(result, "callbacks") == ["no-accountable", "no-responsible"]


def test_a_point_without_an_escalation_chain_is_a_gap(tmp_path: Path, features: Path) -> None:
    points = matrix()["points"]
    del points["callbacks"]["escalation"]
    escalation = {"platform": MATRIX["escalation"]["platform"], "empty": []}
    points["billing-tax"]["escalation"] = "empty"
    document = matrix(points=points, escalation=escalation)
    result = readiness(tmp_path, features, document, outcomes=ALL_PASSED)
    assert [(g.kind, g.detail) for g in result.by_id("callbacks").gaps] == [
        ("no-escalation", "no escalation chain: nobody to call")
    ]
    assert [(g.kind, g.detail) for g in result.by_id("billing-tax").gaps] == [
        ("no-escalation", "escalation chain empty names nobody")
    ]
    assert result.by_id("callbacks").status == "gap"


def test_a_point_whose_scenarios_did_not_pass_is_unproven(tmp_path: Path, features: Path) -> None:
    outcomes = ALL_PASSED | {DELIVERED: "skipped"}
    result = readiness(tmp_path, features, outcomes=outcomes)
    callbacks = result.by_id("callbacks")
    assert callbacks.status == "unproven"
    assert [(g.kind, g.detail) for g in callbacks.gaps] == [
        ("no-passing-scenario", "none of 1 scenarios passed (1 skipped)")
    ]
    # With no results at all, every scenario is "not run".
    nothing = readiness(tmp_path, features)
    assert [run.outcome for run in nothing.by_id("billing-tax").runs] == ["not run", "not run"]
    assert nothing.by_id("billing-tax").status == "unproven"


def test_a_failing_scenario_fails_its_point(tmp_path: Path, features: Path) -> None:
    # One example of the outline fails in one file, passes in another: the failure counts.
    first = junit(tmp_path / "first.xml", {f"{ICCID_REFUSED}[21 digits]": "failed"})
    second = junit(tmp_path / "second.xml", ALL_PASSED | {f"{ICCID_REFUSED}[21 digits]": "passed"})
    path = write_matrix(tmp_path / "matrix.yaml", matrix())
    loaded = load_matrix(path, known_points(features))
    result = assess(
        loaded,
        load_features(features),
        read_results([first, second, verify(tmp_path / "v.json", "mvne")]),
    )
    activation = result.by_id("partner-activation")
    assert activation.status == "failing"
    assert [run.outcome for run in activation.runs] == ["passed", "failed"]
    assert [(g.kind, g.detail) for g in activation.gaps] == [
        (
            "scenario-failing",
            "scenario 'An ICCID with <defect> is refused' "
            "(partner-activation/activation.feature:10) failed: "
            "AssertionError: expected 201, got 503",
        )
    ]


def test_a_failing_verify_fails_its_point(tmp_path: Path, features: Path) -> None:
    failed = verify(
        tmp_path / "mvne.json",
        "mvne",
        "fail",
        checks=[
            {"name": "idempotency", "passed": 3, "failed": 1},
            {"name": "tenancy_isolation", "passed": 4, "failed": 0},
        ],
        operations=[{"operationId": "createProductOrder", "passed": 9, "failed": 2}],
    )
    result = readiness(tmp_path, features, outcomes=ALL_PASSED, verifies=[failed])
    activation = result.by_id("partner-activation")
    assert activation.status == "failing"
    assert [(g.kind, g.detail) for g in activation.gaps] == [
        (
            "verify-failing",
            "handoff verify mvne against http://127.0.0.1:8700/mvne failed: "
            "checks idempotency; operations createProductOrder",
        )
    ]


def test_a_missing_verify_result_leaves_the_point_unproven(tmp_path: Path, features: Path) -> None:
    result = readiness(tmp_path, features, outcomes=ALL_PASSED)
    activation = result.by_id("partner-activation")
    assert activation.status == "unproven"
    assert [(g.kind, g.detail) for g in activation.gaps] == [
        ("verify-missing", "no handoff verify result for mvne")
    ]
    assert [(v.role, v.status) for v in activation.verifies] == [("mvne", "missing")]


def test_a_point_may_be_proven_by_any_role_handoff_verify_knows(
    tmp_path: Path, features: Path
) -> None:
    document = matrix()
    document["points"]["partner-activation"]["verify"] = ["mvne", "camara-sim-swap"]
    result = readiness(tmp_path, features, document, outcomes=ALL_PASSED)
    assert [v.role for v in result.by_id("partner-activation").verifies] == [
        "mvne",
        "camara-sim-swap",
    ]


def test_the_checklist_puts_failing_points_first(tmp_path: Path, features: Path) -> None:
    points = matrix()["points"]
    del points["callbacks"]["escalation"]
    outcomes = ALL_PASSED | {DELIVERED: "error", PO_BOX: "failed"}
    result = readiness(tmp_path, features, matrix(points=points), outcomes=outcomes)
    # A failing scenario outranks a missing escalation chain.
    assert result.by_id("callbacks").status == "failing"
    assert kinds(result, "callbacks") == ["no-escalation", "scenario-failing"]
    order = [(gap.status, gap.point) for gap in result.gaps]
    # Worst first, then in the order of the points (that of the handoffs).
    assert order[:2] == [("failing", "billing-tax"), ("failing", "callbacks")]
    assert ("gap", "callbacks") in order
    assert [status for status, _ in order] == sorted(
        (status for status, _ in order), key=["failing", "gap", "unproven"].index
    )
    assert result.counts()["failing"] == 2


def test_a_junit_testcase_is_found_by_its_scenario_name(features: Path) -> None:
    scenarios = [s for found in load_features(features).values() for s in found]
    assert {s.test_name for s in scenarios} == {
        ACTIVATED,
        ICCID_REFUSED,
        QUOTE_LINES,
        PO_BOX,
        DELIVERED,
    }
    for scenario in scenarios:
        assert python_test_name(scenario.name) == "test_" + make_python_name(scenario.name)
    po_box = next(s for s in scenarios if s.test_name == PO_BOX)
    assert (po_box.folder, po_box.feature, po_box.line) == (
        "billing-tax",
        "billing-tax/quotes.feature",
        12,
    )
    assert po_box.tags == ("billing-tax", "fp-4", "failure")


def test_every_scenario_of_the_project_maps_to_one_test_name() -> None:
    scenarios = [s for found in load_features(REPO / "features").values() for s in found]
    assert len({s.test_name for s in scenarios}) == len(scenarios)
    assert {s.folder for s in scenarios} <= set(known_points(REPO / "features"))


def test_testcases_that_are_no_scenario_are_counted_apart(tmp_path: Path, features: Path) -> None:
    outcomes = ALL_PASSED | {"test_clock_advances": "failed"}
    result = readiness(tmp_path, features, outcomes=outcomes)
    assert result.unmatched_testcases == 1
    assert result.counts()["failing"] == 0


def test_a_verify_result_is_read_tolerantly(tmp_path: Path, features: Path) -> None:
    # No verdict: it follows the counts; booleans count as 0 and 1; other fields are ignored.
    bare = verify(
        tmp_path / "mvne.json",
        "mvne",
        None,
        checks=[{"name": "signatures", "passed": True, "failed": True}],
        duration_s=12.5,
    )
    other = verify(tmp_path / "tax.json", "tax")
    result = readiness(tmp_path, features, outcomes=ALL_PASSED, verifies=[bare, other])
    (evidence,) = result.by_id("partner-activation").verifies
    assert evidence.status == "fail"
    assert evidence.results[0].failed_checks == ("signatures",)
    # A result for a role no point names is kept aside, not lost.
    assert [v.role for v in result.unlinked_verifies] == ["tax"]


def test_a_new_feature_folder_shows_up_as_a_point(tmp_path: Path, features: Path) -> None:
    (features / "roaming-steering").mkdir()
    (features / "roaming-steering" / "steering.feature").write_text(
        "@roaming-steering\nFeature: Steering\n\n  Scenario: A visited network is steered\n"
        "    Given a line abroad\n"
    )
    result = readiness(tmp_path, features, outcomes=ALL_PASSED)
    assert result.points[-1].point.id == "roaming-steering"
    assert kinds(result, "roaming-steering") == ["not-in-matrix", "no-passing-scenario"]
    # ... and the matrix may now list it.
    points = matrix()["points"] | {"roaming-steering": {"areas": ["activation"]}}
    listed = readiness(tmp_path, features, matrix(points=points), outcomes=ALL_PASSED)
    assert "not-in-matrix" not in kinds(listed, "roaming-steering")


def test_a_handoff_between_a_role_and_itself_is_refused(tmp_path: Path, features: Path) -> None:
    points = matrix()["points"]
    points["callbacks"]["between"] = [["mvne", "mvne"]]
    path = write_matrix(tmp_path / "matrix.yaml", matrix(points=points))
    with pytest.raises(ReportInputError, match="between two roles, not mvne and itself"):
        load_matrix(path, known_points(features))


def test_the_example_matrix_shows_its_two_deliberate_gaps() -> None:
    features = REPO / "features"
    example = load_matrix(REPO / "examples" / "responsibility.yaml", known_points(features))
    result = assess(example, load_features(features), read_results([]))
    ownership = [(gap.point, gap.kind, gap.detail) for gap in result.gaps if gap.status == "gap"]
    # A handoff folder the example leaves out would show here as not-in-matrix: list it.
    assert ownership == [
        ("billing-disputes", "no-accountable", "nobody is Accountable for tax"),
        ("network-tickets", "no-escalation", "no escalation chain: nobody to call"),
    ]
    assert all(point.listed for point in example.points)


def test_the_report_reads_what_handoff_verify_writes(tmp_path: Path) -> None:
    outcome = Outcome(
        role="mvne",
        contract="contracts/mvne.yaml",
        base_url="http://127.0.0.1:8700/mvne",
        started="2026-12-03T19:30:51+00:00",
        phases=["examples"],
        max_examples=5,
        seed=1,
        operations={
            "GET /sims": {"error_model": Tally(passed=3, failed=1)},
            "POST /orders": {"error_model": Tally(passed=2), "tenant_isolation": Tally(passed=1)},
        },
        findings=[Finding("GET /sims", "error_model", "not a problem", "", "curl ...", "fuzzing")],
        warnings=["the key for careKey was refused with 401 on 5 of 5 requests"],
        statuses={"GET /sims": {200: 3, 400: 1}},
    )
    write_json(outcome, tmp_path / "mvne.json")

    [result] = read_results([tmp_path / "mvne.json"]).verifies
    assert (result.role, result.verdict) == ("mvne", "fail")
    assert {(c.name, c.passed, c.failed) for c in result.checks} == {
        ("error_model", 5, 1),
        ("tenant_isolation", 1, 0),
    }
    assert result.failed_operations == ("GET /sims",)
    assert result.warnings == ("the key for careKey was refused with 401 on 5 of 5 requests",)


def test_a_verify_that_passed_with_a_warning_leaves_the_point_unproven(
    tmp_path: Path, features: Path
) -> None:
    warned = verify(
        tmp_path / "mvne.json",
        "mvne",
        "pass",
        warnings=[
            "the key for networkKey was refused with 401 on 59 of 61 requests and nothing "
            "succeeded: is it that scheme's key?",
            7,  # not a warning handoff verify writes: ignored
        ],
    )
    result = readiness(tmp_path, features, outcomes=ALL_PASSED, verifies=[warned])
    activation = result.by_id("partner-activation")
    assert activation.status == "unproven"
    assert [(g.kind, g.detail) for g in activation.gaps] == [
        (
            "verify-warned",
            "handoff verify mvne: the key for networkKey was refused with 401 on 59 of 61 "
            "requests and nothing succeeded: is it that scheme's key?",
        )
    ]
