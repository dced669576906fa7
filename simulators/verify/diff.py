"""What changed between two versions of an OpenAPI 3.0/3.1 contract, and what of it breaks
a partner built against the old one.

The comparison is written here rather than taken from a library. oasdiff, the reference tool,
is Go; the Python packages that diff OpenAPI documents were measured against what a vendor's
new contract does to an integration and fell short: swagger-spec-compatibility reads Swagger
2.0 only and has had no release since 2021, and api-schema-diff (the most complete of the
recent ones) compares `application/json` bodies only, knows neither enums, nor length and
range limits, nor 3.1's type lists, and classifies a change the same way in a request as in a
response, which gets half of them wrong: a field made optional is harmless in what a partner
sends and breaking in what it reads. The parts that are standard come from maintained
libraries: openapi-spec-validator checks both inputs, and `referencing` (the JSON Schema
reference resolver jsonschema uses) follows `$ref`s, into other files too.

A change is breaking when a partner that kept to the old contract may fail against the new
one: a request it sends may now be refused, or an answer it reads may now hold something it
was never told to expect.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.exceptions import OpenAPIError
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from ..core.contract import read_yaml

if TYPE_CHECKING:
    # referencing documents its resolver under this module; the package does not re-export it.
    from referencing._core import Resolver

Direction = Literal["request", "response"]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Limits whose lowering (upper bounds) or raising (lower bounds) refuses values once allowed.
UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
# Keywords that restrict values in ways no ordering captures: adding one narrows, removing
# one widens, changing one may do both.
RESTRICTIONS = ("pattern", "format", "multipleOf")
_TEMPLATE_PARAM = re.compile(r"{[^}/]*}")
_SHOWN_CHARS = 60
# A `$ref` chain longer than this is taken for a loop the validator let through.
_MAX_REF_HOPS = 64


class ContractError(Exception):
    """A contract that cannot be compared: missing, not YAML/JSON, or not valid OpenAPI."""


@dataclass(frozen=True)
class Change:
    """One difference between the old and the new contract, and where it is."""

    kind: str
    breaking: bool
    message: str
    method: str = ""
    path: str = ""
    operation_id: str = ""
    # operation; `query parameter limit`; `request body application/json`;
    # `response 201 application/json`; `response 201 header Location`
    location: str = ""
    # A JSON pointer into the body or value; `*` stands for any array item or map key.
    field: str = ""
    old: Any = None
    new: Any = None

    @property
    def operation(self) -> str:
        where = f"{self.method} {self.path}" if self.method else self.path
        return f"{where} ({self.operation_id})" if self.operation_id else where

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "breaking": self.breaking,
            "message": self.message,
            "method": self.method or None,
            "path": self.path,
            "operationId": self.operation_id or None,
            "location": self.location or None,
            "field": self.field or None,
            "old": self.old,
            "new": self.new,
        }


def shown(value: Any) -> str:
    """A value as one short line for a table cell."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


@dataclass
class Contract:
    """A parsed, validated contract and the resolver for its `$ref`s."""

    source: Path
    document: dict[str, Any]
    resolver: Resolver[Any] = field(repr=False)


# Validation of a large contract takes most of a second: a file seen before is not checked
# again in the same process (the same contract on both sides, or a test suite's many diffs).
_VALID_DIGESTS: set[str] = set()


def load_contract(source: Path) -> Contract:
    """Read and validate one contract; every failure is a `ContractError` of one line."""
    try:
        text = source.read_bytes()
    except FileNotFoundError:
        raise ContractError(f"{source}: no such file") from None
    except OSError as exc:
        raise ContractError(f"{source}: cannot be read ({exc.strerror})") from None
    document = _parse(source, text)
    version = str(document.get("openapi", ""))
    if not version:
        kind = "Swagger 2.0" if "swagger" in document else "not an OpenAPI document"
        raise ContractError(f"{source}: {kind}; OpenAPI 3.0 and 3.1 contracts are compared")
    if not version.startswith("3."):
        raise ContractError(f"{source}: OpenAPI {version}; 3.0 and 3.1 contracts are compared")
    uri = source.resolve().as_uri()
    digest = hashlib.sha256(uri.encode() + b"\0" + text).hexdigest()
    if digest not in _VALID_DIGESTS:
        try:
            validate(document, base_uri=uri)
        except OpenAPIValidationError as exc:
            # The message's first line says what is wrong; the rest dumps the schema.
            problem = _one_line(exc.message.partition("\n")[0])
            where = "/".join(str(part) for part in exc.absolute_path)
            at = f" (at /{where})" if where else ""
            raise ContractError(f"{source}: not valid OpenAPI {version}: {problem}{at}") from None
        except Unresolvable as exc:
            raise ContractError(f"{source}: $ref {exc.ref!r} points nowhere") from None
        except OpenAPIError as exc:
            raise ContractError(f"{source}: not valid OpenAPI: {_one_line(str(exc))}") from None
        _VALID_DIGESTS.add(digest)
    # mypy reads referencing's attrs classes without the `retrieve` alias of their field.
    registry: Registry[Any] = Registry(retrieve=_retrieve)  # type: ignore[call-arg]
    registry = registry.with_resource(uri, DRAFT202012.create_resource(document))
    return Contract(source, document, registry.resolver(uri))


