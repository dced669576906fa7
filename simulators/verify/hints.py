"""Reference data a vendor's staging API insists on, given to `handoff verify --set`.

Generated data cannot guess what only the vendor's staging holds: the offering ids a
partner may sell, the ICCIDs in its test pool. Without them every order is refused with
a 4xx, and the checks that judge what follows a success (lifecycle, idempotent retry,
callbacks) have nothing to judge. A hint puts the vendor's value wherever a positive
case carries that field:

    --set productOffering.id=po-gb-payg     a property, by name or by a dotted tail of
                                            its path (here `id` inside `productOffering`)
    --set ICCID=@iccids.txt                 also a TMF characteristic {"name": "ICCID",
                                            "value": ...}; @FILE: one value per line,
                                            each used in turn

Negative cases are left alone: they are meant to be wrong. A hint that reached no request
is reported, since it is most likely misspelt.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis


class HintError(ValueError):
    """A `--set` that cannot be used, said in one line."""


@dataclass
class Hint:
    path: tuple[str, ...]
    values: list[str]
    applied: int = 0
    _turn: Iterator[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(self.values)

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def next_value(self, current: Any) -> Any:
        """The next value, typed like the one it replaces: `--set limit=5` stays a number
        where the schema wants one, and an ICCID stays a string."""
        value = next(self._turn)
        if isinstance(current, str) or current is None:
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value


def parse(specs: tuple[str, ...] | list[str]) -> list[Hint]:
    """`NAME=VALUE` or `NAME=@FILE` each; raises HintError naming the one at fault."""
    hints = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        path = tuple(part for part in name.strip().split("."))
        if not sep or not all(path):
            raise HintError(f"--set {spec!r}: expected NAME=VALUE (or NAME=@FILE)")
        if value.startswith("@"):
            source = Path(value[1:]).expanduser()
            try:
                lines = source.read_text(encoding="utf-8").splitlines()
            except OSError as error:
                raise HintError(f"--set {name}: cannot read {source}: {error.strerror}") from None
            values = [line.strip() for line in lines if line.strip()]
            if not values:
                raise HintError(f"--set {name}: {source} holds no values")
        else:
            values = [value]
        hints.append(Hint(path=path, values=values))
    return hints


def apply(hints: list[Hint], case: Any) -> None:
    """Put each hint's value into the case's path, query and JSON body, where it fits."""
    for hint in hints:
        if len(hint.path) == 1:
            (name,) = hint.path
            for values in (case.path_parameters, case.query):
                if isinstance(values, dict) and name in values:
                    values[name] = hint.next_value(values[name])
                    hint.applied += 1
        if isinstance(case.body, dict | list):
            hint.applied += _into(case.body, hint, ())


def _into(node: Any, hint: Hint, trail: tuple[str, ...]) -> int:
    """Set the hint in `node` and below; return how many places took it."""
    count = 0
    if isinstance(node, list):
        for item in node:
            count += _into(item, hint, trail)
        return count
    if not isinstance(node, dict):
        return 0
    if len(hint.path) == 1 and node.get("name") == hint.path[0] and "value" in node:
        # A TMF characteristic: the hint names the characteristic, not a property.
        node["value"] = hint.next_value(node["value"])
        count += 1
    for key, child in node.items():
        path = (*trail, key)
        if path[-len(hint.path) :] == hint.path and not isinstance(child, dict | list):
            node[key] = hint.next_value(child)
            count += 1
        else:
            count += _into(child, hint, path)
    return count


def hook(
    hints: list[Hint], then: Callable[..., schemathesis.Case[Any]]
) -> Callable[..., schemathesis.Case[Any]]:
    """A `map_case` hook: `then` (the coverage repair) first, the hints over it."""

    def map_case(
        context: schemathesis.HookContext, case: schemathesis.Case[Any]
    ) -> schemathesis.Case[Any]:
        case = then(context, case)
        meta = case.meta
        if hints and (meta is None or meta.generation.mode.is_positive):
            apply(hints, case)
        return case

    return map_case
