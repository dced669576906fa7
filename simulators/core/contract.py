"""Published OpenAPI 3.1 contracts, compiled once into request validators.

Validators are built at start-up per operation (jsonschema, Draft 2020-12):
per-request OpenAPI validation was measured 5-10x slower on this workload.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any, Protocol

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from .config import CONTRACTS_DIR
from .identifiers import is_valid_iccid, is_valid_imsi, is_valid_msisdn

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# What a request body may weigh unless its operation says otherwise (`x-max-body-bytes`).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_JSON_MEDIA = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")
# A form (an OAuth 2.0 token request) is parsed into an object and validated like JSON.
FORM_MEDIA = "application/x-www-form-urlencoded"


class HeaderLookup(Protocol):
    def get(self, key: str, /) -> str | None: ...


# The standard formats plus the telecom identifiers the contracts name as formats
# (`format: iccid` checks the E.118 Luhn digit, which no pattern can express).
FORMAT_CHECKER = FormatChecker()
TELECOM_FORMATS = {"iccid": is_valid_iccid, "imsi": is_valid_imsi, "msisdn": is_valid_msisdn}
for _name, _rule in TELECOM_FORMATS.items():
    FORMAT_CHECKER.checks(_name)(_rule)
_PATH_PARAM = re.compile(r"{([^}]+)}")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    # The JSON Schema keyword that failed (`maximum`, `pattern`, ...), for APIs whose error
    # codes tell kinds of refusal apart (CAMARA's OUT_OF_RANGE vs INVALID_ARGUMENT).
    keyword: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class SchemaCheck:
    """One schema, compiled twice: jsonschema-rs answers "valid?" in microseconds on the
    hot path; the reference `jsonschema` explains a refusal field by field."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.explainer = Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
        self.fast = jsonschema_rs.Draft202012Validator(
            schema, formats=dict(TELECOM_FORMATS), validate_formats=True
        )

    def errors(self, value: Any) -> list[ValidationError]:
        if self.fast.is_valid(value):
            return []
        return sorted(self.explainer.iter_errors(value), key=lambda e: list(e.path))


@dataclass
class Parameter:
    name: str
    location: str
    required: bool
    schema: dict[str, Any]
    validator: SchemaCheck


@dataclass
class Operation:
    """One contract operation, ready to validate a request against."""

    operation_id: str
    method: str
    path: str
    flask_rule: str
    parameters: list[Parameter] = field(default_factory=list)
    body_validator: SchemaCheck | None = None
    body_required: bool = False
    body_media_types: tuple[str, ...] = ()
    # A body that is not JSON (e.g. a text/plain file) reaches the handler as it arrives,
    # unparsed and never held whole; its contract schema is documentation only.
    streams_body: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    secured: bool = True
    capability: str | None = None
    # "partner" (an MVNO on the MVNE, the MVNE on the MNO) or "network" (the MNO's network).
    caller: str = "partner"
    success_status: int = 200

    def coerce_and_validate_params(
        self, path_args: dict[str, str], query: dict[str, list[str]], headers: HeaderLookup
    ) -> tuple[dict[str, Any], list[FieldError]]:
        """Coerce and check path, query and header parameters; `headers` is looked up
        case-insensitively by the names the contract declares."""
        values: dict[str, Any] = {}
        errors: list[FieldError] = []
        for param in self.parameters:
            if param.location == "path":
                raw: Any = path_args.get(param.name)
            elif param.location == "query":
                raw_list = query.get(param.name)
                if param.schema.get("type") == "array":
                    raw = raw_list or None  # form style, exploded: ?field=a&field=b
                else:
                    raw = raw_list[-1] if raw_list else None
            elif param.location == "header":
                raw = headers.get(param.name)
            else:
                continue
            label = f"{param.location} parameter '{param.name}'"
            if raw is None:
                if param.required:
                    errors.append(FieldError(param.name, f"{label} is required", "required"))
                continue
            try:
                value = _coerce(raw, param.schema)
            except ValueError as exc:
                errors.append(FieldError(param.name, f"{label}: {exc}", "type"))
                continue
            found = param.validator.errors(value)
            if found:
                errors.append(
                    FieldError(param.name, f"{label}: {found[0].message}", str(found[0].validator))
                )
                continue
            values[param.name] = value
        return values, errors

    def validate_body(self, body: Any) -> list[FieldError]:
        if self.body_validator is None:
            return []
        errors = self.body_validator.errors(body)
        return [
            FieldError(field_name(error), error.message, str(error.validator))
            for error in errors[:10]
        ]


