"""The contract a verification runs against: which roles exist, what each operation promises.

A role is a file `contracts/<role>.yaml`; `--contract FILE` points a role at another copy
(a vendor's draft, a test's tiny contract). What the domain checks need to know about an
operation (its credentials, its idempotency key, its correlation header) is read here once,
from the document as written, so the checks never depend on how schemathesis parses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from ..core.config import CONTRACTS_DIR
from ..core.contract import read_yaml

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# Contracts of the harness itself, not of a vendor role.
NOT_ROLES = {"admin", "sink"}


class ContractError(Exception):
    """The role or its contract cannot be verified against; the message says why, in one line."""


def known_roles(directory: Path = CONTRACTS_DIR) -> list[str]:
    """Every vendor role with a published contract."""
    return sorted(path.stem for path in directory.glob("*.yaml") if path.stem not in NOT_ROLES)


@dataclass(frozen=True)
class SecurityScheme:
    """How one security scheme carries a credential on the wire."""

    name: str
    kind: str  # apiKey, bearer or basic
    header: str  # the header the credential travels in

    def credential(self, key: str) -> dict[str, str]:
        """schemathesis' auth setting for this scheme."""
        if self.kind == "basic":
            username, _, password = key.partition(":")
            return {"username": username, "password": password}
        if self.kind == "bearer":
            return {"bearer": key}
        return {"api_key": key}

    def header_value(self, key: str) -> str:
        if self.kind == "bearer":
            return f"Bearer {key}"
        if self.kind == "basic":
            import base64

            return "Basic " + base64.b64encode(key.encode()).decode()
        return key


@dataclass(frozen=True)
class Operation:
    """What one operation of the contract declares, as the domain checks read it."""

    label: str  # "POST /v1/shipments", as schemathesis labels it
    operation_id: str
    method: str
    path: str
    schemes: tuple[SecurityScheme, ...]
    idempotency_header: str | None
    body_has_external_id: bool
    correlation_header: str | None
    correlation_pattern: str | None


# `SCHEME=KEY`: a scheme name is an identifier; a credential that merely contains `=` (base64
# padding) has nothing after it or no identifier before it.
_NAMED = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.+)$", re.S)


@dataclass(frozen=True)
class Credentials:
    """One partner's credentials by security scheme: `SCHEME=KEY` for one scheme of the
    contract, a plain `KEY` for every scheme not named (a contract whose operations answer
    to different callers, like the MNO's platform, wholesale and staff keys, needs several)."""

    by_scheme: Mapping[str, str] = field(default_factory=dict)
    default: str | None = None

    @classmethod
    def parse(cls, values: Iterable[str], contract: Contract, option: str) -> Credentials:
        by_scheme: dict[str, str] = {}
        default = None
        for value in values:
            named = _NAMED.match(value)
            if named and named.group(1) in contract.schemes:
                name = named.group(1)
                if name in by_scheme:
                    raise ContractError(f"{option} names the scheme {name!r} twice")
                by_scheme[name] = named.group(2)
            elif named and contract.schemes and "=" not in named.group(2):
                raise ContractError(
                    f"{option} {named.group(1)}=...: the contract has no security scheme "
                    f"{named.group(1)!r}; its schemes: {', '.join(sorted(contract.schemes))}"
                )
            elif default is not None:
                raise ContractError(
                    f"{option} is given twice without a scheme; name each one's scheme "
                    f"(SCHEME=KEY, of: {', '.join(sorted(contract.schemes)) or 'none'})"
                )
            else:
                default = value
        return cls(by_scheme, default)

    def __bool__(self) -> bool:
        return bool(self.by_scheme) or self.default is not None

    def get(self, scheme: str) -> str | None:
        return self.by_scheme.get(scheme, self.default)

    def for_operation(self, operation: Operation) -> tuple[SecurityScheme, str] | None:
        """The first of the operation's schemes with a credential, and that credential."""
        for scheme in operation.schemes:
            key = self.get(scheme.name)
            if key is not None:
                return scheme, key
        return None


@dataclass
class Contract:
    role: str
    path: Path
    document: dict[str, Any]
    operations: dict[str, Operation] = field(default_factory=dict)
    schemes: dict[str, SecurityScheme] = field(default_factory=dict)

    @property
    def server_path(self) -> str:
        servers = self.document.get("servers") or [{}]
        url = str(servers[0].get("url", ""))
        return urlsplit(url).path.rstrip("/") if not urlsplit(url).scheme else ""

    @property
    def error_model(self) -> str:
        """problem (RFC 9457), camara (status, code, message) or oauth (RFC 6749 5.2)."""
        if self.role == "camara-authorization":
            return "oauth"
        if self.role.startswith("camara-"):
            return "camara"
        return "problem"

    @property
    def hub(self) -> Operation | None:
        """The operation a partner subscribes to events with (TMF hub), if the role has one."""
        for operation in self.operations.values():
            if operation.method == "POST" and operation.path.rstrip("/").endswith("/hub"):
                return operation
        return None

    def base_url(self, given: str) -> str:
        """The URL the contract's paths hang off: a bare host gets the contract's own prefix
        (its relative `servers` URL, e.g. /fulfillment), a URL with a path is taken as is."""
        parts = urlsplit(given)
        if not parts.scheme or not parts.netloc:
            raise ContractError(f"--base-url {given!r} is not an http(s) URL")
        if parts.path.strip("/"):
            return given.rstrip("/")
        return urlunsplit((parts.scheme, parts.netloc, self.server_path, "", ""))


