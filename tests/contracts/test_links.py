"""The OpenAPI links the contracts declare, which the stateful phase follows.

schemathesis checks at load that a link's target operation and parameter names exist;
these tests also check what it only finds out while running: that every runtime
expression points at a field the source response (or request) has, and that a link's
request body only names fields the target accepts. A wrong pointer would not fail
anything, it would silently make the stateful phase fall back to random values.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from simulators.core.contract import HTTP_METHODS, load_contract

CONTRACTS = sorted(path.stem for path in (Path(__file__).parents[2] / "contracts").glob("*.yaml"))
# The roles with resources to create and read back; the sink and CAMARA APIs have none.
WITH_LINKS = ["admin", "billing", "care", "fulfillment", "mno", "mvne", "payments", "tax"]
RESPONSE_BODY = "$response.body#"


class Document:
    def __init__(self, role: str) -> None:
        self.raw: dict[str, Any] = load_contract(role).document
        self.operations: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
            spec["operationId"]: (path, spec, item)
            for path, item in self.raw["paths"].items()
            for method, spec in item.items()
            if method in HTTP_METHODS
        }

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node_at: Any = self.raw
            for part in node["$ref"].removeprefix("#/").split("/"):
                node_at = node_at[part]
            node = node_at
        return node

    def alternatives(self, schema: Any) -> Iterator[dict[str, Any]]:
        """The schema and every schema it combines (allOf, oneOf, anyOf), resolved."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return
        yield schema
        for keyword in ("allOf", "oneOf", "anyOf"):
            for part in schema.get(keyword, []):
                yield from self.alternatives(part)

    def has_field(self, schema: Any, pointer: list[str]) -> bool:
        if not pointer:
            return True
        token, rest = pointer[0], pointer[1:]
        for alternative in self.alternatives(schema):
            if token.isdigit() and "items" in alternative:
                if self.has_field(alternative["items"], rest):
                    return True
            if token in alternative.get("properties", {}):
                if self.has_field(alternative["properties"][token], rest):
                    return True
        return False

    def accepts(self, schema: Any, value: Any) -> list[str]:
        """The fields of `value` (a link's request body) that `schema` does not declare."""
        unknown: list[str] = []
        if isinstance(value, dict):
            for name, nested in value.items():
                declaring = [
                    a for a in self.alternatives(schema) if name in a.get("properties", {})
                ]
                if not declaring:
                    unknown.append(name)
                else:
                    unknown += self.accepts(declaring[0]["properties"][name], nested)
        elif isinstance(value, list):
            arrays = [a for a in self.alternatives(schema) if "items" in a]
            if not arrays:
                return ["[]"]
            for item in value:
                unknown += self.accepts(arrays[0]["items"], item)
        return unknown

    def body_schema(self, spec: dict[str, Any]) -> Any:
        content = self.resolve(spec.get("requestBody", {})).get("content", {})
        return next(iter(content.values()), {}).get("schema")

    def parameter_names(self, operation_id: str) -> set[str]:
        _, spec, item = self.operations[operation_id]
        declared = [*item.get("parameters", []), *spec.get("parameters", [])]
        return {self.resolve(parameter)["name"] for parameter in declared}


def _links(document: Document) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for operation_id, (_, spec, _) in document.operations.items():
        for status, response in spec["responses"].items():
            for name, link in document.resolve(response).get("links", {}).items():
                yield operation_id, status, name, link


def _expressions(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for nested in value.values():
            yield from _expressions(nested)
    elif isinstance(value, list):
        for nested in value:
            yield from _expressions(nested)
    elif isinstance(value, str) and value.startswith("$"):
        yield value


def _broken_expressions(
    document: Document, source: str, status: str, link: dict[str, Any]
) -> list[str]:
    path, spec, _ = document.operations[source]
    response = document.resolve(spec["responses"][status])
    schema = next(iter(response.get("content", {}).values()), {}).get("schema")
    broken = []
    for expression in _expressions([link.get("parameters", {}), link.get("requestBody")]):
        if expression.startswith(RESPONSE_BODY):
            pointer = [
                token for token in expression.removeprefix(RESPONSE_BODY).split("/") if token
            ]
            if schema is None or not document.has_field(schema, pointer):
                broken.append(expression)
        elif expression.startswith("$request.path."):
            if "{" + expression.removeprefix("$request.path.") + "}" not in path:
                broken.append(expression)
        else:
            broken.append(expression)  # no other kind of expression is used
    return broken


@pytest.mark.parametrize("role", WITH_LINKS)
def test_every_link_names_real_operations_parameters_and_fields(role: str) -> None:
    document = Document(role)
    links = list(_links(document))
    assert links, f"{role} declares no links"
    problems = []
    for source, status, name, link in links:
        where = f"{source} {status} {name}"
        target = link.get("operationId")
        if "operationRef" in link or target not in document.operations:
            problems.append(f"{where}: target {target!r} is not an operationId of the contract")
            continue
        unknown = set(link.get("parameters", {})) - document.parameter_names(target)
        if unknown:
            problems.append(f"{where}: {target} has no parameter {sorted(unknown)}")
        if "requestBody" in link:
            schema = document.body_schema(document.operations[target][1])
            fields = (
                ["(no body)"] if schema is None else document.accepts(schema, link["requestBody"])
            )
            if fields:
                problems.append(f"{where}: {target}'s body has no {fields}")
        for expression in _broken_expressions(document, source, status, link):
            problems.append(f"{where}: {expression} points at nothing {source} {status} has")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", CONTRACTS)
def test_schemathesis_builds_the_stateful_phase_from_the_links(role: str) -> None:
    # An invalid link (unknown operation or parameter) raises here, as it would at the
    # start of the stateful phase. A copy: schemathesis adds the links it infers to it.
    schema = schemathesis.openapi.from_dict(copy.deepcopy(load_contract(role).document))
    assert schema.as_state_machine() is not None


@pytest.mark.parametrize("role", WITH_LINKS)
def test_every_event_hub_links_register_to_read_and_unregister(role: str) -> None:
    """The sequence use_after_free judges: register, read, unregister, read again."""
    document = Document(role)
    registers = [op for op in document.operations if op.startswith("register")]
    for register in registers:
        listener = register.removeprefix("register")
        links = document.operations[register][1]["responses"]["201"].get("links", {})
        targets = {link["operationId"] for link in links.values()}
        assert targets == {"get" + listener, "unregister" + listener}, register
        unregistered = document.operations["unregister" + listener][1]["responses"]["204"]
        assert {link["operationId"] for link in unregistered.get("links", {}).values()} == {
            "get" + listener
        }
