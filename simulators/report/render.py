"""The report as an HTML page (`templates/`; one file, no external JS or CSS: it opens
offline) and as Markdown."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from .diagram import layout
from .matrix import AREA_TITLES, AREAS, ROLE_TITLES, ROLES, Level
from .model import GAP_KINDS, STATUS_TEXT, STATUSES, Readiness
from .results import VerifyResult

TEMPLATES = Path(__file__).with_name("templates")
COLOURS = {"ready": "#1a7f37", "gap": "#bc4c00", "failing": "#cf222e", "unproven": "#6e7781"}
# Status is told by the dash as well as the colour, for readers who cannot tell the colours.
DASHES = {"ready": "", "gap": "9 5", "failing": "", "unproven": "3 5"}


def _role_title(role: str) -> str:
    return ROLE_TITLES.get(role, role)


def _cell(value: object) -> str:
    """Text safe inside a Markdown table cell or list item."""
    return " ".join(str(value).split()).replace("|", "\\|")


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["role_title"] = _role_title
    environment.globals["role_title"] = _role_title
    return environment


def _context(readiness: Readiness) -> dict[str, Any]:
    accountable_for: dict[str, list[str]] = {role: [] for role in ROLES}
    for point_readiness in readiness.points:
        for role in point_readiness.point.owners:
            accountable_for[role].append(point_readiness.point.id)
    signoff = [
        (role, points)
        for role, points in accountable_for.items()
        if points or role in readiness.matrix.parties
    ]
    return {
        "r": readiness,
        "gaps": readiness.gaps,
        "counts": readiness.counts(),
        "statuses": STATUSES,
        "status_text": STATUS_TEXT,
        "gap_kinds": GAP_KINDS,
        "roles": ROLES,
        "role_titles": ROLE_TITLES,
        "areas": AREAS,
        "area_titles": AREA_TITLES,
        "signoff": signoff,
    }


def svg(readiness: Readiness) -> str:
    """The stack diagram alone, as an SVG document."""
    return (
        _environment()
        .get_template("diagram.svg.j2")
        .render(
            d=layout(readiness),
            operator=readiness.matrix.operator,
            colours=COLOURS,
            dashes=DASHES,
            statuses=STATUSES,
        )
    )


def html(readiness: Readiness) -> str:
    context = _context(readiness)
    context["svg"] = Markup(svg(readiness))
    return _environment().get_template("report.html.j2").render(context)


def markdown(readiness: Readiness) -> str:
    """The same report for a pull request or a wiki: checklist first, no picture."""
    context = _context(readiness)
    matrix, counts = readiness.matrix, context["counts"]
    lines = [f"# Launch readiness: {_cell(matrix.operator)}", ""]
    lines.append(
        f"Responsibility matrix `{matrix.source}`"
        + (f"; generated {readiness.generated_at}." if readiness.generated_at else ".")
    )
    sources = ", ".join(f"`{source}`" for source in readiness.sources) or "none given"
    lines += [f"Results: {sources}.", ""]
    summary = ", ".join(f"{counts[status]} {status}" for status in STATUSES)
    lines += [f"**{len(readiness.points)} integration points:** {summary}.", ""]

    lines += ["## Readiness checklist", ""]
    if context["gaps"]:
        lines += ["Every gap below is closed, or accepted by the point's Accountable party.", ""]
        lines += [
            f"- [ ] **{gap.point}** ({gap.status}, {gap.kind}): {_cell(gap.detail)}"
            for gap in context["gaps"]
        ]
    else:
        lines.append("No gaps: every integration point is owned, reachable and proven.")

    lines += ["", "## Integration points", ""]
    lines += _table(
        ["point", "status", "accountable", "responsible", "first call", "scenarios", "verify"],
        [
            [
                p.point.id,
                p.status,
                _roles(p.point.owners),
                _roles(p.point.responsible),
                _first_call(p.point.escalation),
                f"{p.count('passed')} of {len(p.runs)} passed",
                ", ".join(f"{v.role}: {v.status}" for v in p.verifies) or "—",
            ]
            for p in readiness.points
        ],
    )

    lines += ["", "## Responsibility (RACI)", ""]
    lines += ["A: Accountable, R: Responsible, C: Consulted, I: Informed.", ""]
    lines += _table(
        ["area", *(ROLE_TITLES[role] for role in ROLES)],
        [
            [AREA_TITLES[area], *(raci.letters(role) if raci else "" for role in ROLES)]
            for area in AREAS
            for raci in [matrix.areas.get(area)]
        ],
    )

    lines += ["", "## Escalation chains"]
    for p in readiness.points:
        if not p.point.escalation:
            continue
        lines += ["", f"**{p.point.id}** (`{p.point.chain}`)", ""]
        lines += _table(
            ["level", "when", "contact", "party", "email", "phone", "hours"],
            [
                [
                    str(number),
                    level.after or "first call",
                    level.contact.name
                    + (f", {level.contact.title}" if level.contact.title else ""),
                    ROLE_TITLES[level.contact.party],
                    level.contact.email,
                    level.contact.phone,
                    level.contact.hours,
                ]
                for number, level in enumerate(p.point.escalation, start=1)
            ],
        )

    lines += ["", "## Scenarios and verify results"]
    for p in readiness.points:
        lines += ["", f"### {p.point.id}: {p.status}", "", _cell(p.point.title), ""]
        if p.runs:
            lines += _table(
                ["scenario", "feature", "result"],
                [
                    [
                        run.scenario.name,
                        f"`{run.scenario.feature}:{run.scenario.line}`",
                        run.outcome,
                    ]
                    for run in p.runs
                ],
            )
        else:
            lines.append(f"No scenario in `features/{p.point.id}`.")
        if p.verifies:
            lines.append("")
        for evidence in p.verifies:
            verdicts = "; ".join(_verdict(result) for result in evidence.results)
            lines.append(f"- `handoff verify {evidence.role}`: {verdicts or 'no result given'}")

    lines += ["", "## What counts as a gap", ""]
    lines += [
        f"- **{kind}** ({status}): {meaning}" for kind, (status, meaning) in GAP_KINDS.items()
    ]
    if readiness.unmatched_testcases:
        lines += [
            "",
            f"{readiness.unmatched_testcases} JUnit testcases are no scenario of features/ "
            "and were left out.",
        ]
    for result in readiness.unlinked_verifies:
        lines += [
            "",
            f"The verify result `{result.source}` (role {result.role}) proves no point.",
        ]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _roles(roles: tuple[str, ...]) -> str:
    return ", ".join(_role_title(role) for role in roles) or "—"


def _first_call(escalation: tuple[Level, ...]) -> str:
    if not escalation:
        return "—"
    contact = escalation[0].contact
    return f"{contact.name} ({_role_title(contact.party)})"


def _verdict(result: VerifyResult) -> str:
    text = result.verdict + (f" against {result.base_url}" if result.base_url else "")
    if result.failed_checks:
        text += f" (failed checks: {', '.join(result.failed_checks)})"
    if result.failed_operations:
        text += f" (failed operations: {', '.join(result.failed_operations)})"
    return text