def _coerce(raw: Any, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "array":
        return [_coerce(item, schema.get("items", {})) for item in raw]
    if kind == "integer":
        if not re.fullmatch(r"-?[0-9]{1,18}", raw):
            raise ValueError(f"{raw!r} is not an integer")
        return int(raw)
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
    if kind == "boolean":
        if raw not in ("true", "false"):
            raise ValueError(f"{raw!r} is not true or false")
        return raw == "true"
    return raw


def field_name(error: ValidationError) -> str:
    """`productOrderItem[0].productOffering.id`: the field as a partner writes it."""
    parts: list[str] = []
    for element in error.absolute_path:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        else:
            parts.append(("." if parts else "") + str(element))
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            parts.append(("." if parts else "") + missing[0])
    return "".join(parts) or "(body)"


class Contract:
    """A role's contract: the document, its operations and their validators."""

    def __init__(self, document: dict[str, Any], name: str) -> None:
        self.name = name
        self.document = document
        self.operations: dict[str, Operation] = {}
        self._components = document.get("components", {})
        for path, item in document.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in HTTP_METHODS:
                if method in item:
                    operation = self._compile(path, method, item[method], shared)
                    self.operations[operation.operation_id] = operation

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            pointer = node["$ref"].removeprefix("#/").split("/")
            node = self.document
            for part in pointer:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _validator(self, schema: dict[str, Any]) -> SchemaCheck:
        # Keep the components the schema refers to beside it, so its "#/components" refs
        # resolve. Only those: each validator compiles what it is given, and every schema of
        # a contract compiled with all of them cost tens of megabytes per worker.
        root = dict(schema)
        used = self._referenced_components(schema)
        if used:
            root["components"] = used
        return SchemaCheck(root)

    def _referenced_components(self, schema: Any) -> dict[str, dict[str, Any]]:
        """The components `schema` refers to, directly or through other components."""
        used: dict[str, dict[str, Any]] = {}
        pending = [schema]
        while pending:
            node = pending.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/components/"):
                    # "#/components/schemas/Name" (or a pointer further into that component)
                    section, _, rest = ref.removeprefix("#/components/").partition("/")
                    name = rest.split("/")[0].replace("~1", "/").replace("~0", "~")
                    if name not in used.setdefault(section, {}):
                        target = self._components[section][name]
                        used[section][name] = target
                        pending.append(target)
                pending.extend(value for key, value in node.items() if key != "$ref")
            elif isinstance(node, list):
                pending.extend(node)
        return used

    def _compile(
        self, path: str, method: str, spec: dict[str, Any], shared: list[dict[str, Any]]
    ) -> Operation:
        operation_id = spec["operationId"]
        parameters = []
        # `x-path-segments: true`: a path parameter that may hold slashes (a URL's rest).
        multi_segment: set[str] = set()
        for raw in [*shared, *spec.get("parameters", [])]:
            param = self._resolve(raw)
            if param.get("in") == "path" and param.get("x-path-segments"):
                multi_segment.add(param["name"])
            schema = self._resolve(param.get("schema", {}))
            parameters.append(
                Parameter(
                    name=param["name"],
                    location=param["in"],
                    required=bool(param.get("required", param["in"] == "path")),
                    schema=schema,
                    validator=self._validator(schema),
                )
            )
        body_validator = None
        body_required = False
        media_types: tuple[str, ...] = ()
        streams_body = False
        if "requestBody" in spec:
            body = self._resolve(spec["requestBody"])
            body_required = bool(body.get("required", False))
            media_types = tuple(body.get("content", {}))
            streams_body = bool(media_types) and not any(
                _JSON_MEDIA.match(media) or media == FORM_MEDIA for media in media_types
            )
            first: dict[str, Any] = next(iter(body.get("content", {}).values()), {})
            if not streams_body:
                body_validator = self._validator(first.get("schema", {}))
        security = spec.get("security", self.document.get("security", []))
        successes = sorted(int(code) for code in spec.get("responses", {}) if code.startswith("2"))
        return Operation(
            operation_id=operation_id,
            method=method.upper(),
            path=path,
            flask_rule=_PATH_PARAM.sub(
                lambda found: (
                    f"<path:{found[1]}>" if found[1] in multi_segment else f"<{found[1]}>"
                ),
                path,
            ),
            parameters=parameters,
            body_validator=body_validator,
            body_required=body_required,
            body_media_types=media_types,
            streams_body=streams_body,
            max_body_bytes=int(spec.get("x-max-body-bytes", DEFAULT_MAX_BODY_BYTES)),
            secured=bool(security) and security != [{}],
            capability=spec.get("x-capability"),
            caller=spec.get("x-caller", "partner"),
            success_status=successes[0] if successes else 200,
        )

    def component_check(self, schema_name: str) -> SchemaCheck:
        """A validator for one of the contract's component schemas (files that share it)."""
        return self._validator({"$ref": f"#/components/schemas/{schema_name}"})

    def public_document(self, server_url: str) -> dict[str, Any]:
        document = copy.deepcopy(self.document)
        document["servers"] = [{"url": server_url}]
        return document


# libyaml's parser where PyYAML was built with it: the bundled contracts parse in a tenth of
# the pure-Python parser's second, and every stack (each worker, each test stack) parses them.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(source: str | bytes | IO[str]) -> Any:
    """A YAML document as plain data (safe: no Python objects are built)."""
    return yaml.load(source, Loader=YAML_LOADER)  # noqa: S506 - a safe loader


@cache
def load_contract(name: str, directory: Path = CONTRACTS_DIR) -> Contract:
    """Parse and compile `contracts/<name>.yaml` once per process."""
    path = directory / f"{name}.yaml"
    with path.open() as handle:
        document = read_yaml(handle)
    return Contract(document, name)
