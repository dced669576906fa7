"""CAMARA network APIs: their error shape, `x-correlator`, and OAuth 2.0 bearer access.

A `CamaraApi` is a `RoleApi` whose refusals are CAMARA's `{status, code, message}` with
CAMARA's codes (Commonalities), whose callers present access tokens holding the scopes the
contract's `security` names, and that echoes the caller's `x-correlator`. What a token means
(which partner, which line) is the role's business: it hands in a `TokenVerifier`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, g, request
from sqlalchemy import Connection

from .contract import HTTP_METHODS, Contract, Operation
from .http import Authenticator, ContractViolation, ErrorShape, RoleApi
from .oauth import bearer_token
from .problems import DomainError
from .tenancy import Partner

if TYPE_CHECKING:
    from .runtime import Runtime

X_CORRELATOR = "x-correlator"
# CAMARA Commonalities' XCorrelator pattern.
X_CORRELATOR_PATTERN = re.compile(r"^[a-zA-Z0-9\-_:;./<>{}]{0,256}$")
_RANGE_KEYWORDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})


# --- errors ---------------------------------------------------------------------------------


class CamaraError(DomainError):
    """A refusal in CAMARA's own vocabulary: `code` is what the caller reads."""

    status = 400


class InvalidArgument(CamaraError):
    code = "INVALID_ARGUMENT"
    title = "Client specified an invalid argument, request body or query param"


class OutOfRange(CamaraError):
    code = "OUT_OF_RANGE"
    title = "Client specified an invalid range"


class PermissionDenied(CamaraError):
    code = "PERMISSION_DENIED"
    status = 403
    title = "Client does not have sufficient permissions to perform this action"


class InsufficientScope(PermissionDenied):
    def __init__(self, detail: str, scope: str) -> None:
        super().__init__(
            detail,
            headers={
                "WWW-Authenticate": f'Bearer realm="handoff", error="insufficient_scope", '
                f'scope="{scope}"'
            },
        )


class IdentifierNotFound(CamaraError):
    code = "IDENTIFIER_NOT_FOUND"
    status = 404
    title = "Device identifier not found"


class MissingIdentifier(CamaraError):
    code = "MISSING_IDENTIFIER"
    status = 422
    title = "The device cannot be identified"


class UnnecessaryIdentifier(CamaraError):
    code = "UNNECESSARY_IDENTIFIER"
    status = 422
    title = "The device is already identified by the access token"


class UnsupportedIdentifier(CamaraError):
    code = "UNSUPPORTED_IDENTIFIER"
    status = 422
    title = "The identifier provided is not supported"


class ServiceNotApplicable(CamaraError):
    code = "SERVICE_NOT_APPLICABLE"
    status = 422
    title = "The service is not available for the provided identifier"


# --- the error shape --------------------------------------------------------------------

# What the shared pipeline and the fault rules raise, said in CAMARA Commonalities' codes.
_PIPELINE_CODES: dict[str, tuple[int, str]] = {
    "INVALID_REQUEST": (400, "INVALID_ARGUMENT"),
    "MALFORMED_JSON": (400, "INVALID_ARGUMENT"),
    "INVALID_CORRELATION_ID": (400, "INVALID_ARGUMENT"),
    "PAYLOAD_TOO_LARGE": (400, "INVALID_ARGUMENT"),
    "UNSUPPORTED_CHARACTER": (400, "INVALID_ARGUMENT"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "UNSUPPORTED_MEDIA_TYPE"),
    "UNAUTHENTICATED": (401, "UNAUTHENTICATED"),
    "PARTNER_INACTIVE": (403, "PERMISSION_DENIED"),
    "CAPABILITY_NOT_GRANTED": (403, "PERMISSION_DENIED"),
    "CAPABILITY_SUSPENDED": (403, "PERMISSION_DENIED"),
    "NOT_FOUND": (404, "NOT_FOUND"),
    "METHOD_NOT_ALLOWED": (405, "METHOD_NOT_ALLOWED"),
    "RATE_LIMITED": (429, "TOO_MANY_REQUESTS"),
    "INTERNAL": (500, "INTERNAL"),
    "BAD_GATEWAY": (502, "BAD_GATEWAY"),
    "SERVICE_UNAVAILABLE": (503, "UNAVAILABLE"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
    "GATEWAY_TIMEOUT": (504, "TIMEOUT"),
}
_STATUS_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL",
    502: "BAD_GATEWAY",
    503: "UNAVAILABLE",
    504: "TIMEOUT",
}


