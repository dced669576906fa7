"""Generic HTTP steps in CAMARA's phrasing: build a request, send an operation by its
operationId, check the status, headers, JSONPath properties and contract schemas."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.ext.parser import ExtendedJsonPathParser
from jsonschema import Draft202012Validator

from simulators.core.config import CONTRACTS_DIR
from simulators.core.contract import FORMAT_CHECKER, Contract, Operation, load_contract

from ..catalogue import phrase
from ..target import ROLES
from ..world import Exchange, StepFailed, World, new_correlator, path_with

ROLE = "any"
# Where `a valid access token` comes from for APIs that take OAuth 2.0 bearer tokens rather
# than the role's API key: each source returns a token for the draft request, or None when
# the draft is not for its API (the CAMARA steps register one).
ACCESS_TOKENS: list[Callable[[World], str | None]] = []


@cache
def _jsonpath_parser() -> ExtendedJsonPathParser:
    return ExtendedJsonPathParser()


@lru_cache(maxsize=1024)
def jsonpath(path: str) -> JSONPath:
    """A JSONPath expression, parsed once. `jsonpath_ng.ext.parse` builds a new parser,
    and with it PLY's LALR tables (~60 ms), on every call; one parser parses them all."""
    return _jsonpath_parser().parse(path)


def _split_resource(world: World, resource: str) -> tuple[str, str]:
    path = world.expand(resource)
    role, _, rest = path.lstrip("/").partition("/")
    if role not in ROLES:
        raise StepFailed(
            f"the resource {resource!r} must start with a role: /{'/, /'.join(ROLES)}/"
        )
    return role, "/" + rest


@phrase(
    "given",
    'the resource "{resource:Q}"',
    role=ROLE,
    example='Given the resource "/mvne/tmf-api/productOrderingManagement/v4/productOrder"',
    summary="the path (with its role prefix) the next request goes to; {name} templates "
    "are filled by path parameters",
)
def the_resource(handoff: World, resource: str) -> None:
    handoff.draft.role, handoff.draft.path = _split_resource(handoff, resource)


@phrase(
    "given",
    'the caller is "{identity:Q}"',
    role=ROLE,
    example='Given the caller is "mvne-platform"',
    summary="whose credential `a valid access token` is, instead of the role's usual caller",
)
def the_caller(handoff: World, identity: str) -> None:
    handoff.identity = handoff.expand(identity)


@phrase(
    "given",
    'the header "{name:Q}" is set to "{value:Q}"',
    role=ROLE,
    example='Given the header "X-Correlation-ID" is set to "shop-0001"',
)
def header_set(handoff: World, name: str, value: str) -> None:
    handoff.draft.headers[name] = handoff.expand(value)


@phrase(
    "given",
    'the header "{name:Q}" is set to a valid access token',
    role=ROLE,
    example='Given the header "X-API-Key" is set to a valid access token',
    summary="the caller's credential for the resource's role (Authorization: Bearer)",
)
def header_token(handoff: World, name: str) -> None:
    role = handoff.draft.role or "mvne"
    if name.lower() == "authorization":
        for source in ACCESS_TOKENS:
            token = source(handoff)
            if token is not None:
                handoff.draft.headers[name] = f"Bearer {token}"
                return
    key = handoff.key_of(handoff.caller_for(role))
    handoff.draft.headers[name] = f"Bearer {key}" if name.lower() == "authorization" else key


@phrase(
    "given",
    'the header "{name:Q}" is set to a UUID value',
    role=ROLE,
    example='Given the header "X-Correlation-ID" is set to a UUID value',
)
def header_uuid(handoff: World, name: str) -> None:
    handoff.draft.headers[name] = new_correlator()


@phrase(
    "given",
    'the header "{name:Q}" is removed',
    role=ROLE,
    example='Given the header "X-API-Key" is removed',
)
def header_removed(handoff: World, name: str) -> None:
    handoff.draft.headers[name] = ""


@phrase(
    "given",
    'the path parameter "{name:Q}" is set to "{value:Q}"',
    role=ROLE,
    example='Given the path parameter "id" is set to "${order.id}"',
)
def path_parameter(handoff: World, name: str, value: str) -> None:
    handoff.draft.path_params[name] = handoff.expand(value)


@phrase(
    "given",
    'the query parameter "{name:Q}" is set to "{value:Q}"',
    role=ROLE,
    example='Given the query parameter "limit" is set to "5"',
)
def query_parameter(handoff: World, name: str, value: str) -> None:
    handoff.draft.query.append((name, handoff.expand(value)))


