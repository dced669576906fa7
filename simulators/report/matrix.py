"""The responsibility matrix: who owns each integration point, whom to call when it breaks,
and which `handoff verify` results prove it (`responsibility.schema.json` is its format)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from ..bdd.tags import HANDOFFS
from ..verify.contract import known_roles
from .errors import ReportInputError

SCHEMA_PATH = Path(__file__).with_name("responsibility.schema.json")

ROLE_TITLES = {
    "mno": "MNO",
    "mvne": "MVNE",
    "billing": "Billing",
    "tax": "Tax engine",
    "payments": "Payments",
    "fulfillment": "SIM fulfillment",
    "care": "Care BPO",
    "mvno": "MVNO operations",
}
ROLES = tuple(ROLE_TITLES)
AREA_TITLES = {
    "activation": "Activation",
    "billing": "Billing",
    "tax": "Tax",
    "fulfillment": "Fulfillment",
    "care-escalation": "Care escalation",
    "network-outage": "Network outage response",
}
AREAS = tuple(AREA_TITLES)


@cache
def validator() -> Draft202012Validator:
    """The matrix schema, compiled once per process."""
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@dataclass(frozen=True)
class Raci:
    responsible: tuple[str, ...] = ()
    accountable: str | None = None
    consulted: tuple[str, ...] = ()
    informed: tuple[str, ...] = ()

    def letters(self, role: str) -> str:
        """What `role` is in this RACI, e.g. "A/R", or "" when it has no part."""
        held = [
            letter
            for letter, roles in (
                ("A", (self.accountable,)),
                ("R", self.responsible),
                ("C", self.consulted),
                ("I", self.informed),
            )
            if role in roles
        ]
        return "/".join(held)


@dataclass(frozen=True)
class Contact:
    id: str
    name: str
    party: str
    title: str = ""
    email: str = ""
    phone: str = ""
    hours: str = ""


@dataclass(frozen=True)
class Level:
    contact: Contact
    after: str = ""


@dataclass(frozen=True)
class Point:
    """One integration point: a folder of features/, with what the matrix says of it."""

    id: str
    title: str
    description: str
    listed: bool
    areas: tuple[str, ...] = ()
    raci: Mapping[str, Raci] = field(default_factory=dict)
    between: tuple[tuple[str, str], ...] = ()
    spans_every_party: bool = False
    chain: str | None = None
    escalation: tuple[Level, ...] = ()
    verify: tuple[str, ...] = ()
    note: str = ""

    @property
    def owners(self) -> tuple[str, ...]:
        """The Accountable role of each of the point's areas, each once."""
        found = [raci.accountable for raci in self.raci.values() if raci.accountable]
        return tuple(dict.fromkeys(found))

    @property
    def responsible(self) -> tuple[str, ...]:
        """The Responsible roles of the point's areas, each once."""
        return tuple(
            dict.fromkeys(role for raci in self.raci.values() for role in raci.responsible)
        )


@dataclass(frozen=True)
class Matrix:
    operator: str
    source: str
    parties: Mapping[str, str]
    areas: Mapping[str, Raci]
    points: tuple[Point, ...]

    def point(self, point_id: str) -> Point:
        return next(point for point in self.points if point.id == point_id)


def known_points(features: Path | None = None) -> dict[str, tuple[str, str]]:
    """Integration point id -> (the handoff, its owner roles as the features describe them):
    the handoffs of the scenario tags, and any further folder of `features`."""
    known = dict(HANDOFFS)
    if features is not None and features.is_dir():
        for folder in sorted(path for path in features.iterdir() if path.is_dir()):
            if any(folder.rglob("*.feature")):
                known.setdefault(folder.name, ("", ""))
    return known


def load_matrix(path: Path, known: Mapping[str, tuple[str, str]]) -> Matrix:
    """Read, validate and resolve the matrix at `path`; every point of `known` is in the
    result, listed in the matrix or not."""
    document = _read_yaml(path)
    error = best_match(validator().iter_errors(document))
    if error is not None:
        raise ReportInputError(f"{path}: {_where(error)}: {_explain(error)}")
    return _resolve(document, path, known)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ReportInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{path}: cannot be read ({exc})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "not YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ReportInputError(f"{path}: not valid YAML ({where}{problem})") from None
    if not isinstance(document, dict):
        raise ReportInputError(
            f"{path}: a matrix is a YAML mapping with version, operator, areas and points"
        )
    return document


def _where(error: ValidationError) -> str:
    where = ""
    for part in error.absolute_path:
        where += f"[{part}]" if isinstance(part, int) else f"{'.' if where else ''}{part}"
    return where or "the matrix"


