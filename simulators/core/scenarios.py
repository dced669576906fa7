"""Scenario packs: named sets of fault rules, data and clock settings in `scenarios/*.yaml`.

A pack is checked whole before anything changes (the contract's `ScenarioPack`
schema, then each rule's own checks) and applied in one transaction, so a bad
pack leaves the stack as it was. Applying a pack again replaces its rules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import Connection

from . import audit
from .clock import parse_iso
from .config import CONTRACTS_DIR
from .contract import YAML_LOADER, field_name, load_contract, read_yaml
from .faults import FaultRule, check_rule
from .problems import DomainError, NotFound

if TYPE_CHECKING:
    from .runtime import Runtime

SCENARIOS_DIR = CONTRACTS_DIR.parent / "scenarios"
# A role's loader for one kind of pack data (e.g. the MVNE's "partners"); what it returns,
# if anything, is what the caller needs to know of what it created (a new partner's key).
DataLoader = Callable[["Runtime", Connection, list[dict[str, Any]], float, str], Any]


class ScenarioNotFound(NotFound):
    code = "SCENARIO_NOT_FOUND"
    title = "No such scenario pack"


class ScenarioInvalid(DomainError):
    code = "SCENARIO_INVALID"
    status = 422
    title = "The scenario pack is not valid"


@dataclass(frozen=True)
class Pack:
    name: str
    path: Path
    document: dict[str, Any]

    @property
    def source(self) -> str:
        return f"scenario:{self.name}"

    def summary(self) -> dict[str, Any]:
        doc = self.document
        return {
            "name": self.name,
            "title": doc["title"],
            "breaks": " ".join(doc["breaks"].split()),
            "handoff": " ".join(doc["handoff"].split()),
            "faults": len(doc.get("faults") or []),
        }


def _line_of(node: yaml.Node, path: list[Any]) -> int:
    """The 1-based line of the YAML node at a JSON path (the deepest one that exists)."""
    for step in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == step), None)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value)
        ):
            child = node.value[step]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


# Each pack file as last read, with what it was read as (the file's version and the
# operations it was checked against): reading the YAML twice (once for the data, once for
# the line numbers of errors) took milliseconds every time a pack was applied. A file
# changed on disk is read again and replaces its entry.
_READ: dict[str, tuple[tuple[int, int, frozenset[tuple[str, frozenset[str]]]], Pack]] = {}


def parse_pack(path: Path, operations: dict[str, set[str]]) -> Pack:
    """Read and check one pack file; every error names the file, the line and the field."""
    stat = path.stat()
    checked_against = frozenset((role, frozenset(ids)) for role, ids in operations.items())
    version = (stat.st_mtime_ns, stat.st_size, checked_against)
    found = _READ.get(str(path))
    if found is None or found[0] != version:
        found = _READ[str(path)] = (version, _read_pack(path, operations))
    kept = found[1]
    # A copy: whoever applies the pack may change what it was given.
    return Pack(kept.name, kept.path, copy.deepcopy(kept.document))


def _read_pack(path: Path, operations: dict[str, set[str]]) -> Pack:
    shown = path.name
    try:
        text = path.read_text()
        node = yaml.compose(text, Loader=YAML_LOADER)
        document = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioInvalid(f"{shown}{at}: not valid YAML: {exc}", file=shown) from None
    if node is None or not isinstance(document, dict):
        raise ScenarioInvalid(
            f"{shown}:1: a pack is a mapping (name, title, faults, ...)", file=shown
        )
    errors = load_contract("admin").component_check("ScenarioPack").errors(document)
    if errors:
        error = errors[0]
        line = _line_of(node, list(error.absolute_path))
        where = field_name(error) or "(pack)"
        raise ScenarioInvalid(
            f"{shown}:{line}: {where}: {error.message}", file=shown, line=line, field=where
        )
    if document["name"] != path.stem:
        line = _line_of(node, ["name"])
        raise ScenarioInvalid(
            f"{shown}:{line}: name: {document['name']!r} must match the file name {path.stem!r}",
            file=shown,
            line=line,
            field="name",
        )
    checked = []
    for index, rule in enumerate(document.get("faults") or []):
        try:
            checked.append(check_rule(rule, operations))
        except DomainError as error:
            inner = str(error.members.get("field") or "")
            steps: list[Any] = ["faults", index, *[s for s in inner.split(".") if s]]
            line = _line_of(node, steps)
            where = f"faults[{index}].{inner}" if inner else f"faults[{index}]"
            raise ScenarioInvalid(
                f"{shown}:{line}: {where}: {error.detail}", file=shown, line=line, field=where
            ) from None
    document["faults"] = checked
    return Pack(path.stem, path, document)


def pack_paths(directory: Path = SCENARIOS_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def find_pack(name: str, operations: dict[str, set[str]], directory: Path = SCENARIOS_DIR) -> Pack:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in pack_paths(directory))
        raise ScenarioNotFound(f"No scenario pack {name}; the packs are: {known}")
    return parse_pack(path, operations)


def apply_pack(
    runtime: Runtime, pack: Pack, *, correlation_id: str | None = None
) -> dict[str, Any]:
    """All or nothing: the pack's earlier rules go, its data, clock and rules come."""
    document = pack.document
    with runtime.store.write() as conn:
        replaced = runtime.faults.clear(conn, source=pack.source)
        clock = document.get("clock") or {}
        if clock:
            epoch = parse_iso(clock["set"]) if "set" in clock else None
            runtime.clock.set_in(conn, epoch, clock.get("frozen"))
        now = runtime.clock.now(conn)
        created: dict[str, Any] = {}
        for kind, items in (document.get("data") or {}).items():
            loaded = runtime.pack_data_loaders[kind](runtime, conn, items, now, pack.source)
            if loaded:
                created[kind] = loaded
        rules: list[FaultRule] = [
            runtime.faults.add(
                conn, {"id": f"{pack.name}-{index + 1}", **rule}, source=pack.source, now=now
            )
            for index, rule in enumerate(document["faults"])
        ]
        audit.record(
            conn,
            at=now,
            role="admin",
            actor="admin",
            partner_id=None,
            action="scenario.applied",
            entity_type="scenario",
            entity_id=pack.name,
            correlation_id=correlation_id,
            details={"faults": [rule.id for rule in rules], "replaced": replaced},
        )
    runtime.faults.changed()
    return {
        "name": pack.name,
        "faults": [rule.id for rule in rules],
        "replaced": replaced,
        "clock": runtime.clock.describe(),
        **({"created": created} if created else {}),
    }