@phrase(
    "given",
    "the request body is set to",
    role=ROLE,
    example="Given the request body is set to (a JSON doc string, or a table of "
    "property | value rows)",
)
def request_body(
    handoff: World, docstring: str | None = None, datatable: list[list[str]] | None = None
) -> None:
    if docstring is not None:
        text = handoff.expand(docstring)
        try:
            handoff.draft.body = json.loads(text)
        except ValueError:
            handoff.draft.body = text  # sent as is: a malformed body is a test case too
    elif datatable is not None:
        body: dict[str, Any] = {}
        rows = (
            datatable[1:] if datatable and datatable[0][:2] == ["property", "value"] else datatable
        )
        for path, value in rows:
            _set_property(body, path, handoff.value_of(value))
        handoff.draft.body = body
    else:
        raise StepFailed("the request body needs a doc string or a data table")
    handoff.draft.has_body = True


@phrase(
    "given",
    'the request body property "{path:Q}" is set to "{value:Q}"',
    role=ROLE,
    example='Given the request body property "$.externalId" is set to "shop-0001"',
)
def body_property(handoff: World, path: str, value: str) -> None:
    _set_body(handoff, path, handoff.expand(value))


@phrase(
    "given",
    'the request body property "{path:Q}" is set to {value:JSON}',
    role=ROLE,
    example='Given the request body property "$.lines[0].lineCount" is set to 2',
)
def body_property_literal(handoff: World, path: str, value: Any) -> None:
    _set_body(handoff, path, value)


@phrase(
    "when",
    'the request "{operation_id:Q}" is sent',
    role=ROLE,
    example='When the request "createProductOrder" is sent',
    summary="method and path from the contract; the resource's role decides which "
    "contract when an operationId exists in several",
)
def request_sent(handoff: World, operation_id: str) -> None:
    draft = handoff.draft
    role, operation, prefix = _operation(draft.role, operation_id)
    template = draft.path or prefix + operation.path
    if draft.path is not None and not _same_template(draft.path, prefix + operation.path):
        raise StepFailed(
            f"{operation_id} is {operation.method} {prefix}{operation.path}, not the resource "
            f"{draft.path}"
        )
    headers = {name: value for name, value in draft.headers.items()}
    authenticate = not any(name.lower() in ("x-api-key", "authorization") for name in headers)
    headers = {name: value for name, value in headers.items() if value != ""}
    data: str | None = None
    if draft.has_body:
        data = draft.body if isinstance(draft.body, str) else json.dumps(draft.body)
        headers.setdefault("Content-Type", "application/json")
    handoff.send(
        role,
        operation.method,
        path_with(template, draft.path_params),
        caller=handoff.caller_for(role, kind=operation.caller),
        operation=operation_id,
        params=draft.query or None,
        headers=headers,
        data=data,
        authenticate=authenticate and operation.secured,
    )


@phrase(
    "then",
    "the response status code is {status:d}",
    role=ROLE,
    example="Then the response status code is 201",
)
def status_is(handoff: World, status: int) -> None:
    exchange = _last(handoff)
    if exchange.status != status:
        raise StepFailed(f"expected {status}: {exchange.describe()}")


@phrase(
    "then",
    "the request got no answer",
    role=ROLE,
    example="Then the request got no answer",
    summary="the connection was dropped or timed out before any answer",
)
def no_answer(handoff: World) -> None:
    exchange = _last(handoff)
    if exchange.response is not None:
        raise StepFailed(f"the request was answered: {exchange.describe()}")


@phrase(
    "then",
    'the response body does not contain "{text:Q}"',
    role=ROLE,
    example='Then the response body does not contain "HLR"',
)
def body_lacks(handoff: World, text: str) -> None:
    response = _response(handoff)
    if handoff.expand(text) in response.text:
        raise StepFailed(f"the response holds {text!r}: {response.text[:400]}")


@phrase(
    "then",
    'the response property "{path:Q}" is "{value:Q}"',
    role=ROLE,
    example='Then the response property "$.code" is "ICCID_UNMAPPED"',
)
def property_is(handoff: World, path: str, value: str) -> None:
    found = _property(handoff, path)
    expected = handoff.expand(value)
    if found != expected:
        raise StepFailed(f"{path} is {found!r}, not {expected!r}: {_last(handoff).describe()}")


@phrase(
    "then",
    'the response property "{path:Q}" is {value:JSON}',
    role=ROLE,
    example='Then the response property "$.remainingValue.amount" is 4.9',
)
def property_is_literal(handoff: World, path: str, value: Any) -> None:
    found = _property(handoff, path)
    if found != value or isinstance(found, bool) != isinstance(value, bool):
        raise StepFailed(f"{path} is {found!r}, not {value!r}: {_last(handoff).describe()}")


