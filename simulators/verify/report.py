"""A verification's outcome as files: JSON for tools, JUnit XML for CI, HTML for people."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from .runner import Outcome


def as_dict(outcome: Outcome) -> dict[str, Any]:
    data = asdict(outcome)
    data["passed"] = outcome.passed
    data["casesPerSecond"] = round(outcome.cases_per_second, 1)
    data["checks"] = {
        name: {**asdict(tally), "score": tally.score} for name, tally in outcome.per_check.items()
    }
    data["operations"] = {
        label: {
            "score": outcome.per_operation()[label].score,
            "checks": {name: asdict(tally) for name, tally in sorted(by_check.items())},
        }
        for label, by_check in sorted(outcome.operations.items())
    }
    return data


def write_json(outcome: Outcome, path: Path) -> None:
    path.write_text(json.dumps(as_dict(outcome), indent=2) + "\n")


def write_junit(outcome: Outcome, path: Path) -> None:
    """One test case per operation and check; a failing one lists its findings."""
    findings: dict[tuple[str, str], list[Any]] = {}
    for finding in outcome.findings:
        findings.setdefault((finding.operation, finding.check), []).append(finding)
    suite = ET.Element(
        "testsuite",
        name=f"handoff verify {outcome.role}",
        timestamp=outcome.started,
        time=f"{outcome.duration_s:.3f}",
    )
    tests = failures = errors = 0
    for label, by_check in sorted(outcome.operations.items()):
        for name, tally in sorted(by_check.items()):
            tests += 1
            case = ET.SubElement(suite, "testcase", classname=label, name=name)
            found = findings.pop((label, name), [])
            if found or tally.failed:
                failures += 1
                failure = ET.SubElement(
                    case,
                    "failure",
                    message="; ".join(f.title for f in found) or f"{tally.failed} failed",
                )
                failure.text = "\n\n".join(_finding_text(f) for f in found)
    for (label, name), found in sorted(findings.items()):
        tests += 1
        failures += 1
        case = ET.SubElement(suite, "testcase", classname=label, name=name)
        failure = ET.SubElement(case, "failure", message="; ".join(f.title for f in found))
        failure.text = "\n\n".join(_finding_text(f) for f in found)
    for error in outcome.errors:
        tests += 1
        errors += 1
        case = ET.SubElement(suite, "testcase", classname="run", name="error")
        ET.SubElement(case, "error", message=error.splitlines()[0][:200]).text = error
    for name, reason in sorted(outcome.not_run.items()):
        tests += 1
        case = ET.SubElement(suite, "testcase", classname="run", name=name)
        ET.SubElement(case, "skipped", message=reason)
    for label, reason in sorted(outcome.not_exercised.items()):
        tests += 1
        case = ET.SubElement(suite, "testcase", classname=label, name="not exercised")
        ET.SubElement(case, "skipped", message=reason)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(len(outcome.not_run) + len(outcome.not_exercised)))
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    path.write_bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True))


def _finding_text(finding: Any) -> str:
    lines = [finding.title, finding.message]
    if finding.status is not None:
        lines.append(f"Answered {finding.status}: {finding.response}")
    if finding.curl:
        lines.append(f"Reproduce: {finding.curl}")
    return "\n".join(lines)


def render_html(outcome: Outcome) -> str:
    environment = Environment(
        loader=PackageLoader("simulators.verify", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
    )
    template = environment.get_template("report.html.j2")
    return template.render(
        outcome=outcome,
        per_check=outcome.per_check,
        per_operation=outcome.per_operation(),
    )


def write_html(outcome: Outcome, path: Path) -> None:
    path.write_text(render_html(outcome))
