"""The HTTP side every fake shares: routes from the contract, one request pipeline.

A role declares handlers by operationId; the routes, their validation and
their errors come from the contract, so an operation without a handler (or a
handler without an operation) stops the stack at start-up.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, current_app, g, request
from flask.blueprints import BlueprintSetupState
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.sansio.utils import get_current_url

from . import idempotency, ratelimit
from .contract import (
    DEFAULT_MAX_BODY_BYTES,
    FORM_MEDIA,
    Contract,
    FieldError,
    HeaderLookup,
    Operation,
    load_contract,
)
from .fault_effects import DropConnection, apply_after, apply_before, lenient_body, mark_drop
from .faults import NO_FAULTS, Decision, Firing, Sample, fields_of
from .journal import body_text
from .problems import (
    PROBLEM_JSON,
    BadRequest,
    Conflict,
    DomainError,
    InvalidCorrelationId,
    MalformedJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    UriTooLong,
    problem,
)
from .tenancy import Partner, api_role, authenticate, require_capability

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("handoff.http")

MAX_BODY_BYTES = DEFAULT_MAX_BODY_BYTES
MAX_URI_BYTES = 16 * 1024
ERROR_SHAPES = "handoff.error_shapes"
CORRELATION_PATTERN = re.compile(r"^[a-zA-Z0-9\-_:;./<>{}]{0,256}$")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


class RawJson(str):
    """A body already serialised (e.g. a stored answer being replayed)."""


@dataclass
class Reply:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RequestContext:
    """What a handler needs: who is calling, what they sent, an open transaction."""

    runtime: Runtime
    operation: Operation
    correlation_id: str
    partner: Partner | None
    params: dict[str, Any]
    body: Any
    conn: Connection
    base_url: str
    faults: Decision = field(default_factory=lambda: NO_FAULTS)
    _now: float | None = None
    _fingerprint: str | None = None

    @property
    def partner_id(self) -> str:
        assert self.partner is not None, "handler of an unsecured operation asked for a partner"
        return self.partner.id

    @property
    def fingerprint(self) -> str:
        """What identifies this request's content for idempotency, computed once."""
        if self._fingerprint is None:
            self._fingerprint = idempotency.fingerprint(
                self.operation.method, request.path, self.body
            )
        return self._fingerprint

    def now(self) -> float:
        """The simulated time of this request, read once."""
        if self._now is None:
            self._now = self.runtime.clock.now(self.conn)
        return self._now

    def href(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once this request's transaction has committed."""
        g.setdefault("after_commit", []).append(action)

    def data_fault(self, name: str) -> Firing | None:
        """The data fault rule of that name that fired on this request, if any."""
        return self.faults.data_fault(name)


Handler = Callable[[RequestContext], Reply]
Authenticator = Callable[["Runtime", Connection, Operation], Partner | None]


@dataclass(frozen=True)
class Withheld:
    """A request a role's screen found holding what no one may keep (e.g. a card number).

    The journal keeps neither its body nor its URL as sent, but `journal_url`; the
    pipeline answers `refusal` once the caller is authenticated, before the body is parsed
    or validated, so no validation message can echo the value either.
    """

    refusal: DomainError
    journal_url: str
    # False when the supplied X-Correlation-ID is what had to be withheld: the request then
    # gets a fresh one, so the refused value is neither echoed nor journaled.
    keep_correlation_id: bool = True


# A role's screen: (raw body, path with query string, headers) -> what to withhold, or None.
Screen = Callable[[bytes, str, HeaderLookup], Withheld | None]


@dataclass(frozen=True)
class ErrorShape:
    """How an API whose standard fixes its own error body answers every refusal, in place of
    RFC 9457: CAMARA's `{status, code, message}`, OAuth 2.0's `{error, error_description}`.

    `render` returns the status as well, since a standard may have no code for one of ours
    (CAMARA says 400 INVALID_ARGUMENT where the pipeline says 422 UNSUPPORTED_CHARACTER).
    """

    render: Callable[[DomainError], tuple[int, dict[str, Any]]]
    media_type: str = "application/json"


class Refusal(DomainError):
    """A refusal that arose outside any handler (routing, an unexpected failure)."""

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        self.status = status  # type: ignore[misc]
        self.code = code  # type: ignore[misc]
        self.title = title  # type: ignore[misc]
        super().__init__(detail)


class ContractViolation(BadRequest):
    """A request the contract refuses, with every failing field and JSON Schema keyword."""

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        super().__init__(
            f"{first.field}: {first.message}",
            field=first.field,
            errors=[error.as_dict() for error in errors],
        )
        self.field_errors = errors


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_response(
    body: Any,
    status: int,
    headers: dict[str, str] | None = None,
    media_type: str | None = None,
) -> Response:
    media = media_type or (PROBLEM_JSON if status >= 400 else "application/json")
    text = "" if body is None else body if isinstance(body, RawJson) else to_json(body)
    response = Response(text if status != 204 else None, status=status, mimetype=media)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _instance() -> str:
    """The problem's `instance`: the path, unless a screen withheld it (it may be what had
    to be withheld)."""
    withheld: Withheld | None = g.get("withheld")
    return withheld.journal_url.partition("?")[0] if withheld else request.path


def _error_shape() -> ErrorShape | None:
    """The error shape of the API this request's path belongs to, if it has its own."""
    shapes: dict[str, ErrorShape] | None = current_app.extensions.get(ERROR_SHAPES)
    if not shapes:
        return None
    path = request.path
    for prefix, shape in shapes.items():  # longest prefix first
        if path == prefix or path.startswith(prefix + "/"):
            return shape
    return None


def problem_response(error: DomainError) -> Response:
    correlation_id = getattr(g, "correlation_id", None)
    headers = dict(error.headers)
    if correlation_id:
        headers["X-Correlation-ID"] = correlation_id
    shape = _error_shape()
    if shape is not None:
        status, shaped = shape.render(error)
        return json_response(shaped, status, headers, media_type=shape.media_type)
    body = error.to_problem(correlation_id=correlation_id, instance=_instance())
    return json_response(body, error.status, headers)


def resolve_correlation_id() -> str:
    """Echo X-Correlation-ID, else take the trace ID of a W3C traceparent, else mint one."""
    supplied = request.headers.get("X-Correlation-ID")
    if supplied is not None:
        if not supplied or not CORRELATION_PATTERN.match(supplied):
            raise InvalidCorrelationId(
                "X-Correlation-ID must match ^[a-zA-Z0-9-_:;./<>{}]{1,256}$",
                field="X-Correlation-ID",
            )
        return supplied
    traceparent = request.headers.get("traceparent", "")
    match = TRACEPARENT.match(traceparent.strip())
    if match:
        return match.group(1)
    return new_correlation_id()


# Random per process plus a counter, shaped as a version-4 UUID: unique across workers and
# far cheaper than reading the OS entropy pool for every request that arrives without an ID.
_ID_BASE = uuid.uuid4().int
_ID_COUNTER = itertools.count(1)


def new_correlation_id() -> str:
    return str(uuid.UUID(int=_ID_BASE ^ next(_ID_COUNTER), version=4))


def _reseed_ids() -> None:
    global _ID_BASE
    _ID_BASE = uuid.uuid4().int


os.register_at_fork(after_in_child=_reseed_ids)


def partner_authenticator(role: str) -> Authenticator:
    def authenticate_partner(
        runtime: Runtime, conn: Connection, operation: Operation
    ) -> Partner | None:
        if not operation.secured:
            return None
        caller_role = api_role(role, operation.caller)
        partner = authenticate(conn, caller_role, request.headers.get("X-API-Key"))
        if operation.capability:
            require_capability(partner, operation.capability)
        return partner

    return authenticate_partner


def _raw_body(limit: int = MAX_BODY_BYTES) -> bytes:
    """The body as sent, read once (at most one byte past the bound)."""
    raw: bytes | None = g.get("raw_body")
    if raw is None:
        raw = g.raw_body = request.stream.read(limit + 1)
    return raw


def _refuse_oversize(limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes", limit=limit)


def _check_media_type(operation: Operation) -> None:
    mimetype = request.mimetype or ""
    accepted = set(operation.body_media_types) or {"application/json"}
    if mimetype not in accepted and not (
        mimetype.endswith("+json") and "application/json" in accepted
    ):
        raise UnsupportedMediaType(
            f"Content-Type {mimetype or '(none)'} is not accepted; "
            f"send {', '.join(sorted(accepted))}"
        )


def _read_body(operation: Operation) -> Any:
    limit = operation.max_body_bytes
    _refuse_oversize(limit)
    raw = _raw_body(limit)
    if len(raw) > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes", limit=limit)
    if not raw:
        if operation.body_required:
            raise BadRequest("This operation needs a JSON body", field="(body)")
        return None
    _check_media_type(operation)
    if request.mimetype == FORM_MEDIA:
        return _form_body(raw)
    try:
        body = json.loads(raw, parse_float=_json_number)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"The body is not valid JSON: {exc}") from None
    # Legal JSON, but no store keeps it (PostgreSQL text) and no identifier needs it;
    # refused once the body has passed the contract (see RoleApi._handle).
    g.body_has_nul = b"\\u0000" in raw.lower()
    return body


def _form_body(raw: bytes) -> dict[str, str]:
    """A form-encoded body (OAuth 2.0 requests) as a flat object to validate like JSON."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"The body is not a valid form: {exc}", field="(body)") from None
    body: dict[str, str] = {}
    for name, value in pairs:
        if name in body:
            # RFC 6749 section 3.1: request parameters must not be included more than once.
            raise BadRequest(f"{name}: the parameter is given more than once", field=name)
        body[name] = value
    g.body_has_nul = any("\x00" in name or "\x00" in value for name, value in pairs)
    return body


class BodyStream:
    """A request body taken as it arrives, for operations whose contract body is not JSON.

    Iterating yields the body's lines exactly as sent (bytes, line ends kept), reading a
    block at a time: a file of many megabytes is never held whole. A line longer than a
    block comes in pieces of a block or more (joined, they are still the body as sent).
    Past the operation's limit the iteration raises 413, whether or not Content-Length
    announced the size.
    """

    BLOCK_BYTES = 64 * 1024

    def __init__(self, stream: IO[bytes], limit: int, first_block: bytes) -> None:
        self._stream = stream
        self._first_block = first_block
        self.limit = limit
        self.bytes_read = 0
        self._started = False

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a request body can be read only once")
        self._started = True
        tail = b""
        block = self._first_block
        while block:
            self.bytes_read += len(block)
            if self.bytes_read > self.limit:
                raise PayloadTooLarge(
                    f"The body may be at most {self.limit} bytes", limit=self.limit
                )
            lines = (tail + block).split(b"\n") if tail else block.split(b"\n")
            tail = lines.pop()
            for line in lines:
                yield line + b"\n"
            if len(tail) >= self.BLOCK_BYTES:
                yield tail
                tail = b""
            block = self._stream.read(self.BLOCK_BYTES)
        if tail:
            yield tail


def _body_stream(operation: Operation) -> BodyStream | None:
    limit = operation.max_body_bytes
    _refuse_oversize(limit)
    first_block = request.stream.read(BodyStream.BLOCK_BYTES)
    if not first_block:
        if operation.body_required:
            raise BadRequest("This operation needs a body", field="(body)")
        return None
    _check_media_type(operation)
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8", "us-ascii"):
        raise UnsupportedMediaType(f"charset {charset} is not accepted; send UTF-8")
    stream = g.body_stream = BodyStream(request.stream, limit, first_block)
    return stream


@dataclass
class RequestInputs:
    """A request's body and parameters as the contract reads them, or why it refuses them."""

    body: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    refusal: DomainError | None = None


def _request_inputs(operation: Operation, path_args: dict[str, str]) -> RequestInputs:
    """Read the body (the first block of a streamed one) and check body and parameters
    against the contract. A refusal is kept, not raised: the caller is refused first."""
    try:
        body: Any = None
        if operation.streams_body:
            body = _body_stream(operation)  # the first block; the handler reads the rest
        elif operation.body_validator is not None:
            body = _read_body(operation)
        query = request.args.to_dict(flat=False)
        params, errors = operation.coerce_and_validate_params(path_args, query, request.headers)
        if g.get("raw_body"):
            # A JSON `null` is a body too, and must match the schema like any other.
            errors += operation.validate_body(body)
        if errors:
            raise ContractViolation(errors)
        if g.get("body_has_nul"):
            raise UnsupportedCharacter("Strings may not contain U+0000 (NUL)", field="(body)")
    except DomainError as refusal:
        return RequestInputs(refusal=refusal)
    return RequestInputs(body, params)


class ConcurrentChange(Conflict):
    code = "CONCURRENT_CHANGE"
    title = "Another request changed the same data at the same moment"
    retryable = True


class UnsupportedCharacter(DomainError):
    code = "UNSUPPORTED_CHARACTER"
    status = 422
    title = "The body holds a character no field accepts"


def _json_number(text: str) -> int | Decimal:
    """Exact decimals; a number without a fraction (64.0) is the integer JSON Schema says it is."""
    value = Decimal(text)
    if value == value.to_integral_value() and value.adjusted() < 19:
        return int(value)
    return value


class RoleApi:
    """One fake vendor's HTTP surface, bound to its contract."""

    def __init__(
        self,
        role: str,
        contract_name: str | None = None,
        screen: Screen | None = None,
        *,
        authenticator: Authenticator | None = None,
        error_shape: ErrorShape | None = None,
        idempotency_keys: bool = True,
    ) -> None:
        self.role = role
        self.contract_name = contract_name or role
        self.handlers: dict[str, tuple[Handler, bool, str | None]] = {}
        self.screen = screen
        # How callers prove who they are; the role's partner API keys unless said otherwise.
        self.authenticator = authenticator
        self.error_shape = error_shape
        # False for an API whose standard knows no Idempotency-Key (a replayed CAMARA check
        # would answer a stale state).
        self.idempotency_keys = idempotency_keys

    def operation(
        self, operation_id: str, *, write: bool = False, idempotent_on: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Bind a handler; `write` opens a write transaction, `idempotent_on` names the
        body field (e.g. externalId) that also acts as an idempotency key."""

        def register(handler: Handler) -> Handler:
            self.handlers[operation_id] = (
                handler,
                write or idempotent_on is not None,
                idempotent_on,
            )
            return handler

        return register

    def contract(self) -> Contract:
        return load_contract(self.contract_name)

    def blueprint(
        self,
        runtime: Runtime,
        authenticator: Authenticator | None = None,
        prefix: str | None = None,
    ) -> Blueprint:
        contract = self.contract()
        missing = set(contract.operations) - set(self.handlers)
        unknown = set(self.handlers) - set(contract.operations)
        if missing or unknown:
            raise RuntimeError(
                f"{self.role}: contract operations without handler {sorted(missing)}, "
                f"handlers without operation {sorted(unknown)}"
            )
        streamed = sorted(op.operation_id for op in contract.operations.values() if op.streams_body)
        if self.screen is not None and streamed:
            # A screen reads the whole body before anything else; a streamed one is never whole.
            raise RuntimeError(f"{self.role}: a screened API cannot stream bodies ({streamed})")
        url_prefix = prefix if prefix is not None else f"/{self.role}"
        static_paths: dict[str, set[str]] = {}
        for operation in contract.operations.values():
            if "{" not in operation.path:
                static_paths.setdefault(url_prefix + operation.path, set()).add(operation.method)
        blueprint = Blueprint(self.contract_name.replace("_", ""), __name__, url_prefix=url_prefix)
        auth = authenticator or self.authenticator or partner_authenticator(self.role)
        if self.error_shape is not None:
            blueprint.record_once(_shape_registrar(url_prefix, self.error_shape))
        for operation in contract.operations.values():
            handler, write, idempotent_on = self.handlers[operation.operation_id]
            view = self._view(runtime, operation, handler, write, idempotent_on, auth, url_prefix)
            if "{" in operation.path:
                view = _concrete_paths_first(view, static_paths)
            blueprint.add_url_rule(
                operation.flask_rule,
                endpoint=operation.operation_id,
                view_func=view,
                methods=[operation.method],
            )
        return blueprint

    def _view(
        self,
        runtime: Runtime,
        operation: Operation,
        handler: Handler,
        write: bool,
        idempotent_on: str | None,
        auth: Authenticator,
        url_prefix: str,
    ) -> Callable[..., Response]:
        role = self.role
        screen = self.screen

        def view(**path_args: str) -> Response:
            g.handoff_role = role
            g.operation_id = operation.operation_id
            if screen is not None:
                # First of all, so that whatever answers this request (an outage rule, a
                # 401, a 429) the journal already knows what it must not keep.
                withheld = g.withheld = screen(
                    _raw_body(), request.full_path.rstrip("?"), request.headers
                )
                if withheld is not None and not withheld.keep_correlation_id:
                    g.correlation_id = new_correlation_id()
            faults = NO_FAULTS
            if role in runtime.role_operations and runtime.faults.rule_set().candidates(
                role, operation.operation_id
            ):
                faults = self._decide_faults(runtime, operation, auth, path_args)
            ratelimit.admit(runtime, role, operation, auth)
            # Read and check the request before the transaction: a write holds the store's
            # write turn, which every other writer waits for, only for its own work.
            inputs = _request_inputs(operation, path_args)
            open_tx = runtime.store.write if write else runtime.store.read
            try:
                with open_tx() as conn:
                    partner = auth(runtime, conn, operation)
                    g.partner_id = partner.id if partner else None
                    reply = self._handle(
                        runtime,
                        conn,
                        operation,
                        handler,
                        partner,
                        inputs,
                        idempotent_on,
                        url_prefix,
                        faults,
                    )
            except IntegrityError:
                # A concurrent twin committed first (PostgreSQL): answer as its retry would be.
                g.pop("after_commit", None)
                if operation.streams_body:
                    # The body is spent, so the request cannot be run again here.
                    raise ConcurrentChange(
                        "A concurrent request wrote the same data first; send this one again"
                    ) from None
                with runtime.store.write() as conn:
                    partner = auth(runtime, conn, operation)
                    reply = self._handle(
                        runtime,
                        conn,
                        operation,
                        handler,
                        partner,
                        inputs,
                        idempotent_on,
                        url_prefix,
                        faults,
                    )
            for action in g.pop("after_commit", ()):
                action()
            headers = dict(reply.headers)
            headers["X-Correlation-ID"] = g.correlation_id
            response = json_response(reply.body, reply.status, headers)
            return apply_after(faults, response) if faults.fired else response

        view.__name__ = operation.operation_id
        return view

    def _decide_faults(
        self,
        runtime: Runtime,
        operation: Operation,
        auth: Authenticator,
        path_args: dict[str, str],
    ) -> Decision:
        """Which fault rules fire on this request; delays and early answers happen here,
        outside any transaction. A refused caller still meets an outage rule."""
        refusal: DomainError | None = None
        try:
            with runtime.store.read() as conn:
                partner = auth(runtime, conn, operation)
        except DomainError as error:
            partner, refusal = None, error

        def request_fields() -> dict[str, tuple[str, ...]]:
            body = lenient_body() if operation.body_validator is not None else None
            return fields_of(path_args, request.args.to_dict(flat=False), body)

        sample = Sample(
            role=self.role,
            operation=operation.operation_id,
            method=operation.method,
            path=request.path,
            partner=partner.id if partner else None,
            headers=request.headers,
            fields=request_fields,
        )
        decision = runtime.faults.decide(sample, runtime.clock.now)
        if decision.fired:
            apply_before(decision)
        if refusal is not None:
            raise refusal
        return decision

    def _handle(
        self,
        runtime: Runtime,
        conn: Connection,
        operation: Operation,
        handler: Handler,
        partner: Partner | None,
        inputs: RequestInputs,
        idempotent_on: str | None,
        url_prefix: str,
        faults: Decision = NO_FAULTS,
    ) -> Reply:
        withheld: Withheld | None = g.get("withheld")
        if withheld is not None:
            raise withheld.refusal
        # Refusals of the request itself come after those of the caller (401, 403).
        if inputs.refusal is not None:
            raise inputs.refusal
        body, params = inputs.body, inputs.params
        ctx = RequestContext(
            runtime=runtime,
            operation=operation,
            correlation_id=g.correlation_id,
            partner=partner,
            params=params,
            body=body,
            conn=conn,
            base_url=_host_url(request.scheme, request.host) + url_prefix,
            faults=faults,
        )
        key = request.headers.get("Idempotency-Key")
        if key is None and idempotent_on and isinstance(body, dict) and body.get(idempotent_on):
            key = f"{idempotent_on}:{body[idempotent_on]}"
        if (
            key is None
            or partner is None
            or operation.method not in ("POST", "PATCH")
            or not self.idempotency_keys
            # A streamed body cannot be fingerprinted before it is read: such a handler keeps
            # its own exactly-once record (the SIM batch load keys on the file's SHA-256).
            or operation.streams_body
        ):
            return handler(ctx)
        if not 1 <= len(key) <= 255:
            raise BadRequest("Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key")
        scope = {"role": self.role, "partner_id": partner.id, "key": key}
        fingerprint = ctx.fingerprint
        idempotency.hold(conn, runtime.store, **scope)
        now = ctx.now()
        stored = idempotency.lookup(
            conn,
            **scope,
            request_fingerprint=fingerprint,
            now=now,
            retention_s=runtime.settings.idempotency_retention_s,
        )
        if stored is not None:
            replayed = None if stored.body is None else RawJson(stored.body)
            return Reply(replayed, stored.status, {**stored.headers, "Idempotent-Replayed": "true"})
        reply = handler(ctx)
        if 200 <= reply.status < 300:
            if reply.body is not None:
                reply.body = RawJson(to_json(reply.body))
            answer = idempotency.StoredAnswer(reply.status, reply.body, reply.headers)
            idempotency.remember(
                conn, **scope, request_fingerprint=fingerprint, answer=answer, now=now
            )
        return reply


def _shape_registrar(prefix: str, shape: ErrorShape) -> Callable[[BlueprintSetupState], None]:
    def register(state: BlueprintSetupState) -> None:
        shapes: dict[str, ErrorShape] = state.app.extensions.setdefault(ERROR_SHAPES, {})
        shapes[prefix] = shape
        ordered = sorted(shapes.items(), key=lambda item: len(item[0]), reverse=True)
        state.app.extensions[ERROR_SHAPES] = dict(ordered)

    return register


def _concrete_paths_first(
    view: Callable[..., Response], static_paths: dict[str, set[str]]
) -> Callable[..., Response]:
    """OpenAPI: a concrete path (`/faults/explain`) wins over a template (`/faults/{id}`),
    for every method: DELETE /faults/explain is a 405, not a deletion of rule "explain"."""

    def guarded(**path_args: str) -> Response:
        methods = static_paths.get(request.path)
        if methods is not None:
            allowed = set(methods) | ({"HEAD"} if "GET" in methods else set()) | {"OPTIONS"}
            raise MethodNotAllowed(valid_methods=sorted(allowed))
        return view(**path_args)

    guarded.__name__ = view.__name__
    return guarded


def _concrete_allow(app: Flask, allow: str) -> str:
    """The Allow of a concrete path only, when a templated sibling also matched it."""
    concrete = [
        rule
        for rule in app.url_map.iter_rules()
        if not rule.arguments and rule.rule == request.path and rule.methods
    ]
    if not concrete:
        return allow
    methods = set().union(*(rule.methods or set() for rule in concrete))
    return ", ".join(sorted(methods))


def install_error_handlers(app: Flask, runtime: Runtime) -> None:
    """One place that turns every failure into an RFC 9457 problem document."""

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        return problem_response(error)

    default_options = app.make_default_options_response

    def options_response() -> Response:
        response = default_options()
        response.headers["Allow"] = _concrete_allow(app, response.headers.get("Allow", ""))
        return response

    app.make_default_options_response = options_response  # type: ignore[method-assign]

    @app.errorhandler(DropConnection)
    def _drop(signal: DropConnection) -> Response:
        return mark_drop(signal.firing)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        codes = {
            404: "NOT_FOUND",
            405: "METHOD_NOT_ALLOWED",
            413: "PAYLOAD_TOO_LARGE",
            415: "UNSUPPORTED_MEDIA_TYPE",
        }
        code = codes.get(status, f"HTTP_{status}")
        if _error_shape() is not None:
            response = problem_response(
                Refusal(status, code, error.name, error.description or error.name)
            )
        else:
            body = problem(
                status,
                code,
                error.name,
                error.description or error.name,
                correlation_id=getattr(g, "correlation_id", None),
                instance=request.path,
            )
            response = json_response(body, status)
        for name, value in error.get_headers():
            if name.lower() == "allow":
                response.headers["Allow"] = _concrete_allow(app, value)
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        detail = "The fake failed unexpectedly; the journal has the correlation ID"
        if _error_shape() is not None:
            return problem_response(Refusal(500, "INTERNAL", "Internal error", detail))
        body = problem(
            500,
            "INTERNAL",
            "Internal error",
            detail,
            correlation_id=getattr(g, "correlation_id", None),
            instance=_instance(),
        )
        return json_response(body, 500)

    @app.before_request
    def _start() -> None:
        g.handoff_started = time.perf_counter()
        try:
            g.correlation_id = resolve_correlation_id()
        except InvalidCorrelationId:
            # The refusal itself still carries an ID the caller can quote.
            g.correlation_id = new_correlation_id()
            raise
        # The server passes request lines of any length (a WSGI server's own refusal would
        # be an HTML page); the fakes refuse them here, as a problem document.
        uri = request.environ.get("RAW_URI") or request.full_path
        if len(uri) > MAX_URI_BYTES:
            raise UriTooLong(
                f"The request URI is {len(uri)} bytes; at most {MAX_URI_BYTES} are accepted",
                field="(uri)",
            )

    @app.after_request
    def _journal(response: Response) -> Response:
        if g.get("correlation_id"):
            response.headers["X-Correlation-ID"] = g.correlation_id
        role = getattr(g, "handoff_role", None)
        # The control plane is not traffic; the sink's deliveries are journaled by the
        # dispatcher that sent them and recorded by the sink itself.
        if role is None or role in ("admin", "sink"):
            return response
        withheld: Withheld | None = g.get("withheld")
        extra: dict[str, Any] = {"faults": g.fault_ids} if g.get("fault_ids") else {}
        if withheld is not None:
            extra["withheld"] = withheld.refusal.code
        streamed: BodyStream | None = g.get("body_stream")
        if streamed is not None:
            # The journal keeps no streamed body (a file of megabytes); its size says what came.
            extra["requestBodyBytes"] = streamed.bytes_read
        runtime.journal.record(
            role=role,
            direction="inbound",
            method=request.method,
            url=withheld.journal_url if withheld else request.full_path.rstrip("?"),
            operation_id=getattr(g, "operation_id", None),
            status=response.status_code,
            correlation_id=getattr(g, "correlation_id", None),
            partner_id=getattr(g, "partner_id", None),
            duration_ms=(time.perf_counter() - g.handoff_started) * 1000,
            request_body=None if withheld else body_text(g.get("raw_body")),
            response_body=body_text(response.get_data() if not response.is_streamed else None),
            extra=extra or None,
        )
        return response


@lru_cache(maxsize=64)
def _host_url(scheme: str, host: str) -> str:
    """`request.host_url` without its trailing slash, worked out once per host: werkzeug
    builds and IRI-decodes it anew for every request, a few percent of a GET."""
    return get_current_url(scheme, host).rstrip("/")


def paging(ctx: RequestContext) -> tuple[int, int]:
    """TMF list paging: `offset` and `limit` (defaults 0 and 100)."""
    return int(ctx.params.get("offset", 0)), int(ctx.params.get("limit", 100))


def list_reply(total: int, items: list[Any]) -> Reply:
    return Reply(items, headers={"X-Total-Count": str(total), "X-Result-Count": str(len(items))})


def created(body: dict[str, Any]) -> Reply:
    """201 with Location pointing at the new resource's href."""
    return Reply(body, 201, {"Location": body["href"]})