@phrase(
    "then",
    'the response property "{path:Q}" contains "{text:Q}"',
    role=ROLE,
    example='Then the response property "$.detail" contains "iccid"',
)
def property_contains(handoff: World, path: str, text: str) -> None:
    found = _property(handoff, path)
    expected = handoff.expand(text)
    if expected not in (found if isinstance(found, str | list) else json.dumps(found)):
        raise StepFailed(f"{path} is {found!r}, which does not contain {expected!r}")


@phrase(
    "then",
    'the response property "{path:Q}" exists',
    role=ROLE,
    example='Then the response property "$.completionDate" exists',
)
def property_exists(handoff: World, path: str) -> None:
    _property(handoff, path)


@phrase(
    "then",
    'the response property "{path:Q}" does not exist',
    role=ROLE,
    example='Then the response property "$.secret" does not exist',
)
def property_absent(handoff: World, path: str) -> None:
    matches = jsonpath(path).find(_last(handoff).json())
    if matches:
        raise StepFailed(f"{path} is present: {matches[0].value!r}")


@phrase(
    "then",
    'the response property "{path:Q}" has {count:d} items',
    role=ROLE,
    example='Then the response property "$" has 3 items',
)
def property_count(handoff: World, path: str, count: int) -> None:
    found = _property(handoff, path)
    if not isinstance(found, list) or len(found) != count:
        size = len(found) if isinstance(found, list) else "not a list"
        raise StepFailed(f"{path} has {size} items, not {count}: {_last(handoff).describe()}")


@phrase(
    "then",
    'the response header "{name:Q}" is "{value:Q}"',
    role=ROLE,
    example='Then the response header "Idempotent-Replayed" is "true"',
)
def header_is(handoff: World, name: str, value: str) -> None:
    found = _response(handoff).headers.get(name)
    expected = handoff.expand(value)
    if found != expected and not (
        name.lower() == "content-type" and (found or "").split(";")[0].strip() == expected
    ):
        raise StepFailed(f"the response header {name} is {found!r}, not {expected!r}")


@phrase(
    "then",
    'the response header "{name:Q}" exists',
    role=ROLE,
    example='Then the response header "Location" exists',
)
def header_exists(handoff: World, name: str) -> None:
    if name not in _response(handoff).headers:
        raise StepFailed(f"the response has no {name} header: {_last(handoff).describe()}")


@phrase(
    "then",
    'the response header "{name:Q}" does not exist',
    role=ROLE,
    example='Then the response header "Idempotent-Replayed" does not exist',
)
def header_absent(handoff: World, name: str) -> None:
    if name in _response(handoff).headers:
        raise StepFailed(f"the response has a {name} header: {_response(handoff).headers[name]}")


@phrase(
    "then",
    'the response header "{name:Q}" has same value as the request header "{request_name:Q}"',
    role=ROLE,
    example='Then the response header "X-Correlation-ID" has same value as the request '
    'header "X-Correlation-ID"',
)
def header_echoed(handoff: World, name: str, request_name: str) -> None:
    exchange = _last(handoff)
    sent = {key.lower(): value for key, value in exchange.request_headers.items()}
    found = _response(handoff).headers.get(name)
    if found is None or found != sent.get(request_name.lower()):
        raise StepFailed(
            f"the response header {name} is {found!r}; the request sent "
            f"{request_name}: {sent.get(request_name.lower())!r}"
        )


@phrase(
    "then",
    'the response body complies with the OAS schema at "{pointer:Q}"',
    role=ROLE,
    example="Then the response body complies with the OAS schema at "
    '"/components/schemas/ProductOrder"',
)
def complies_with_schema(handoff: World, pointer: str) -> None:
    exchange = _last(handoff)
    contract = _contract_of(exchange)
    schema = contract._resolve({"$ref": "#" + pointer})
    _validate(contract, schema, exchange)


@phrase(
    "then",
    "the response complies with the contract",
    role=ROLE,
    example="Then the response complies with the contract",
    summary="the status is one the operation documents, and the body its schema",
)
def complies_with_contract(handoff: World) -> None:
    exchange = _last(handoff)
    if exchange.operation is None:
        raise StepFailed("the last request named no operation of a contract")
    contract = _contract_of(exchange)
    spec = _operation_spec(contract, exchange.operation)
    status = str(exchange.status)
    responses = spec.get("responses", {})
    if status not in responses:
        raise StepFailed(
            f"{exchange.operation} answered {status}, which its contract does not document "
            f"({', '.join(responses)}): {exchange.describe()}"
        )
    content = contract._resolve(responses[status]).get("content")
    if not content:
        if exchange.response is not None and exchange.response.content:
            raise StepFailed(f"{exchange.operation} {status} must have no body")
        return
    response = _response(handoff)
    media = response.headers.get("Content-Type", "").split(";")[0].strip()
    if media not in content:
        raise StepFailed(f"{exchange.operation} {status} answered {media}, not {list(content)}")
    _validate(contract, content[media]["schema"], exchange)


