"""The tags every scenario carries, registered as pytest markers, and the Gherkin lint.

A scenario names its handoff (one tag per folder of `features/`), the failure points of
DOMAIN.md it concerns (`@fp-1` ... `@fp-9`) and whether it shows the failure or the
correct handling of it. `pytest -m "fp-6 and failure"` runs what a tag selects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Folder of features/ -> (tag, the handoff, the owner roles).
HANDOFFS: dict[str, tuple[str, str]] = {
    "partner-activation": ("MVNO partner -> MVNE activation (TMF622)", "MVNO, MVNE"),
    "mvne-mno-provisioning": ("MVNE -> MNO provisioning, barring and charging", "MVNE, MNO"),
    "billing-tax": ("billing -> tax engine quotes and reconciliation", "billing, tax"),
    "billing-payments": ("billing -> card payments, dunning -> MVNE", "billing, payments, MVNE"),
    "billing-disputes": ("bill disputes between the MVNE and the billing vendor", "billing, MVNE"),
    "care-diagnostics": ("care BPO -> MVNE diagnostics", "care, MVNE"),
    "network-tickets": ("MVNE -> MNO network trouble tickets", "care, MVNE, MNO"),
    "callbacks": ("event callbacks to partner endpoints, and storms", "MVNE, MVNO"),
    "tenancy": ("partner isolation across every role", "every role"),
    "fulfillment-mapping": (
        "SIM fulfillment -> MVNE batch loads and ICCID mappings, carrier shipments",
        "fulfillment, MVNE, MVNO",
    ),
    "mno-settlement": ("MNO -> MVNO wholesale usage, ledger and settlement", "MNO, MVNO"),
    "camara": (
        "MVNO -> MNO CAMARA network APIs (SIM Swap, Number Verification, roaming)",
        "MNO, MVNO",
    ),
}

FAILURE_POINTS: dict[int, str] = {
    1: "billing dispute between MVNE and billing vendor with no owner",
    2: "ICCID shipped by fulfillment but not (or wrongly) mapped in the MVNE",
    3: "care agent without diagnostic access to MVNE data",
    4: "tax jurisdiction that billing and the tax engine each assume the other handles",
    5: "network ticket stalled because the MNO SLA does not cover its category",
    6: "callback storm: endpoint down, retries without backoff; duplicates, out of order",
    7: "partner data leaking across tenants",
    8: "double settlement, orphan partner order, wrong agreement version, suspension race",
    9: "timeouts and 5xx from any vendor, at any handoff",
}

KINDS = {
    "failure": "the scenario shows the failure happening",
    "handling": "the scenario shows the correct handling",
}
MAX_STEPS = 15


def markers() -> list[tuple[str, str]]:
    """(marker, description) for every tag a scenario may carry."""
    found = [(name, f"handoff: {handoff}") for name, (handoff, _owners) in HANDOFFS.items()]
    found += [
        (f"fp-{number}", f"failure point {number}: {text}")
        for number, text in FAILURE_POINTS.items()
    ]
    found += list(KINDS.items())
    return found


@dataclass
class Finding:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    scenarios: int = 0

    def add(self, path: Path, line: int, message: str) -> None:
        self.findings.append(Finding(path, line, message))


def lint(root: Path) -> LintReport:
    """Check every feature under `root`: a comment block first, known tags on every
    scenario (its folder's handoff, a failure point, failure or handling), unique
    scenario names, at most MAX_STEPS steps each."""
    from gherkin.parser import Parser

    report = LintReport()
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.feature")):
        text = path.read_text()
        if not text.lstrip().startswith("#"):
            report.add(path, 1, "begins without the comment block (handoff, owners, failure)")
        document: Any = Parser().parse(text)
        feature = document.get("feature") or {}
        folder = path.relative_to(root).parts[0] if len(path.relative_to(root).parts) > 1 else ""
        feature_tags = {tag["name"].lstrip("@") for tag in feature.get("tags", [])}
        background_steps = 0
        for child in feature.get("children", []):
            if "background" in child:
                background_steps = len(child["background"]["steps"])
            scenario = child.get("scenario")
            if scenario is None:
                continue
            report.scenarios += 1
            line = scenario["location"]["line"]
            name = scenario["name"]
            if name in names:
                report.add(path, line, f"scenario name {name!r} is also used in {names[name]}")
            names[name] = path
            steps = background_steps + len(scenario["steps"])
            if steps > MAX_STEPS:
                report.add(path, line, f"{name!r} has {steps} steps (at most {MAX_STEPS})")
            _check_tags(
                report,
                path,
                line,
                name,
                folder,
                feature_tags | {tag["name"].lstrip("@") for tag in scenario["tags"]},
            )
    return report


def _check_tags(
    report: LintReport, path: Path, line: int, name: str, folder: str, found: set[str]
) -> None:
    known = {marker for marker, _ in markers()}
    for unknown in sorted(found - known):
        report.add(path, line, f"{name!r}: tag @{unknown} is not registered")
    handoffs = found & set(HANDOFFS)
    if handoffs != {folder}:
        report.add(path, line, f"{name!r}: needs exactly the handoff tag @{folder or '?'}")
    if not any(tag.startswith("fp-") for tag in found):
        report.add(path, line, f"{name!r}: needs a failure point tag (@fp-1 ... @fp-9)")
    if len(found & set(KINDS)) != 1:
        report.add(path, line, f"{name!r}: needs one of @failure or @handling")
