"""What proves an integration point: the scenarios of features/, their outcomes in pytest's
JUnit XML, and the JSON results of `handoff verify`.

pytest-bdd names a scenario's test `test_<scenario name as a Python name>` and JUnit keeps
only that name and the binding module (`tests.bdd.test_features`), not the feature's path:
the scenario, and with it its folder (the integration point) and tags, is found by that
name in features/, whose scenario names the Gherkin lint keeps unique.

A verify result is read as `handoff verify --json` writes it, and tolerantly: the fields
used are `role` (required: the role or contract verified), `base_url`, `passed` (true or
false) or `verdict` ("pass" or "fail"; when both are absent, "fail" if any check or
operation failed), `checks` and `operations`: each either a mapping of name to
`{passed, failed}` (an operation's counts may instead sit in its own `checks` mapping) or a
list of `{name | operationId, passed, failed}`; counts may be numbers or booleans. Others
are ignored.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ReportInputError

# How a test outcome reads, worst first: a scenario run twice (two JUnit files) keeps its worst.
OUTCOMES = ("failed", "passed", "skipped", "not run")


@dataclass(frozen=True)
class Scenario:
    name: str
    folder: str
    feature: str
    line: int
    tags: tuple[str, ...]

    @property
    def test_name(self) -> str:
        return python_test_name(self.name)


@dataclass(frozen=True)
class ScenarioRun:
    scenario: Scenario
    outcome: str
    message: str = ""


@dataclass(frozen=True)
class Count:
    name: str
    passed: int
    failed: int


@dataclass(frozen=True)
class VerifyResult:
    role: str
    source: str
    base_url: str = ""
    verdict: str = "pass"
    checks: tuple[Count, ...] = ()
    operations: tuple[Count, ...] = ()
    # What the run said of its own input (a key refused everywhere): a pass it qualifies.
    warnings: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(check.name for check in self.checks if check.failed)

    @property
    def failed_operations(self) -> tuple[str, ...]:
        return tuple(operation.name for operation in self.operations if operation.failed)


@dataclass
class Results:
    """Every outcome read: scenario test name -> (outcome, message), and verify results."""

    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    verifies: list[VerifyResult] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    testcases: int = 0


def python_test_name(scenario_name: str) -> str:
    """The test pytest-bdd's `scenarios()` makes of a scenario (its `make_python_name`)."""
    name = re.sub(r"\W", "", scenario_name.replace(" ", "_"))
    return "test_" + re.sub(r"^\d+_*", "", name).lower()


def load_features(root: Path) -> dict[str, list[Scenario]]:
    """Folder of `root` -> its scenarios, in file order."""
    if not root.is_dir():
        raise ReportInputError(
            f"{root}: no features folder (pass --features DIR): JUnit testcases are "
            "matched to integration points through their scenarios"
        )
    from gherkin.errors import ParserError
    from gherkin.parser import Parser

    found: dict[str, list[Scenario]] = {}
    for path in sorted(root.rglob("*.feature")):
        relative = path.relative_to(root)
        if len(relative.parts) < 2:
            continue  # a feature outside any handoff folder belongs to no point
        try:
            document: Any = Parser().parse(path.read_text())
        except ParserError as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            first = next((line for line in lines if line != "Parser errors:"), "parse error")
            raise ReportInputError(f"{path}: not valid Gherkin ({first})") from None
        feature = document.get("feature") or {}
        scenarios = found.setdefault(relative.parts[0], [])
        scenarios.extend(_scenarios(feature, relative, _tags(feature)))
    return found


def _tags(node: dict[str, Any]) -> tuple[str, ...]:
    return tuple(tag["name"].lstrip("@") for tag in node.get("tags", []))


def _scenarios(node: dict[str, Any], relative: Path, tags: tuple[str, ...]) -> list[Scenario]:
    found = []
    for child in node.get("children", []):
        if "rule" in child:
            rule = child["rule"]
            found += _scenarios(rule, relative, tags + _tags(rule))
        elif "scenario" in child:
            scenario = child["scenario"]
            found.append(
                Scenario(
                    name=scenario["name"],
                    folder=relative.parts[0],
                    feature=relative.as_posix(),
                    line=scenario["location"]["line"],
                    tags=tuple(dict.fromkeys(tags + _tags(scenario))),
                )
            )
    return found