def _render(error: DomainError) -> tuple[int, dict[str, Any]]:
    status, code = error.status, error.code
    if isinstance(error, ContractViolation) and error.field_errors[0].keyword in _RANGE_KEYWORDS:
        # CAMARA tells a value outside the field's declared range (maxAge above 2400)
        # from any other invalid argument.
        status, code = 400, OutOfRange.code
    elif not isinstance(error, CamaraError):
        status, code = _PIPELINE_CODES.get(code, (status, _STATUS_CODES.get(status, code)))
    return status, {"status": status, "code": code, "message": error.detail}


CAMARA_ERRORS = ErrorShape(render=_render)


# --- bearer access ------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenHolder(Partner):
    """The partner behind an access token, and what the token grants it."""

    scopes: frozenset[str]
    # The line a three-legged token was issued for (its authenticated subscriber); None for
    # a two-legged (client credentials) token, which identifies no one.
    line_id: str | None
    token_id: str


# (runtime, connection, token) -> its holder, or InvalidToken (401).
TokenVerifier = Callable[["Runtime", Connection, str], TokenHolder]


def required_scopes(contract: Contract) -> dict[str, list[frozenset[str]]]:
    """Per operationId, the alternative scope sets its `security` accepts (any one will do)."""
    document = contract.document
    scopes: dict[str, list[frozenset[str]]] = {}
    for item in document.get("paths", {}).values():
        for method in HTTP_METHODS:
            spec = item.get(method)
            if spec is None:
                continue
            requirements = spec.get("security", document.get("security", []))
            scopes[spec["operationId"]] = [
                frozenset(scope for needed in requirement.values() for scope in needed)
                for requirement in requirements
            ]
    return scopes


def explicit_identifier(holder: TokenHolder, supplied: str | None) -> str | None:
    """CAMARA's rule for who the subject is: a three-legged token names it and the body must
    not; a two-legged one names no one and the body must. Returns the body's identifier, or
    None when the subject is the token's line."""
    if holder.line_id is not None:
        if supplied is not None:
            raise UnnecessaryIdentifier(
                "The access token already identifies the device; send no identifier"
            )
        return None
    if supplied is None:
        raise MissingIdentifier(
            "The access token identifies no device: send the identifier in the body"
        )
    return supplied


class CamaraApi(RoleApi):
    """One CAMARA API of a role, served under its own base path (`/mno/sim-swap/v2`)."""

    def __init__(self, role: str, contract_name: str, verify_token: TokenVerifier) -> None:
        super().__init__(
            role,
            contract_name,
            authenticator=self._authenticate,
            error_shape=CAMARA_ERRORS,
            idempotency_keys=False,
        )
        self.verify_token = verify_token
        self._scopes: dict[str, list[frozenset[str]]] = {}

    def blueprint(
        self,
        runtime: Runtime,
        authenticator: Authenticator | None = None,
        prefix: str | None = None,
    ) -> Blueprint:
        self._scopes = required_scopes(self.contract())
        blueprint = super().blueprint(runtime, authenticator, prefix)
        role = self.role

        @blueprint.before_request
        def _take_x_correlator() -> None:
            # Known before anything can refuse the request, so the refusal is journaled.
            g.handoff_role = role
            g.operation_id = (request.endpoint or "").rpartition(".")[2] or None
            g.x_correlator = None
            supplied = request.headers.get(X_CORRELATOR)
            if supplied is None:
                return
            if not X_CORRELATOR_PATTERN.fullmatch(supplied):
                raise InvalidArgument(
                    "x-correlator must match ^[a-zA-Z0-9-_:;.\\/<>{}]{0,256}$",
                    field=X_CORRELATOR,
                )
            g.x_correlator = supplied
            if supplied:
                g.correlation_id = supplied

        @blueprint.after_request
        def _echo_x_correlator(response: Response) -> Response:
            echoed = g.get("x_correlator")
            response.headers[X_CORRELATOR] = (
                echoed if echoed is not None else g.get("correlation_id", "")
            )
            return response

        return blueprint

    def _authenticate(self, runtime: Runtime, conn: Connection, operation: Operation) -> Partner:
        token = bearer_token(request.headers.get("Authorization"))
        holder = self.verify_token(runtime, conn, token)
        alternatives = self._scopes.get(operation.operation_id, [])
        if alternatives and not any(needed <= holder.scopes for needed in alternatives):
            wanted = " or ".join(" ".join(sorted(needed)) for needed in alternatives)
            raise InsufficientScope(
                f"The access token does not grant {wanted}", scope=" ".join(sorted(alternatives[0]))
            )
        return holder
