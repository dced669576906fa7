"""Domain errors and their one rendering: RFC 9457 problem documents.

Every fake raises a subclass of `DomainError`; the core handler turns it into
`application/problem+json` with a stable `code` a partner can branch on.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://handoff.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    """A refusal a partner may see: stable code, HTTP status, partner-safe detail."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **members: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.members = members

    def to_problem(self, *, correlation_id: str | None, instance: str | None) -> dict[str, Any]:
        return problem(
            self.status,
            self.code,
            self.title,
            self.detail,
            correlation_id=correlation_id,
            instance=instance,
            retryable=self.retryable,
            **self.members,
        )


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    correlation_id: str | None = None,
    instance: str | None = None,
    retryable: bool = False,
    **members: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if correlation_id:
        body["correlationId"] = correlation_id
    if retryable:
        body["retryable"] = True
    body.update({key: value for key, value in members.items() if value is not None})
    return body


class BadRequest(DomainError):
    code = "INVALID_REQUEST"
    status = 400
    title = "The request does not match the contract"


class UriTooLong(BadRequest):
    """A 400, not a 414: every operation of every contract documents 400, and the
    problem's code says what is wrong."""

    code = "URI_TOO_LONG"
    title = "The request URI is longer than allowed"


class MalformedJson(DomainError):
    code = "MALFORMED_JSON"
    status = 400
    title = "The body is not valid JSON"


class InvalidCorrelationId(DomainError):
    code = "INVALID_CORRELATION_ID"
    status = 400
    title = "The correlation ID is not acceptable"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    status = 401
    title = "Missing or unknown credentials"

    def __init__(self, detail: str | None = None, **members: Any) -> None:
        super().__init__(
            detail, headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'}, **members
        )


class PermissionDenied(DomainError):
    code = "PERMISSION_DENIED"
    status = 403
    title = "Not allowed"


class NotFound(DomainError):
    code = "NOT_FOUND"
    status = 404
    title = "No such resource"


class Conflict(DomainError):
    code = "CONFLICT"
    status = 409
    title = "The resource is not in a state that allows this"


class PayloadTooLarge(DomainError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    title = "The body is larger than allowed"


class UnsupportedMediaType(DomainError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415
    title = "The body must be JSON"


class Unprocessable(DomainError):
    code = "UNPROCESSABLE"
    status = 422
    title = "The request is well formed but cannot be carried out"


class IdempotencyKeyReused(DomainError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422
    title = "This Idempotency-Key was used with a different request"


class IdempotencyKeyInFlight(DomainError):
    code = "IDEMPOTENCY_KEY_IN_FLIGHT"
    status = 409
    title = "A request with this Idempotency-Key is still being processed"
    retryable = True


class ServiceUnavailable(DomainError):
    code = "UNAVAILABLE"
    status = 503
    title = "Temporarily unavailable"
    retryable = True