def read_results(paths: Iterable[Path]) -> Results:
    """Read each JUnit XML (`.xml`) or verify JSON (`.json`) file; another suffix is told
    by its first character."""
    results = Results()
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ReportInputError(f"{path}: no such results file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ReportInputError(f"{path}: cannot be read ({exc})") from None
        kind = path.suffix.lower()
        if kind not in (".xml", ".json"):
            kind = ".json" if text.lstrip().startswith(("{", "[")) else ".xml"
        if kind == ".xml":
            _read_junit(path, text, results)
        else:
            results.verifies.append(_read_verify(path, text))
        results.sources.append(str(path))
    return results


def _read_junit(path: Path, text: str, results: Results) -> None:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise ReportInputError(f"{path}: not JUnit XML ({exc})") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ReportInputError(
            f"{path}: not JUnit XML (the root element is <{root.tag}>, not <testsuites>)"
        )
    for case in root.iter("testcase"):
        name = case.get("name")
        if not name:
            raise ReportInputError(f"{path}: a <testcase> has no name")
        results.testcases += 1
        # A Scenario Outline's tests carry their example in brackets: one scenario.
        test_name = name.split("[", 1)[0]
        outcome, message = _outcome(case)
        earlier = results.outcomes.get(test_name)
        if earlier is None or OUTCOMES.index(outcome) < OUTCOMES.index(earlier[0]):
            results.outcomes[test_name] = (outcome, message)


def _outcome(case: ElementTree.Element) -> tuple[str, str]:
    for tag, outcome in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
        element = case.find(tag)
        if element is not None:
            message = element.get("message") or (element.text or "").strip()
            return outcome, message.splitlines()[0][:300] if message else ""
    return "passed", ""


def _read_verify(path: Path, text: str) -> VerifyResult:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{path}: not JSON ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("role"), str):
        raise ReportInputError(
            f"{path}: not a verify result (a JSON object with a `role`, as `handoff verify` writes)"
        )
    checks = _counts(path, document.get("checks"), "checks", "name")
    operations = _counts(path, document.get("operations"), "operations", "operationId")
    verdict = document.get("verdict")
    if isinstance(document.get("passed"), bool):
        verdict = "pass" if document["passed"] else "fail"
    if verdict not in ("pass", "fail"):
        failed = any(count.failed for count in checks + operations)
        verdict = "fail" if failed else "pass"
    return VerifyResult(
        role=document["role"],
        source=str(path),
        base_url=str(document.get("base_url") or ""),
        verdict=verdict,
        checks=checks,
        operations=operations,
        warnings=tuple(_strings(document.get("warnings"))),
    )


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _counts(path: Path, entries: Any, field_name: str, key: str) -> tuple[Count, ...]:
    if entries is None:
        return ()
    if isinstance(entries, dict):
        # `handoff verify --json`: name -> counts, or an operation -> its checks' counts.
        entries = [{key: name, **_totals(counts)} for name, counts in entries.items()]
    if not isinstance(entries, list):
        raise ReportInputError(f"{path}: `{field_name}` must be a list or a mapping")
    counts = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        counts.append(
            Count(
                name=str(entry.get(key) or entry.get("name") or "?"),
                passed=_number(entry.get("passed")),
                failed=_number(entry.get("failed")),
            )
        )
    return tuple(counts)


def _totals(counts: Any) -> dict[str, int]:
    if not isinstance(counts, dict):
        return {"passed": 0, "failed": 0}
    if "passed" in counts or "failed" in counts or not isinstance(counts.get("checks"), dict):
        return {"passed": _number(counts.get("passed")), "failed": _number(counts.get("failed"))}
    inner = [c for c in counts["checks"].values() if isinstance(c, dict)]
    return {
        "passed": sum(_number(c.get("passed")) for c in inner),
        "failed": sum(_number(c.get("failed")) for c in inner),
    }


def _number(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    return 0
