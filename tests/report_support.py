"""Inputs for the readiness report's tests: a small features/, a matrix, JUnit and verify
results written the way pytest and `handoff verify` write them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import yaml

FEATURES = {
    "partner-activation/activation.feature": """\
# Handoff: MVNO partner -> MVNE activation.
@partner-activation
Feature: Activation

  @fp-9 @handling
  Scenario: An order is activated
    Given the partner has an available SIM

  @fp-2 @failure
  Scenario Outline: An ICCID with <defect> is refused
    Given the partner has an ICCID with <defect>

    Examples:
      | defect            |
      | a bad check digit |
      | 21 digits         |
""",
    "billing-tax/quotes.feature": """\
# Handoff: billing -> tax engine.
@billing-tax
Feature: Quotes

  @fp-4 @handling
  Scenario: A quote lists one line per jurisdiction
    Given a bill

  Rule: A place of primary use is a street address

    @fp-4 @failure
    Scenario: A P.O. Box is refused as the place of primary use
      Given a bill to a P.O. Box
""",
    "callbacks/delivery.feature": """\
# Handoff: event callbacks.
@callbacks
Feature: Delivery

  @fp-6 @handling
  Scenario: An event is delivered once, signed
    Given a callback subscription
""",
}

ACTIVATED = "test_an_order_is_activated"
ICCID_REFUSED = "test_an_iccid_with_defect_is_refused"
QUOTE_LINES = "test_a_quote_lists_one_line_per_jurisdiction"
PO_BOX = "test_a_po_box_is_refused_as_the_place_of_primary_use"
DELIVERED = "test_an_event_is_delivered_once_signed"

MATRIX: dict[str, Any] = {
    "version": 1,
    "operator": "Test Mobile",
    "parties": {"mvno": {"company": "Test Mobile Ltd"}, "mvne": {"company": "Platform Co"}},
    "contacts": {
        "noc": {
            "name": "Ada Noc",
            "party": "mvne",
            "title": "NOC engineer",
            "email": "noc@platform.example",
            "hours": "24x7",
        },
        "lead": {"name": "Bo Lead", "party": "mvno", "phone": "+44 20 7946 0999"},
    },
    "escalation": {"platform": [{"contact": "noc"}, {"contact": "lead", "after": "1 h"}]},
    "areas": {
        "activation": {"accountable": "mvno", "responsible": ["mvne"], "consulted": ["mno"]},
        "billing": {"accountable": "mvno", "responsible": ["billing"]},
        "tax": {"accountable": "mvno", "responsible": ["tax"]},
    },
    "points": {
        "partner-activation": {
            "areas": ["activation"],
            "between": [["mvno", "mvne"]],
            "escalation": "platform",
            "verify": ["mvne"],
        },
        "billing-tax": {
            "areas": ["billing", "tax"],
            "between": [["billing", "tax"]],
            "escalation": "platform",
        },
        "callbacks": {"areas": ["activation"], "escalation": "platform"},
    },
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def matrix(**changes: Any) -> dict[str, Any]:
    """The test matrix with top-level entries replaced."""
    document = copy.deepcopy(MATRIX)
    document.update(changes)
    return document


def write_matrix(path: Path, document: dict[str, Any]) -> Path:
    return write(path, yaml.safe_dump(document, sort_keys=False))


def junit(path: Path, outcomes: dict[str, str]) -> Path:
    """A pytest JUnit file: test name -> passed, failed, error or skipped."""
    cases = []
    for name, outcome in outcomes.items():
        body = {
            "passed": "",
            "failed": '<failure message="AssertionError: expected 201, got 503">trace</failure>',
            "error": '<error message="fixture failed">trace</error>',
            "skipped": '<skipped type="pytest.skip" message="needs the control plane"/>',
        }[outcome]
        attributes = f'classname="tests.bdd.test_features" name={quoteattr(name)} time="0.1"'
        cases.append(f"<testcase {attributes}>{body}</testcase>")
    return write(
        path,
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" tests="{len(cases)}">{"".join(cases)}</testsuite>'
        "</testsuites>",
    )


def verify(path: Path, role: str, verdict: str | None = "pass", **fields: Any) -> Path:
    document: dict[str, Any] = {"role": role, "base_url": f"http://127.0.0.1:8700/{role}"}
    if verdict is not None:
        document["verdict"] = verdict
    document.update(fields)
    return write(path, json.dumps(document))
