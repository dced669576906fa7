"""`handoff report`: bad input answers one line and a non-zero exit; good input writes the
Markdown (and the page) a launch team reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from report_support import (
    ACTIVATED,
    DELIVERED,
    ICCID_REFUSED,
    PO_BOX,
    QUOTE_LINES,
    junit,
    matrix,
    verify,
    write,
    write_matrix,
)

from simulators.bdd.tags import HANDOFFS
from simulators.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["report", *map(str, args)])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ")
    return line


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"areas": {"billing": {"accountable": "bank", "responsible": ["billing"]}}},
            "areas.billing.accountable: 'bank' is not a role (one of mno, mvne, billing, tax, "
            "payments, fulfillment, care, mvno)",
        ),
        (
            {"parties": {"carrier": {"company": "Carrier Co"}}},
            "parties: 'carrier' is not a role",
        ),
        (
            {"areas": {"roaming": {"accountable": "mno"}}},
            "areas: 'roaming' is not a responsibility area (one of activation, billing, tax, "
            "fulfillment, care-escalation, network-outage)",
        ),
        (
            {"points": {"billing-refunds": {"areas": ["billing"]}}},
            "points.billing-refunds: not an integration point (one of partner-activation, ",
        ),
        (
            {"points": {"callbacks": {"areas": ["activation"], "escalation": "night-shift"}}},
            "points.callbacks.escalation: no chain 'night-shift' in escalation",
        ),
        (
            {"escalation": {"platform": [{"contact": "nobody"}]}},
            "escalation.platform[0]: no contact 'nobody' in contacts",
        ),
        (
            {"contacts": {"ada": {"name": "Ada", "party": "mvne", "hours": "24x7"}}},
            "contacts.ada: a contact needs an email or a phone",
        ),
        (
            {"points": {"callbacks": {"areas": ["activation"], "owner": "mvne"}}},
            "points.callbacks: unknown field ('owner' was unexpected)",
        ),
        (
            {"points": {"partner-activation": {"areas": ["activation"], "verify": ["nosuchrole"]}}},
            "points.partner-activation.verify[0]: 'nosuchrole' is not a role handoff verify knows "
            "(one of billing, camara-authorization, camara-device-roaming-status, ",
        ),
    ],
)
def test_a_bad_matrix_is_named_in_one_line(
    tmp_path: Path, features: Path, change: dict[str, object], expected: str
) -> None:
    path = write_matrix(tmp_path / "matrix.yaml", matrix(**change))
    line = one_line_error(run("--matrix", path, "--features", features))
    assert line.startswith(f"Error: {path}: ")
    assert expected in line


def test_malformed_yaml_is_named_with_its_line(tmp_path: Path, features: Path) -> None:
    path = write(tmp_path / "matrix.yaml", "version: 1\npoints:\n  callbacks: [activation\n")
    line = one_line_error(run("--matrix", path, "--features", features))
    assert line.startswith(f"Error: {path}: not valid YAML (line ")


def test_a_matrix_that_is_not_a_mapping_is_refused(tmp_path: Path, features: Path) -> None:
    path = write(tmp_path / "matrix.yaml", "- partner-activation\n")
    line = one_line_error(run("--matrix", path, "--features", features))
    assert "a matrix is a YAML mapping" in line


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("missing.xml", None, "no such results file"),
        ("broken.xml", "<testsuites><testsuite>", "not JUnit XML (no element found"),
        ("coverage.xml", "<coverage line-rate='0.9'/>", "the root element is <coverage>"),
        ("verify.json", '{"verdict": "pass"}', "not a verify result"),
        ("verify-broken.json", '{"role": "mvne",', "not JSON"),
        ("verify-checks.json", '{"role": "mvne", "checks": "all"}', "`checks` must be a list"),
    ],
)
def test_an_unreadable_results_file_is_named_in_one_line(
    tmp_path: Path, features: Path, name: str, text: str | None, expected: str
) -> None:
    path = tmp_path / name
    if text is not None:
        write(path, text)
    matrix_path = write_matrix(tmp_path / "matrix.yaml", matrix())
    line = one_line_error(run("--matrix", matrix_path, "--features", features, "--results", path))
    assert line.startswith(f"Error: {path}: ")
    assert expected in line


def test_a_missing_matrix_or_features_folder_is_named(tmp_path: Path, features: Path) -> None:
    line = one_line_error(run("--matrix", tmp_path / "nope.yaml", "--features", features))
    assert line == f"Error: {tmp_path / 'nope.yaml'}: no such file"
    matrix_path = write_matrix(tmp_path / "matrix.yaml", matrix())
    line = one_line_error(run("--matrix", matrix_path, "--features", tmp_path / "none"))
    assert line.startswith(f"Error: {tmp_path / 'none'}: no features folder (pass --features")


def test_invalid_gherkin_is_named(tmp_path: Path, features: Path) -> None:
    write(
        features / "callbacks" / "broken.feature",
        "Feature: x\n  Scenario: a\n    Given y\n    oops\n",
    )
    matrix_path = write_matrix(tmp_path / "matrix.yaml", matrix())
    line = one_line_error(run("--matrix", matrix_path, "--features", features))
    assert "broken.feature: not valid Gherkin ((4:5): expected:" in line


def test_the_markdown_is_the_checklist_a_launch_team_signs(tmp_path: Path, features: Path) -> None:
    points = matrix()["points"]
    del points["callbacks"]["escalation"]
    results = junit(
        tmp_path / "junit.xml",
        {ACTIVATED: "passed", f"{ICCID_REFUSED}[21 digits]": "passed", QUOTE_LINES: "passed"}
        | {PO_BOX: "failed", DELIVERED: "passed", "test_unit": "passed"},
    )
    mvne = verify(tmp_path / "mvne.json", "mvne", checks=[{"name": "idempotency", "passed": 3}])
    result = run(
        "--matrix",
        write_matrix(tmp_path / "matrix.yaml", matrix(points=points)),
        "--features",
        features,
        "--results",
        results,
        mvne,
        "--markdown",
        tmp_path / "out" / "readiness.md",
    )
    assert result.exit_code == 0, result.output
    # Every known handoff is a point; those the small matrix leaves out are gaps.
    known = len(HANDOFFS)
    assert result.output.startswith(
        f"{known} integration points: 1 failing, {known - 2} gap, 0 unproven, 1 ready;"
    )
    text = (tmp_path / "out" / "readiness.md").read_text()
    assert text.startswith("# Launch readiness: Test Mobile\n")
    checklist = text.split("## Readiness checklist\n", 1)[1].split("\n## ", 1)[0]
    items = [line for line in checklist.splitlines() if line.startswith("- [ ] ")]
    assert items[0] == (
        "- [ ] **billing-tax** (failing, scenario-failing): scenario 'A P.O. Box is refused as "
        "the place of primary use' (billing-tax/quotes.feature:12) failed: AssertionError: "
        "expected 201, got 503"
    )
    assert "- [ ] **callbacks** (gap, no-escalation): no escalation chain: nobody to call" in items
    assert "- [ ] **tenancy** (gap, not-in-matrix): not in the responsibility matrix: no owner" in (
        items
    )
    assert not any("partner-activation" in item for item in items)
    assert (
        "| partner-activation | ready | MVNO operations | MVNE | Ada Noc (MVNE) | 2 of 2 passed "
        "| mvne: pass |" in text
    )
    assert "| Activation | C | R |  |  |  |  |  | A |" in text
    assert "| 2 | 1 h | Bo Lead | MVNO operations |  | +44 20 7946 0999 |  |" in text
    assert "| A P.O. Box is refused as the place of primary use | " in text
    assert "- `handoff verify mvne`: pass against http://127.0.0.1:8700/mvne" in text
    assert "1 JUnit testcases are no scenario of features/ and were left out." in text


def test_with_no_output_named_the_markdown_is_printed(tmp_path: Path, features: Path) -> None:
    matrix_path = write_matrix(tmp_path / "matrix.yaml", matrix())
    result = run("--matrix", matrix_path, "--features", features)
    assert result.exit_code == 0
    assert result.stdout.startswith("# Launch readiness: Test Mobile\n")
    assert "- [ ] **partner-activation** (unproven, no-passing-scenario)" in result.stdout
    assert result.stderr.startswith(f"{len(HANDOFFS)} integration points: ")


def test_out_writes_the_page_and_the_markdown(tmp_path: Path, features: Path) -> None:
    matrix_path = write_matrix(tmp_path / "matrix.yaml", matrix())
    result = run("--matrix", matrix_path, "--features", features, "--out", tmp_path / "out")
    assert result.exit_code == 0
    page = (tmp_path / "out" / "readiness.html").read_text()
    assert (tmp_path / "out" / "readiness.md").read_text().startswith("# Launch readiness")
    assert "Wrote " in result.stderr
    # The page works offline: nothing is fetched, and the diagram is inline SVG.
    for fetched in ("<script", "<link", " src=", "@import", "url(http"):
        assert fetched not in page
    assert '<svg xmlns="http://www.w3.org/2000/svg" id="stack-diagram"' in page


def test_fail_on_gaps_exits_non_zero_while_gaps_remain(tmp_path: Path, features: Path) -> None:
    matrix_path = write_matrix(tmp_path / "matrix.yaml", matrix())
    result = run("--matrix", matrix_path, "--features", features, "--fail-on-gaps")
    assert result.exit_code == 1
    assert "gaps" in result.stderr


def test_the_example_matrix_reports_on_the_project(tmp_path: Path) -> None:
    result = run(
        "--matrix",
        REPO / "examples" / "responsibility.yaml",
        "--features",
        REPO / "features",
        "--results",
        REPO / "tests" / "report" / "data" / "verify-mno.json",
        REPO / "tests" / "report" / "data" / "verify-mvne.json",
        "--markdown",
        tmp_path / "readiness.md",
    )
    assert result.exit_code == 0, result.output
    text = (tmp_path / "readiness.md").read_text()
    assert "# Launch readiness: Kestrel Mobile" in text
    assert "- [ ] **billing-disputes** (gap, no-accountable): nobody is Accountable for tax" in text
    assert (
        "- [ ] **mvne-mno-provisioning** (failing, verify-failing): handoff verify mno against "
        "https://staging.northgate.example/wholesale failed: checks not_a_server_error, "
        "idempotency; operations createServiceOrder"
    ) in text