def _parse(source: Path, text: bytes) -> dict[str, Any]:
    try:
        document = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ContractError(f"{source}: not YAML or JSON{line}: {problem}") from None
    except UnicodeDecodeError:
        raise ContractError(f"{source}: not YAML or JSON (not UTF-8 text)") from None
    if not isinstance(document, dict):
        raise ContractError(f"{source}: not an OpenAPI document (no mapping at the top)")
    return document


def _retrieve(uri: str) -> Resource[Any]:
    """Another file a contract's `$ref` names (`common.yaml#/components/schemas/Money`)."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise Unresolvable(ref=uri)  # contracts are compared offline
    path = Path(url2pathname(parts.path))
    try:
        contents = _parse(path, path.read_bytes())
    except (OSError, ContractError):
        raise Unresolvable(ref=uri) from None
    return DRAFT202012.create_resource(contents)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 200 else line[:199] + "…"


def diff_files(old: Path, new: Path) -> list[Change]:
    """Load, validate and compare two contracts (breaking changes first)."""
    return diff_contracts(load_contract(old), load_contract(new))


def diff_contracts(old: Contract, new: Contract) -> list[Change]:
    """The changes from `old` to `new`, breaking ones first, each group in contract order."""
    walker = _Walker()
    try:
        walker.contracts(old, new)
    except Unresolvable as exc:
        raise ContractError(f"$ref {exc.ref!r} points nowhere") from None
    return sorted(walker.changes, key=lambda change: not change.breaking)


# A node of a document together with the resolver its `$ref`s are relative to.
@dataclass(frozen=True)
class _Node:
    value: Any
    resolver: Resolver[Any]
    # The object a `$ref` led to, so a recursive schema is walked once per pair.
    target: int | None = None
    # The name of the schema a oneOf/anyOf branch refers to, to pair branches by.
    name: str | None = None


def _deref(node: _Node) -> _Node:
    value, resolver, target = node.value, node.resolver, node.target
    for _ in range(_MAX_REF_HOPS):
        if not (isinstance(value, dict) and isinstance(value.get("$ref"), str)):
            return _Node(value, resolver, target)
        resolved = resolver.lookup(value["$ref"])
        siblings = {key: item for key, item in value.items() if key != "$ref"}
        # OpenAPI 3.1 lets a Reference Object and a 3.1 schema carry keywords beside `$ref`.
        target = id(resolved.contents)
        value = {**resolved.contents, **siblings} if siblings else resolved.contents
        resolver = resolved.resolver
    raise Unresolvable(ref=str(node.value.get("$ref")))


@dataclass(frozen=True)
class _Site:
    method: str = ""
    path: str = ""
    operation_id: str = ""
    location: str = ""

    def at(self, location: str) -> _Site:
        return replace(self, location=location)


@dataclass
class _Operation:
    method: str
    path: str
    spec: dict[str, Any]
    resolver: Resolver[Any]
    path_parameters: list[Any]
    # The contract's `security` when the operation has none of its own.
    default_security: Any = None

    @property
    def security(self) -> set[frozenset[tuple[str, tuple[str, ...]]]]:
        """The ways a caller may authenticate: each a set of schemes with their scopes, the
        empty set standing for "anonymously"."""
        requirements = self.spec.get("security", self.default_security)
        if not isinstance(requirements, list) or not requirements:
            return {frozenset()}
        return {
            frozenset(
                (str(scheme), tuple(sorted(str(scope) for scope in scopes or [])))
                for scheme, scopes in requirement.items()
            )
            for requirement in requirements
            if isinstance(requirement, dict)
        }

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", ""))


def _operations(contract: Contract) -> dict[tuple[str, str], _Operation]:
    operations = {}
    for path, item in (contract.document.get("paths") or {}).items():
        resolved = _deref(_Node(item, contract.resolver))
        if not isinstance(resolved.value, dict):
            continue
        shared = resolved.value.get("parameters") or []
        for method in HTTP_METHODS:
            spec = resolved.value.get(method)
            if isinstance(spec, dict):
                key = (method.upper(), _TEMPLATE_PARAM.sub("{}", str(path)))
                operations[key] = _Operation(
                    method.upper(),
                    str(path),
                    spec,
                    resolved.resolver,
                    shared,
                    contract.document.get("security"),
                )
    return operations


class _Walker:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def emit(
        self,
        site: _Site,
        kind: str,
        breaking: bool,
        message: str,
        pointer: str = "",
        old: Any = None,
        new: Any = None,
    ) -> None:
        self.changes.append(
            Change(
                kind=kind,
                breaking=breaking,
                message=message,
                method=site.method,
                path=site.path,
                operation_id=site.operation_id,
                location=site.location,
                field=pointer,
                old=old,
                new=new,
            )
        )

    # -- operations ---------------------------------------------------------------------

    def contracts(self, old: Contract, new: Contract) -> None:
        old_ops, new_ops = _operations(old), _operations(new)
        old_paths = {path for _method, path in old_ops}
        new_paths = {path for _method, path in new_ops}
        reported_paths: set[str] = set()
        for key, operation in old_ops.items():
            if key in new_ops:
                self.operation(operation, new_ops[key])
                continue
            if key[1] not in new_paths:
                if key[1] not in reported_paths:
                    reported_paths.add(key[1])
                    methods = sorted(m for m, p in old_ops if p == key[1])
                    self.emit(
                        _Site(path=operation.path),
                        "path-removed",
                        True,
                        "path removed",
                        old=methods,
                    )
                continue
            site = _Site(operation.method, operation.path, operation.operation_id, "operation")
            self.emit(site, "operation-removed", True, "operation removed")
        for key, operation in new_ops.items():
            if key in old_ops:
                continue
            if key[1] not in old_paths:
                if key[1] not in reported_paths:
                    reported_paths.add(key[1])
                    methods = sorted(m for m, p in new_ops if p == key[1])
                    site = _Site(path=operation.path)
                    self.emit(site, "path-added", False, "path added", new=methods)
                continue
            site = _Site(operation.method, operation.path, operation.operation_id, "operation")
            self.emit(site, "operation-added", False, "operation added")

    def operation(self, old: _Operation, new: _Operation) -> None:
        site = _Site(new.method, new.path, new.operation_id or old.operation_id, "operation")
        if not old.spec.get("deprecated") and new.spec.get("deprecated"):
            self.emit(site, "operation-deprecated", False, "operation deprecated")
        if old.operation_id and new.operation_id and old.operation_id != new.operation_id:
            # Generated clients name their methods after it.
            self.emit(
                site,
                "operation-id-changed",
                True,
                "operationId changed",
                old=old.operation_id,
                new=new.operation_id,
            )
        self.security(site, old, new)
        self.parameters(site, old, new)
        self.request_body(site, old, new)
        self.responses(site, old, new)

    def security(self, site: _Site, old: _Operation, new: _Operation) -> None:
        here = site.at("security")
        old_ways, new_ways = old.security, new.security
        # A partner authenticates one way: one of those gone (a scope more is another way)
        # locks it out; one more is a choice it need not take.
        for way in sorted(old_ways - new_ways, key=_shown_way):
            self.emit(
                here,
                "security-requirement-removed",
                True,
                "a way to authenticate removed",
                old=_shown_way(way),
            )
        for way in sorted(new_ways - old_ways, key=_shown_way):
            self.emit(
                here,
                "security-requirement-added",
                False,
                "a way to authenticate added",
                new=_shown_way(way),
            )

    def parameters(self, site: _Site, old: _Operation, new: _Operation) -> None:
        old_params, new_params = _parameters(old), _parameters(new)
        for key, old_param in old_params.items():
            name = str(old_param.value.get("name", ""))
            here = site.at(f"{key[0]} parameter {name}")
            new_param = new_params.get(key)
            if new_param is None:
                self.emit(here, "parameter-removed", True, "parameter removed")
                continue
            new_name = str(new_param.value.get("name", ""))
            if key[0] != "path" and new_name != name:
                here = site.at(f"{key[0]} parameter {new_name}")
            was, now = _required_param(old_param.value), _required_param(new_param.value)
            if now and not was:
                self.emit(here, "parameter-became-required", True, "parameter became required")
            elif was and not now:
                self.emit(here, "parameter-became-optional", False, "parameter became optional")
            self.schema(
                here, _param_schema(old_param), _param_schema(new_param), "", "request", set()
            )
        for key, new_param in new_params.items():
            if key in old_params:
                continue
            name = str(new_param.value.get("name", ""))
            here = site.at(f"{key[0]} parameter {name}")
            if _required_param(new_param.value):
                self.emit(here, "required-parameter-added", True, "required parameter added")
            else:
                self.emit(here, "optional-parameter-added", False, "optional parameter added")

    def request_body(self, site: _Site, old: _Operation, new: _Operation) -> None:
        old_body = _deref(_Node(old.spec.get("requestBody"), old.resolver))
        new_body = _deref(_Node(new.spec.get("requestBody"), new.resolver))
        here = site.at("request body")
        if not isinstance(old_body.value, dict) and not isinstance(new_body.value, dict):
            return
        if not isinstance(new_body.value, dict):
            # What a partner sends is no longer read.
            self.emit(here, "request-body-removed", True, "request body removed")
            return
        if not isinstance(old_body.value, dict):
            if new_body.value.get("required"):
                self.emit(here, "request-body-added", True, "required request body added")
            else:
                self.emit(here, "request-body-added", False, "optional request body added")
            return
        was, now = bool(old_body.value.get("required")), bool(new_body.value.get("required"))
        if now and not was:
            self.emit(here, "request-body-became-required", True, "request body became required")
        elif was and not now:
            self.emit(here, "request-body-became-optional", False, "request body became optional")
        self.content(here, old_body, new_body, "request")

    def responses(self, site: _Site, old: _Operation, new: _Operation) -> None:
        old_responses = _by_status(old.spec.get("responses"))
        new_responses = _by_status(new.spec.get("responses"))
        for status, old_raw in old_responses.items():
            here = site.at(f"response {status}")
            if status not in new_responses:
                self.emit(here, "response-status-removed", True, "response status removed")
                continue
            old_response = _deref(_Node(old_raw, old.resolver))
            new_response = _deref(_Node(new_responses[status], new.resolver))
            self.content(here, old_response, new_response, "response")
            self.headers(here, old_response, new_response)
        for status in new_responses:
            if status not in old_responses:
                here = site.at(f"response {status}")
                self.emit(here, "response-status-added", False, "response status added")

    def content(self, site: _Site, old: _Node, new: _Node, direction: Direction) -> None:
        old_media = _lowered(old.value.get("content"))
        new_media = _lowered(new.value.get("content"))
        for media, old_type in old_media.items():
            here = site.at(f"{site.location} {media}")
            if media not in new_media:
                self.emit(here, "media-type-removed", True, "media type removed", old=media)
                continue
            old_schema = _schema_of(_Node(old_type, old.resolver))
            new_schema = _schema_of(_Node(new_media[media], new.resolver))
            self.schema(here, old_schema, new_schema, "", direction, set())
        for media in new_media:
            if media not in old_media:
                here = site.at(f"{site.location} {media}")
                self.emit(here, "media-type-added", False, "media type added", new=media)

    def headers(self, site: _Site, old: _Node, new: _Node) -> None:
        # Header names are case-insensitive (RFC 9110); shown as the new contract spells them.
        old_headers = _lowered(old.value.get("headers"))
        new_headers = _lowered(new.value.get("headers"))
        spelling = {str(name).lower(): str(name) for name in _mapping(old.value.get("headers"))}
        spelling.update(
            {str(name).lower(): str(name) for name in _mapping(new.value.get("headers"))}
        )
        for key, old_raw in old_headers.items():
            name = spelling[key]
            here = site.at(f"{site.location} header {name}")
            if key not in new_headers:
                self.emit(here, "response-header-removed", True, "response header removed")
                continue
            old_header = _deref(_Node(old_raw, old.resolver))
            new_header = _deref(_Node(new_headers[key], new.resolver))
            if not isinstance(old_header.value, dict) or not isinstance(new_header.value, dict):
                continue
            if old_header.value.get("required") and not new_header.value.get("required"):
                self.emit(
                    here, "response-header-became-optional", True, "header no longer sent always"
                )
            self.schema(
                here, _param_schema(old_header), _param_schema(new_header), "", "response", set()
            )
        for key in new_headers:
            if key not in old_headers:
                here = site.at(f"{site.location} header {spelling[key]}")
                self.emit(here, "response-header-added", False, "response header added")

    # -- schemas ------------------------------------------------------------------------

    def schema(
        self,
        site: _Site,
        old: _Node,
        new: _Node,
        pointer: str,
        direction: Direction,
        walked: set[tuple[int, int]],
    ) -> None:
        old, new = _deref(old), _deref(new)
        if old.target is not None and new.target is not None:
            pair = (old.target, new.target)
            if pair in walked:  # a recursive schema: this pair is being compared above
                return
            walked = walked | {pair}
        old_alternatives = _alternatives(old)
        new_alternatives = _alternatives(new)
        if len(old_alternatives) == 1 and len(new_alternatives) == 1:
            self.plain_schema(
                site, old_alternatives[0], new_alternatives[0], pointer, direction, walked
            )
            return
        self.alternatives(site, old_alternatives, new_alternatives, pointer, direction, walked)

    def alternatives(
        self,
        site: _Site,
        old: list[_Node],
        new: list[_Node],
        pointer: str,
        direction: Direction,
        walked: set[tuple[int, int]],
    ) -> None:
        """oneOf/anyOf branches: each old one paired with the new one most like it."""
        pairs, removed, added = _pair_alternatives(old, new)
        many = len(old) > 1 or len(new) > 1
        for index_old, index_new in pairs:
            here = f"{pointer}/oneOf[{index_new}]" if many else pointer
            self.plain_schema(site, old[index_old], new[index_new], here, direction, walked)
        for index in removed:
            self.emit(
                site,
                "alternative-removed",
                direction == "request",
                "a oneOf/anyOf alternative removed",
                pointer,
                old=_summary(old[index].value),
            )
        for index in added:
            self.emit(
                site,
                "alternative-added",
                direction == "response",
                "a oneOf/anyOf alternative added",
                pointer,
                new=_summary(new[index].value),
            )

    def plain_schema(
        self,
        site: _Site,
        old: _Node,
        new: _Node,
        pointer: str,
        direction: Direction,
        walked: set[tuple[int, int]],
    ) -> None:
        old_schema, new_schema = old.value, new.value
        if not isinstance(old_schema, dict) or not isinstance(new_schema, dict):
            return  # `true`/`false` schemas and the like are compared no further
        narrowing = direction == "request"  # a narrower request schema refuses old requests
        if not self.types(site, old_schema, new_schema, pointer, narrowing):
            return
        self.enums(site, old_schema, new_schema, pointer, narrowing)
        self.limits(site, old_schema, new_schema, pointer, narrowing)
        self.properties(site, old, new, pointer, direction, walked)
        old_items, new_items = old_schema.get("items"), new_schema.get("items")
        if isinstance(old_items, dict) or isinstance(new_items, dict):
            self.schema(
                site,
                _Node(old_items if isinstance(old_items, dict) else {}, old.resolver),
                _Node(new_items if isinstance(new_items, dict) else {}, new.resolver),
                f"{pointer}/*",
                direction,
                walked,
            )

    def types(
        self, site: _Site, old: dict[str, Any], new: dict[str, Any], pointer: str, narrowing: bool
    ) -> bool:
        """Report a type change; False when the types share nothing left to compare."""
        old_types, new_types = _types(old), _types(new)
        if old_types == new_types:
            return True
        dropped = _not_covered(old_types, new_types)
        gained = _not_covered(new_types, old_types)
        shown_old, shown_new = _shown_types(old_types), _shown_types(new_types)
        if dropped and gained:
            self.emit(site, "type-changed", True, "type changed", pointer, shown_old, shown_new)
        elif dropped:
            self.emit(
                site, "type-narrowed", narrowing, "type narrowed", pointer, shown_old, shown_new
            )
        elif gained:
            self.emit(
                site, "type-widened", not narrowing, "type widened", pointer, shown_old, shown_new
            )
        # string to integer leaves nothing in common; [object, "null"] to object leaves object
        return old_types is None or new_types is None or bool(old_types - dropped)

    def enums(
        self, site: _Site, old: dict[str, Any], new: dict[str, Any], pointer: str, narrowing: bool
    ) -> None:
        old_values, new_values = _enum(old), _enum(new)
        if old_values is None and new_values is None:
            return
        if old_values is None:
            self.emit(
                site,
                "enum-added",
                narrowing,
                "values restricted to an enum",
                pointer,
                new=new_values,
            )
            return
        if new_values is None:
            self.emit(
                site, "enum-removed", not narrowing, "enum restriction removed", pointer, old_values
            )
            return
        old_keys = {_canonical(value) for value in old_values}
        new_keys = {_canonical(value) for value in new_values}
        removed = [value for value in old_values if _canonical(value) not in new_keys]
        added = [value for value in new_values if _canonical(value) not in old_keys]
        if removed:
            self.emit(
                site, "enum-value-removed", narrowing, "enum values removed", pointer, removed
            )
        if added:
            self.emit(
                site, "enum-value-added", not narrowing, "enum values added", pointer, new=added
            )

    def limits(
        self, site: _Site, old: dict[str, Any], new: dict[str, Any], pointer: str, narrowing: bool
    ) -> None:
        for keyword in (*UPPER_BOUNDS, *LOWER_BOUNDS):
            old_limit, new_limit = _number(old.get(keyword)), _number(new.get(keyword))
            if old_limit == new_limit:
                continue
            upper = keyword in UPPER_BOUNDS
            if old_limit is None:
                tightened = True
                message = f"{keyword} added"
            elif new_limit is None:
                tightened = False
                message = f"{keyword} removed"
            else:
                tightened = (new_limit < old_limit) if upper else (new_limit > old_limit)
                message = f"{keyword} {'lowered' if new_limit < old_limit else 'raised'}"
            kind = "constraint-tightened" if tightened else "constraint-loosened"
            self.emit(
                site,
                kind,
                narrowing if tightened else not narrowing,
                message,
                pointer,
                old.get(keyword),
                new.get(keyword),
            )
        for keyword in RESTRICTIONS:
            old_value, new_value = old.get(keyword), new.get(keyword)
            if old_value == new_value:
                continue
            if old_value is None:
                self.emit(
                    site,
                    "constraint-tightened",
                    narrowing,
                    f"{keyword} added",
                    pointer,
                    new=new_value,
                )
            elif new_value is None:
                self.emit(
                    site,
                    "constraint-loosened",
                    not narrowing,
                    f"{keyword} removed",
                    pointer,
                    old_value,
                )
            else:
                self.emit(
                    site,
                    "constraint-changed",
                    True,
                    f"{keyword} changed",
                    pointer,
                    old_value,
                    new_value,
                )
        if not old.get("uniqueItems") and new.get("uniqueItems"):
            self.emit(
                site, "constraint-tightened", narrowing, "uniqueItems added", pointer, new=True
            )
        elif old.get("uniqueItems") and not new.get("uniqueItems"):
            self.emit(
                site, "constraint-loosened", not narrowing, "uniqueItems removed", pointer, True
            )

    def properties(
        self,
        site: _Site,
        old: _Node,
        new: _Node,
        pointer: str,
        direction: Direction,
        walked: set[tuple[int, int]],
    ) -> None:
        old_schema, new_schema = old.value, new.value
        old_props = _mapping(old_schema.get("properties"))
        new_props = _mapping(new_schema.get("properties"))
        old_required = set(_strings(old_schema.get("required")))
        new_required = set(_strings(new_schema.get("required")))
        request = direction == "request"
        # A readOnly property is never sent, a writeOnly one never answered (OpenAPI 3.x).
        hidden = "readOnly" if request else "writeOnly"
        names = list(
            dict.fromkeys([*old_props, *sorted(old_required), *new_props, *sorted(new_required)])
        )
        for name in names:
            here = f"{pointer}/{_escape(name)}"
            old_prop = _deref(_Node(old_props[name], old.resolver)) if name in old_props else None
            new_prop = _deref(_Node(new_props[name], new.resolver)) if name in new_props else None
            if _flag(old_prop, hidden) or _flag(new_prop, hidden):
                continue
            was_known = old_prop is not None or name in old_required
            is_known = new_prop is not None or name in new_required
            if was_known and not is_known:
                # A partner's value is no longer read, or no longer answered.
                self.emit(
                    site, "property-removed", True, "property removed", here, _summary(old_prop)
                )
                continue
            if is_known and not was_known:
                if request and name in new_required:
                    self.emit(
                        site,
                        "required-property-added",
                        True,
                        "required property added",
                        here,
                        new=_summary(new_prop),
                    )
                else:
                    self.emit(
                        site,
                        "property-added",
                        False,
                        "optional property added" if request else "property added",
                        here,
                        new=_summary(new_prop),
                    )
                continue
            if name in new_required and name not in old_required:
                self.emit(
                    site, "property-became-required", request, "property became required", here
                )
            elif name in old_required and name not in new_required:
                self.emit(
                    site, "property-became-optional", not request, "property became optional", here
                )
            # A name that is only `required` may hold anything.
            self.schema(
                site,
                old_prop or _Node({}, old.resolver),
                new_prop or _Node({}, new.resolver),
                here,
                direction,
                walked,
            )
        self.additional_properties(site, old, new, pointer, direction, walked)

    def additional_properties(
        self,
        site: _Site,
        old: _Node,
        new: _Node,
        pointer: str,
        direction: Direction,
        walked: set[tuple[int, int]],
    ) -> None:
        old_extra = old.value.get("additionalProperties", True)
        new_extra = new.value.get("additionalProperties", True)
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.schema(
                site,
                _Node(old_extra, old.resolver),
                _Node(new_extra, new.resolver),
                f"{pointer}/*",
                direction,
                walked,
            )
            return
        if old_extra is not False and new_extra is False:
            self.emit(
                site,
                "additional-properties-refused",
                direction == "request",
                "properties not named are now refused",
                pointer,
            )
        elif old_extra is False and new_extra is not False:
            # Partners ignore properties they do not know: more of them in an answer is fine.
            self.emit(
                site,
                "additional-properties-allowed",
                False,
                "properties not named are now allowed",
                pointer,
            )


# -- helpers ----------------------------------------------------------------------------


def _parameters(operation: _Operation) -> dict[tuple[str, str], _Node]:
    """An operation's parameters (the path item's overridden by the operation's), keyed so
    that a renamed path parameter (`{id}` to `{iccid}`) is the same parameter."""
    template = [match.group(0)[1:-1] for match in _TEMPLATE_PARAM.finditer(operation.path)]
    found: dict[tuple[str, str], _Node] = {}
    for raw in [*operation.path_parameters, *(operation.spec.get("parameters") or [])]:
        param = _deref(_Node(raw, operation.resolver))
        if not isinstance(param.value, dict):
            continue
        place, name = str(param.value.get("in", "")), str(param.value.get("name", ""))
        if place == "path" and name in template:
            key = (place, f"#{template.index(name)}")
        elif place == "header":
            key = (place, name.lower())  # RFC 9110: field names are case-insensitive
        else:
            key = (place, name)
        found[key] = param
    return found


def _shown_way(way: frozenset[tuple[str, tuple[str, ...]]]) -> str:
    if not way:
        return "anonymous"
    return " + ".join(
        f"{scheme} [{' '.join(scopes)}]" if scopes else scheme for scheme, scopes in sorted(way)
    )


def _required_param(param: dict[str, Any]) -> bool:
    return param.get("in") == "path" or bool(param.get("required"))


def _param_schema(param: _Node) -> _Node:
    """A parameter's or header's schema, whether given as `schema` or as `content`."""
    if "schema" in param.value:
        return _Node(param.value["schema"], param.resolver)
    for media in _mapping(param.value.get("content")).values():
        return _schema_of(_Node(media, param.resolver))
    return _Node({}, param.resolver)


def _schema_of(media: _Node) -> _Node:
    value = media.value if isinstance(media.value, dict) else {}
    return _Node(value.get("schema", {}), media.resolver)


def _by_status(responses: Any) -> dict[str, Any]:
    # YAML reads an unquoted 200 as a number; `2XX` and `default` are spelled either way.
    return {
        str(status).upper() if str(status)[:1].isdigit() else str(status).lower(): value
        for status, value in _mapping(responses).items()
    }


def _lowered(mapping: Any) -> dict[str, Any]:
    # Media types (RFC 6838) and header names (RFC 9110) are case-insensitive.
    return {str(key).lower(): value for key, value in _mapping(mapping).items()}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _flag(node: _Node | None, name: str) -> bool:
    return node is not None and isinstance(node.value, dict) and node.value.get(name) is True


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")  # RFC 6901


def _number(value: Any) -> float | None:
    # OpenAPI 3.0's boolean exclusiveMaximum/exclusiveMinimum only qualify `maximum`.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _types(schema: dict[str, Any]) -> frozenset[str] | None:
    """The JSON types a schema allows; None when it does not say (any type)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        types = {declared}
    elif isinstance(declared, list):
        types = {item for item in declared if isinstance(item, str)}
    else:
        return None
    if schema.get("nullable") is True:  # OpenAPI 3.0's spelling of `type: [..., "null"]`
        types.add("null")
    return frozenset(types)


