"""The catalogue of step phrases: each step's phrase, an example and the role it touches.

Steps are declared with `phrase(...)` instead of pytest-bdd's decorators directly, so the
same declaration feeds pytest-bdd, `handoff steps`, `features/STEPS.md` and the nearest
phrases shown for an undefined step.

pytest-bdd sees one step definition per keyword (`CataloguedPhrases`), matching every
phrase declared for it: pytest-bdd looks a step up by trying every fixture of the session
(a millisecond a step with a fixture per phrase), and a step line already matched is found
again without trying the phrases.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from pytest_bdd import given, parsers, then, when
from pytest_bdd.parsers import StepParser

F = TypeVar("F", bound=Callable[..., Any])
KEYWORDS = {"given": given, "when": when, "then": then}
_FIELD = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _quoted(text: str) -> str:
    return text


# A value between double quotes: never spans a quote, so phrases cannot overlap.
_quoted.pattern = r'[^"]*'  # type: ignore[attr-defined]


def _json_literal(text: str) -> Any:
    return json.loads(text)


# A bare JSON literal: true, false, null, a number or an array (a string is written between
# quotes).
_json_literal.pattern = r"true|false|null|-?\d+(?:\.\d+)?|\[.*\]"  # type: ignore[attr-defined]


def _number(text: str) -> float:
    return float(text)


_number.pattern = r"\d+(?:\.\d+)?"  # type: ignore[attr-defined]

# The roles as a feature names them.
ROLE_NAMES = {
    "MNO": "mno",
    "MVNE": "mvne",
    "tax engine": "tax",
    "billing platform": "billing",
    "payment gateway": "payments",
    "care BPO": "care",
    "fulfillment vendor": "fulfillment",
}


def _role(text: str) -> str:
    return ROLE_NAMES[text]


_role.pattern = "|".join(ROLE_NAMES)  # type: ignore[attr-defined]


def _unit(text: str) -> float:
    return {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}[text.rstrip("s")]


_unit.pattern = r"seconds?|minutes?|hours?|days?"  # type: ignore[attr-defined]

USAGE_KINDS = {"MB of data": "data", "minutes of voice": "voice", "SMS": "sms"}


def _usage(text: str) -> str:
    return USAGE_KINDS[text]


_usage.pattern = "|".join(USAGE_KINDS)  # type: ignore[attr-defined]

TYPES = {
    "Usage": _usage,
    "Q": _quoted,
    "JSON": _json_literal,
    "N": _number,
    "Role": _role,
    "Unit": _unit,
}


@dataclass(frozen=True)
class Phrase:
    keyword: str
    pattern: str
    example: str
    role: str
    summary: str

    @property
    def text(self) -> str:
        """The phrase as a reader sees it: `the response status code is {status}`."""
        return _FIELD.sub(lambda found: "{" + found[1] + "}", self.pattern)

    @property
    def keywords(self) -> list[str]:
        return self.keyword.split("/")

    @property
    def line(self) -> str:
        return f"{'/'.join(k.capitalize() for k in self.keywords)} {self.text}"


CATALOGUE: list[Phrase] = []
# The modules that declare steps, in the catalogue's order.
STEP_MODULES = [
    "simulators.bdd.steps.http",
    "simulators.bdd.steps.stack",
    "simulators.bdd.steps.mvne",
    "simulators.bdd.steps.mno",
    "simulators.bdd.steps.tax",
    "simulators.bdd.steps.billing",
    "simulators.bdd.steps.payments",
    "simulators.bdd.steps.care",
    "simulators.bdd.steps.callbacks",
    "simulators.bdd.steps.fulfillment",
    "simulators.bdd.steps.settlement",
    "simulators.bdd.steps.camara",
]


def load() -> list[Phrase]:
    """Every declared step (importing the step modules declares them)."""
    import importlib

    for module in STEP_MODULES:
        importlib.import_module(module)
    return CATALOGUE


def phrase(
    keyword: str,
    pattern: str,
    *,
    example: str,
    role: str,
    summary: str = "",
    target_fixture: str | None = None,
) -> Callable[[F], F]:
    """Declare a step: its keyword ("given", or "given/when" for a step that reads well as
    both), `pattern` in `parse` syntax (`{name:Q}` between quotes, `{n:d}`), an example
    line as a feature would write it, and the role the step touches."""
    entry = Phrase(keyword, pattern, example, role, summary)
    CATALOGUE.append(entry)

    def register(function: F) -> F:
        parser = parsers.parse(pattern, extra_types=TYPES)
        for name in entry.keywords:
            if target_fixture is None:
                PHRASES[name].declare(parser, function)
            else:
                # pytest-bdd injects what the step returns: the step needs its own
                # definition (stacklevel 2: a fixture of the module that declared it).
                KEYWORDS[name](parser, target_fixture=target_fixture, stacklevel=2)(function)
        return function

    return register


class CataloguedPhrases(StepParser):
    """pytest-bdd's parser of one keyword's step definition: it matches a step line when
    a phrase declared for that keyword does, and hands the step that phrase's function
    and arguments (`run_phrase` calls it)."""

    def __init__(self, keyword: str) -> None:
        super().__init__(f"any {keyword} phrase of the step catalogue")
        self.keyword = keyword
        self._declared: list[tuple[parsers.parse, Callable[..., Any]]] = []
        self._found: dict[str, tuple[parsers.parse, Callable[..., Any]] | None] = {}

    def declare(self, parser: parsers.parse, function: Callable[..., Any]) -> None:
        self._declared.append((parser, function))
        self._found.clear()

    def _find(self, text: str) -> tuple[parsers.parse, Callable[..., Any]] | None:
        if text not in self._found:
            # The last declared wins, as it did among pytest-bdd's own step definitions
            # (and the catalogue's tests keep any two phrases from matching one example).
            self._found[text] = next(
                (found for found in reversed(self._declared) if found[0].is_matching(text)), None
            )
        return self._found[text]

    def is_matching(self, name: str) -> bool:
        return self._find(name) is not None

    def parse_arguments(self, name: str) -> dict[str, Any] | None:
        found = self._find(name)
        if found is None:
            return None
        parser, function = found
        # Parsed on every run: a JSON literal may be a list the step is free to change.
        return {"phrase_call": (function, parser.parse_arguments(name))}


PHRASES = {keyword: CataloguedPhrases(keyword) for keyword in KEYWORDS}


def run_phrase(
    request: pytest.FixtureRequest,
    phrase_call: tuple[Callable[..., Any], dict[str, Any]],
    datatable: list[list[str]] | None = None,
    docstring: str | None = None,
) -> Any:
    """Call the phrase's function as pytest-bdd calls a step: with the arguments its
    phrase names, the step's data table and doc string if it takes them, and fixtures
    (`handoff`) for its other parameters."""
    function, arguments = phrase_call
    parameters = _parameters(function)
    kwargs = {name: value for name, value in arguments.items() if name in parameters}
    if datatable is not None and "datatable" in parameters:
        kwargs["datatable"] = datatable
    if docstring is not None and "docstring" in parameters:
        kwargs["docstring"] = docstring
    for name, parameter in parameters.items():
        if name not in kwargs and parameter.default is inspect.Parameter.empty:
            kwargs[name] = request.getfixturevalue(name)
    return function(**kwargs)


_SIGNATURES: dict[Callable[..., Any], dict[str, inspect.Parameter]] = {}


def _parameters(function: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    if function not in _SIGNATURES:
        _SIGNATURES[function] = dict(inspect.signature(function).parameters)
    return _SIGNATURES[function]


def define_steps() -> None:
    """Give pytest-bdd one step definition per keyword, in the calling module (a pytest
    plugin) whose fixtures they become."""
    # pytest-bdd reads the step function's signature twice for every step it runs; kept
    # on the function, it is read, not rebuilt from the code object each time.
    run_phrase.__signature__ = inspect.signature(run_phrase)  # type: ignore[attr-defined]
    for keyword, parser in PHRASES.items():
        # stacklevel 2: the fixture belongs to the module that called this function.
        KEYWORDS[keyword](parser, stacklevel=2)(run_phrase)


def nearest(step_type: str, text: str, limit: int = 5) -> list[Phrase]:
    """The declared phrases most like an undefined step, its own keyword first."""
    scored = []
    for entry in CATALOGUE:
        example = entry.example.split(" ", 1)[1] if " " in entry.example else entry.example
        score = max(
            difflib.SequenceMatcher(None, text, entry.text).ratio(),
            difflib.SequenceMatcher(None, text, example).ratio(),
        )
        if step_type in entry.keywords:
            score += 0.05
        scored.append((score, entry))
    scored.sort(key=lambda item: -item[0])
    return [entry for score, entry in scored[:limit] if score > 0.3]


def undefined_step_message(step_type: str, text: str) -> str:
    load()
    suggestions = nearest(step_type, text)
    lines = [f'No step matches "{step_type.capitalize()} {text}".']
    if suggestions:
        lines.append("The nearest phrases are:")
        lines += [f"  {entry.line}    e.g. {entry.example}" for entry in suggestions]
    lines.append("`handoff steps` lists every phrase (features/STEPS.md).")
    return "\n".join(lines)


def rows() -> list[tuple[str, str, str]]:
    """(phrase, example, role) for every step, in declaration order."""
    return [(entry.line, entry.example, entry.role) for entry in load()]


def markdown() -> str:
    """The catalogue as `features/STEPS.md`."""
    out = [
        "# Step phrases",
        "",
        "Generated by `handoff steps --markdown > features/STEPS.md`; a test fails when this",
        "file is out of date. Quoted values take `${name.field}` placeholders for what the",
        "scenario remembered (`${order.id}`, `${subscription.msisdn}`, `${sims.1.iccid}`);",
        "`And`/`But` continue the keyword above. Every scenario starts on a freshly seeded",
        "stack whose clock stands at 2026-03-02T09:00:00Z, acting for the partner",
        "`mvno-alpha` unless a step names another.",
        "",
    ]
    by_role: dict[str, list[Phrase]] = {}
    for entry in load():
        by_role.setdefault(entry.role, []).append(entry)
    for role, entries in by_role.items():
        out += [f"## {role}", "", "| phrase | example | notes |", "|---|---|---|"]
        for entry in entries:
            out.append(
                f"| `{_cell(entry.line)}` | `{_cell(entry.example)}` | {_cell(entry.summary)} |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