def load(role: str, contract_file: Path | None = None) -> Contract:
    """The role's contract, checked to be an OpenAPI 3 document; ContractError otherwise."""
    roles = known_roles()
    if contract_file is None:
        if role not in roles:
            raise ContractError(f"unknown role {role!r}; roles: {', '.join(roles)}")
        contract_file = CONTRACTS_DIR / f"{role}.yaml"
    try:
        document = read_yaml(contract_file.read_text())
    except OSError as error:
        raise ContractError(f"cannot read {contract_file}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ContractError(f"{contract_file} is not YAML or JSON{where}") from None
    _validate(contract_file, document)
    contract = Contract(role=role, path=contract_file, document=document)
    contract.schemes = _schemes(document)
    contract.operations = _operations(contract)
    if not contract.operations:
        raise ContractError(f"{contract_file} declares no operations")
    return contract


def _validate(path: Path, document: Any) -> None:
    """The structure every OpenAPI 3 document has, and every `$ref` resolving: enough for
    the checks to run, and a one-line reason when a file is something else."""
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3."):
        raise ContractError(f"{path} is not an OpenAPI 3 document (no `openapi: 3.x` field)")
    info = document.get("info")
    if not isinstance(info, dict) or "title" not in info or "version" not in info:
        raise ContractError(f"{path} is not valid OpenAPI: `info` needs a title and a version")
    paths = document.get("paths")
    if not isinstance(paths, dict):
        raise ContractError(f"{path} is not valid OpenAPI: `paths` is not a mapping")
    for route, item in paths.items():
        if not str(route).startswith("/") or not isinstance(item, dict):
            raise ContractError(f"{path} is not valid OpenAPI: path {route!r} is malformed")
        for method in HTTP_METHODS:
            spec = item.get(method)
            if spec is not None and not isinstance((spec or {}).get("responses"), dict):
                raise ContractError(
                    f"{path} is not valid OpenAPI: {method.upper()} {route} has no `responses`"
                )
    for ref in _refs(document):
        try:
            resolve(document, {"$ref": ref})
        except (KeyError, TypeError):
            raise ContractError(f"{path} is not valid OpenAPI: {ref} resolves to nothing") from None


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            found.add(ref)
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _schemes(document: dict[str, Any]) -> dict[str, SecurityScheme]:
    found = {}
    for name, raw in document.get("components", {}).get("securitySchemes", {}).items():
        spec = resolve(document, raw)
        kind = spec.get("type")
        if kind == "apiKey" and spec.get("in") == "header":
            found[name] = SecurityScheme(name, "apiKey", spec["name"])
        elif kind == "http" and str(spec.get("scheme", "")).lower() == "basic":
            found[name] = SecurityScheme(name, "basic", "Authorization")
        elif kind in ("http", "oauth2", "openIdConnect"):
            found[name] = SecurityScheme(name, "bearer", "Authorization")
    return found


def _operations(contract: Contract) -> dict[str, Operation]:
    document = contract.document
    schemes = _schemes(document)
    default_security = document.get("security", [])
    found = {}
    for path, raw_item in (document.get("paths") or {}).items():
        item = resolve(document, raw_item)
        shared = [resolve(document, p) for p in item.get("parameters", [])]
        for method in HTTP_METHODS:
            spec = item.get(method)
            if not isinstance(spec, dict):
                continue
            parameters = {
                (p.get("in"), str(p.get("name", "")).lower()): p
                for p in [*shared, *(resolve(document, p) for p in spec.get("parameters", []))]
            }
            security = spec.get("security", default_security)
            names = [name for requirement in security for name in requirement]
            idempotency = parameters.get(("header", "idempotency-key"))
            correlation = next(
                (
                    parameters[("header", name)]
                    for name in ("x-correlation-id", "x-correlator")
                    if ("header", name) in parameters
                ),
                None,
            )
            correlation_schema = resolve(document, (correlation or {}).get("schema", {}))
            label = f"{method.upper()} {path}"
            found[label] = Operation(
                label=label,
                operation_id=str(spec.get("operationId", label)),
                method=method.upper(),
                path=path,
                # An operation any one of whose requirements is empty (`- {}`) is public.
                schemes=tuple(schemes[n] for n in names if n in schemes)
                if security and all(security)
                else (),
                idempotency_header=idempotency["name"] if idempotency else None,
                body_has_external_id=_body_has(document, spec, "externalId"),
                correlation_header=correlation["name"] if correlation else None,
                correlation_pattern=correlation_schema.get("pattern"),
            )
    return found


def _body_has(document: dict[str, Any], spec: dict[str, Any], name: str) -> bool:
    body = resolve(document, spec.get("requestBody", {}))
    for media in body.get("content", {}).values():
        schema = resolve(document, media.get("schema", {}))
        if name in schema.get("properties", {}):
            return True
    return False