def _not_covered(
    types: frozenset[str] | None, others: frozenset[str] | set[str] | None
) -> set[str]:
    """The types of `types` that `others` does not allow (an integer is a number)."""
    if types is None:
        return set() if others is None else {"any"}
    if others is None:
        return set()
    return {
        kind
        for kind in types
        if kind not in others and not (kind == "integer" and "number" in others)
    }


def _shown_types(types: frozenset[str] | None) -> str | list[str]:
    if types is None:
        return "any"
    return next(iter(types)) if len(types) == 1 else sorted(types)


def _enum(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    values = schema.get("enum")
    return list(values) if isinstance(values, list) else None


def _summary(node: _Node | Any) -> Any:
    """What a removed or added schema was, in a few characters: its type, or its name."""
    value = node.value if isinstance(node, _Node) else node
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("$ref"), str):
        return value["$ref"].rsplit("/", 1)[-1]
    if "type" in value:
        return value["type"]
    return value.get("title")


# -- oneOf / anyOf / allOf --------------------------------------------------------------


def _alternatives(node: _Node) -> list[_Node]:
    """The branches a value may match: a schema's oneOf/anyOf, each with the schema's own
    keywords folded in (`{type: object, oneOf: [A, B]}` is `oneOf: [object∧A, object∧B]`);
    a schema without branches is its own only one."""
    schema = _flatten(node)
    if not isinstance(schema.value, dict):
        return [schema]
    branches = schema.value.get("oneOf")
    if not isinstance(branches, list):
        branches = schema.value.get("anyOf")
    if not isinstance(branches, list) or not branches:
        return [schema]
    base = {
        key: value
        for key, value in schema.value.items()
        if key not in ("oneOf", "anyOf", "discriminator", "description", "title", "example")
    }
    found = []
    for branch in branches:
        resolved = _flatten(_deref(_Node(branch, schema.resolver)))
        value = resolved.value
        if base and isinstance(value, dict):
            value = _merge(base, value)
        name = _summary(branch) if isinstance(branch, dict) and "$ref" in branch else None
        found.append(_Node(value, resolved.resolver, resolved.target, name))
    return found


