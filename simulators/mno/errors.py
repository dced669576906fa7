"""The host network's refusals, each with a stable code the MVNE can branch on."""

from __future__ import annotations

from simulators.core import camara
from simulators.core.problems import (
    BadRequest,
    Conflict,
    DomainError,
    NotFound,
    Unprocessable,
)


class InvalidServiceCharacteristic(BadRequest):
    code = "INVALID_SERVICE_CHARACTERISTIC"
    title = "A service characteristic has a value the network cannot accept"


class MissingServiceCharacteristic(BadRequest):
    code = "MISSING_SERVICE_CHARACTERISTIC"
    title = "A service characteristic the action needs is missing"


class DuplicateOrderItemId(Unprocessable):
    # 422, not 400: the contract cannot express unique item ids, so the body is schema-valid.
    code = "DUPLICATE_ORDER_ITEM_ID"
    title = "Two items of the order carry the same id"


class UnexpectedServiceId(BadRequest):
    code = "UNEXPECTED_SERVICE_ID"
    title = "The network assigns the id of a service it adds"


class MissingServiceId(BadRequest):
    code = "MISSING_SERVICE_ID"
    title = "A modify or delete item must name the service"


class UnknownService(Unprocessable):
    code = "UNKNOWN_SERVICE"
    title = "An order item names a service this client does not have"


class ServiceTerminated(Conflict):
    code = "SERVICE_TERMINATED"
    title = "The service is terminated"


class ServiceNotActive(Conflict):
    code = "SERVICE_NOT_ACTIVE"
    title = "The service is not active on the network"


class ExternalIdInUse(Conflict):
    code = "EXTERNAL_ID_IN_USE"
    title = "This externalId was already used for a different order"


class ServiceOrderNotFound(NotFound):
    code = "SERVICE_ORDER_NOT_FOUND"
    title = "No such service order"


class ServiceNotFound(NotFound):
    code = "SERVICE_NOT_FOUND"
    title = "No such service"


class UsageNotFound(NotFound):
    code = "USAGE_NOT_FOUND"
    title = "No such usage record"


class ChargingUnavailable(DomainError):
    """Real-time charging (the MVNE) did not answer as its contract says; usage stays received."""

    code = "CHARGING_UNAVAILABLE"
    status = 502
    title = "Real-time charging is unavailable"
    retryable = True


# Why an order item failed, as the client reads it in the order's errorMessage: stable codes,
# no vendor internals, and never whose service holds a contested identifier (it may be
# another client's).
ITEM_FAILURE_REASONS = {
    "IMSI_IN_USE": "The IMSI is already provisioned on another service",
    "MSISDN_IN_USE": "The MSISDN is already in use on another service",
    "ICCID_IN_USE": "The ICCID is already provisioned on another service",
    "SERVICE_TERMINATED": "The service was terminated before this item could be applied",
    "SERVICE_NOT_FOUND": "The service no longer exists on the network",
    "HLR_REJECTED": "The HLR/HSS rejected the subscriber record",
}
ITEM_FAILED = "ITEM_FAILED"


def item_failure_reason(code: str | None) -> str:
    return ITEM_FAILURE_REASONS.get(code or ITEM_FAILED, "The network could not apply this item")


class TroubleTicketNotFound(NotFound):
    code = "TROUBLE_TICKET_NOT_FOUND"
    title = "No such trouble ticket"


class UserNotAuthenticatedByMobileNetwork(camara.PermissionDenied):
    """Number Verification answers only for a subscriber the network authenticated (a
    three-legged token); a client credentials token identifies no one."""

    code = "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    title = "Client must authenticate via the mobile network to use this service"