# --- helpers -----------------------------------------------------------------------------


@cache
def _contracts_of(role: str) -> list[tuple[Contract, str]]:
    """The contracts a role serves, each with the path its server puts before the contract's
    paths within the role: "" for `contracts/<role>.yaml`, "/sim-swap/v2" for a CAMARA API
    the role serves under its own base path."""
    found: list[tuple[Contract, str]] = []
    for path in sorted(CONTRACTS_DIR.glob("*.yaml")):
        contract = load_contract(path.stem)
        server = (contract.document.get("servers") or [{}])[0].get("url", "")
        if server == f"/{role}":
            found.insert(0, (contract, ""))
        elif server.startswith(f"/{role}/"):
            found.append((contract, server[len(role) + 1 :]))
    return found


def _contract_of(exchange: Exchange) -> Contract:
    """The contract of the operation an exchange sent (the role's own by default)."""
    for contract, _prefix in _contracts_of(exchange.role):
        if exchange.operation in contract.operations:
            return contract
    return load_contract(exchange.role)


def _operation(role: str | None, operation_id: str) -> tuple[str, Operation, str]:
    roles = [role] if role else list(ROLES)
    found = [
        (name, contract.operations[operation_id], prefix)
        for name in roles
        for contract, prefix in _contracts_of(name)
        if operation_id in contract.operations
    ]
    if not found:
        where = f"the {role} contract" if role else "any contract"
        raise StepFailed(f"no operation {operation_id!r} in {where}")
    if len(found) > 1:
        names = ", ".join(name for name, _, _ in found)
        raise StepFailed(
            f"{operation_id} is in several contracts ({names}): set the resource first"
        )
    return found[0]


def _same_template(resource: str, template: str) -> bool:
    resource_parts = resource.rstrip("/").split("/")
    template_parts = template.rstrip("/").split("/")
    return len(resource_parts) == len(template_parts) and all(
        a == b or b.startswith("{") or a.startswith("{")
        for a, b in zip(resource_parts, template_parts, strict=True)
    )


def _last(world: World) -> Exchange:
    if world.last is None:
        raise StepFailed("no request has been sent yet in this scenario")
    return world.last


def _response(world: World) -> Any:
    exchange = _last(world)
    if exchange.response is None:
        raise StepFailed(exchange.describe())
    return exchange.response


def _property(world: World, path: str) -> Any:
    body = _last(world).json()
    matches = jsonpath(path).find(body)
    if not matches:
        raise StepFailed(f"the response has no {path}: {_last(world).describe()}")
    if len(matches) > 1 or "[*]" in path:
        return [match.value for match in matches]
    return matches[0].value


def _set_body(world: World, path: str, value: Any) -> None:
    if not isinstance(world.draft.body, dict):
        world.draft.body = {}
    _set_property(world.draft.body, path, value)
    world.draft.has_body = True


def _set_property(body: dict[str, Any], path: str, value: Any) -> None:
    """Set `$.a.b[0].c` in a JSON object, creating what is missing on the way."""
    parts: list[str | int] = []
    for piece in path.removeprefix("$").lstrip(".").replace("]", "").split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts += [int(index) for index in indexes]
    current: Any = body
    for position, part in enumerate(parts):
        if isinstance(part, int):
            while len(current) <= part:
                current.append(None)
        if position == len(parts) - 1:
            current[part] = value
            return
        empty: Any = [] if isinstance(parts[position + 1], int) else {}
        if isinstance(part, int):
            if current[part] is None:
                current[part] = empty
        else:
            current.setdefault(part, empty)
        current = current[part]


def _operation_spec(contract: Contract, operation_id: str) -> dict[str, Any]:
    for item in contract.document["paths"].values():
        for spec in item.values():
            if isinstance(spec, dict) and spec.get("operationId") == operation_id:
                return spec
    raise StepFailed(f"no operation {operation_id} in the {contract.name} contract")


def _validate(contract: Contract, schema: dict[str, Any], exchange: Exchange) -> None:
    root = dict(schema)
    root["components"] = contract.document.get("components", {})
    body = exchange.json()
    errors = sorted(
        Draft202012Validator(root, format_checker=FORMAT_CHECKER).iter_errors(body), key=str
    )
    if errors:
        where = "/".join(str(part) for part in errors[0].absolute_path) or "(body)"
        raise StepFailed(
            f"the {exchange.role} answer breaks its schema at {where}: {errors[0].message}"
        )