def _flatten(node: _Node) -> _Node:
    """A schema with its allOf parts merged into one (properties and required united)."""
    node = _deref(node)
    if not isinstance(node.value, dict) or not isinstance(node.value.get("allOf"), list):
        return node
    merged = {key: value for key, value in node.value.items() if key != "allOf"}
    for part in node.value["allOf"]:
        resolved = _flatten(_deref(_Node(part, node.resolver)))
        if isinstance(resolved.value, dict):
            merged = _merge(merged, resolved.value)
    return _Node(merged, node.resolver, node.target)


def _merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    merged = dict(first)
    for key, value in second.items():
        if key == "properties" and isinstance(merged.get(key), dict) and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list) and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        elif key not in merged:
            merged[key] = value
    return merged


def _pair_alternatives(
    old: list[_Node], new: list[_Node]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Pairs (old index, new index) of branches that are the same alternative, then the old
    ones left over (removed) and the new ones (added): same content first, then the same
    referenced schema, the same title, then the same types in order."""
    pairs: list[tuple[int, int]] = []
    old_left, new_left = list(range(len(old))), list(range(len(new)))

    def pair_by(key: Callable[[_Node], Any]) -> None:
        for index_old in list(old_left):
            wanted = key(old[index_old])
            if wanted is None:
                continue
            for index_new in new_left:
                if key(new[index_new]) == wanted:
                    pairs.append((index_old, index_new))
                    old_left.remove(index_old)
                    new_left.remove(index_new)
                    break

    pair_by(lambda node: _canonical(node.value))
    pair_by(lambda node: node.name)
    pair_by(lambda node: _field_of(node.value, "title"))
    pair_by(lambda node: _canonical(sorted(types)) if (types := _types_of(node.value)) else None)
    if len(old_left) == 1 and len(new_left) == 1:
        pairs.append((old_left.pop(), new_left.pop()))
    return sorted(pairs), old_left, new_left


def _field_of(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def _types_of(value: Any) -> frozenset[str] | None:
    return _types(value) if isinstance(value, dict) else None