def _explain(error: ValidationError) -> str:
    instance = error.instance
    if error.validator == "enum" and list(error.validator_value) == list(ROLES):
        return f"{instance!r} is not a role (one of {', '.join(ROLES)})"
    if error.validator == "enum" and list(error.validator_value) == list(AREAS):
        return f"{instance!r} is not a responsibility area (one of {', '.join(AREAS)})"
    if error.validator == "anyOf" and isinstance(instance, dict) and "name" in instance:
        return "a contact needs an email or a phone"
    if error.validator in ("oneOf", "anyOf"):
        return "is neither of the forms the matrix format allows"
    message = str(error.message)
    if error.validator == "additionalProperties":
        return message.replace("Additional properties are not allowed", "unknown field")
    return message if len(message) <= 160 else message[:157] + "..."


def _raci(entry: Mapping[str, Any]) -> Raci:
    return Raci(
        responsible=tuple(entry.get("responsible", ())),
        accountable=entry.get("accountable"),
        consulted=tuple(entry.get("consulted", ())),
        informed=tuple(entry.get("informed", ())),
    )


def _resolve(document: dict[str, Any], path: Path, known: Mapping[str, tuple[str, str]]) -> Matrix:
    contacts = {
        contact_id: Contact(
            id=contact_id,
            name=entry["name"],
            party=entry["party"],
            title=entry.get("title", ""),
            email=entry.get("email", ""),
            phone=entry.get("phone", ""),
            hours=entry.get("hours", ""),
        )
        for contact_id, entry in (document.get("contacts") or {}).items()
    }
    chains: dict[str, tuple[Level, ...]] = {}
    for name, levels in (document.get("escalation") or {}).items():
        resolved = []
        for number, level in enumerate(levels):
            contact = contacts.get(level["contact"])
            if contact is None:
                raise ReportInputError(
                    f"{path}: escalation.{name}[{number}]: no contact {level['contact']!r} "
                    "in contacts"
                )
            resolved.append(Level(contact, level.get("after", "")))
        chains[name] = tuple(resolved)
    areas = {area: _raci(entry) for area, entry in document["areas"].items()}
    listed: dict[str, Any] = document["points"]
    for point_id in listed:
        if point_id not in known:
            raise ReportInputError(
                f"{path}: points.{point_id}: not an integration point (one of {', '.join(known)})"
            )
    # The roles `handoff verify` accepts are its contracts (camara-* included), not the
    # RACI roles: a typo here would otherwise read as a result that never arrived.
    verify_roles = known_roles()
    points = []
    for point_id, (description, owners) in known.items():
        entry = listed.get(point_id)
        if entry is None:
            points.append(_unlisted(point_id, description, owners))
            continue
        chain = entry.get("escalation")
        if chain is not None and chain not in chains:
            raise ReportInputError(
                f"{path}: points.{point_id}.escalation: no chain {chain!r} in escalation"
            )
        own = entry.get("raci") or {}
        for area in own:
            if area not in entry["areas"]:
                raise ReportInputError(
                    f"{path}: points.{point_id}.raci.{area}: the point's areas do not include it"
                )
        between = entry.get("between")
        spans_every = between == "every"
        if between is None:
            spans_every, pairs = _default_between(owners)
        else:
            pairs = () if spans_every else tuple((pair[0], pair[1]) for pair in between)
        for source, target in pairs:
            if source == target:
                raise ReportInputError(
                    f"{path}: points.{point_id}.between: a handoff is between two roles, "
                    f"not {source} and itself"
                )
        verify = tuple(entry.get("verify", ()))
        for number, role in enumerate(verify):
            if role not in verify_roles:
                raise ReportInputError(
                    f"{path}: points.{point_id}.verify[{number}]: {role!r} is not a role "
                    f"handoff verify knows (one of {', '.join(verify_roles)})"
                )
        points.append(
            Point(
                id=point_id,
                title=entry.get("title") or description or point_id,
                description=description,
                listed=True,
                areas=tuple(entry["areas"]),
                # An area the matrix gives no RACI has none: that is a gap, not an error.
                raci={
                    area: _raci(own[area]) if area in own else areas.get(area, Raci())
                    for area in entry["areas"]
                },
                between=pairs,
                spans_every_party=spans_every,
                chain=chain,
                escalation=chains.get(chain, ()) if chain else (),
                verify=verify,
                note=entry.get("note", ""),
            )
        )
    parties = {role: entry["company"] for role, entry in (document.get("parties") or {}).items()}
    return Matrix(
        operator=document["operator"],
        source=str(path),
        parties=parties,
        areas=areas,
        points=tuple(points),
    )


def _unlisted(point_id: str, description: str, owners: str) -> Point:
    spans_every, pairs = _default_between(owners)
    return Point(
        id=point_id,
        title=description or point_id,
        description=description,
        listed=False,
        between=pairs,
        spans_every_party=spans_every,
    )


def _default_between(owners: str) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """The handoffs a point's features name ("care, MVNE, MNO"), as a chain of pairs."""
    if "every" in owners.lower():
        return True, ()
    roles = [name.strip().lower() for name in owners.split(",")]
    roles = [role for role in roles if role in ROLE_TITLES]
    return False, tuple(zip(roles, roles[1:], strict=False))
