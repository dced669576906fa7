"""The MVNE's partner-visible refusals, each with a stable code."""

from __future__ import annotations

from simulators.core.problems import BadRequest, Conflict, DomainError, NotFound, Unprocessable
from simulators.core.simfile import SimFileRejection


class InvalidIccid(BadRequest):
    code = "INVALID_ICCID"
    title = "The ICCID is not a valid E.118 number"


class IccidUnmapped(DomainError):
    code = "ICCID_UNMAPPED"
    status = 422
    title = "The ICCID is not in this partner's SIM pool"


class DuplicateIccid(DomainError):
    code = "DUPLICATE_ICCID_IN_ORDER"
    status = 422
    title = "The same ICCID appears twice in one order"


class SimAlreadyActive(Conflict):
    code = "SIM_ALREADY_ACTIVE"
    title = "The SIM is already active"


class SimNotAvailable(Conflict):
    code = "SIM_NOT_AVAILABLE"
    title = "The SIM is reserved by another order or no longer usable"


class OfferingNotInAgreement(DomainError):
    code = "OFFERING_NOT_IN_AGREEMENT"
    status = 403
    title = "The partner's agreement does not include this offering"


class MarketNotInAgreement(DomainError):
    code = "MARKET_NOT_IN_AGREEMENT"
    status = 403
    title = "The partner's agreement does not allow this offering in this market"


class DuplicateOrderItemId(DomainError):
    code = "DUPLICATE_ORDER_ITEM_ID"
    status = 422
    title = "Two items of one order share an id"


class ExternalIdReused(DomainError):
    code = "EXTERNAL_ID_REUSED"
    status = 422
    title = "This externalId already names a different order"


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"
    title = "No such order"


class ProductNotFound(NotFound):
    code = "PRODUCT_NOT_FOUND"
    title = "No such subscription"


class OfferingNotFound(NotFound):
    code = "OFFERING_NOT_FOUND"
    title = "No such offering in this partner's catalog"


class SimNotFound(NotFound):
    code = "SIM_NOT_FOUND"
    title = "No such SIM in this partner's pool"


class BucketNotFound(NotFound):
    code = "BUCKET_NOT_FOUND"
    title = "No such balance"


class TopupNotFound(NotFound):
    code = "TOPUP_NOT_FOUND"
    title = "No such top-up"


class UsageNotFound(NotFound):
    code = "USAGE_NOT_FOUND"
    title = "No such usage record"


class SubscriberNotFound(NotFound):
    code = "IDENTIFIER_NOT_FOUND"
    title = "No live subscription has this MSISDN"


class InvalidTransition(Conflict):
    code = "INVALID_TRANSITION"
    title = "The subscription cannot move to that status from its current one"


class ProductTerminated(Conflict):
    code = "PRODUCT_TERMINATED"
    title = "The subscription is terminated"


class CurrencyMismatch(DomainError):
    code = "CURRENCY_MISMATCH"
    status = 422
    title = "The amount's currency is not the balance's currency"


class InvalidAmount(Unprocessable):
    # 422, not 400: how many decimals an amount may carry is its currency's (ISO 4217
    # minor unit), which the contract's `number` cannot say.
    code = "INVALID_AMOUNT"
    title = "The amount must be positive with at most two decimals"


class PartnerExists(Conflict):
    code = "PARTNER_EXISTS"
    title = "A partner with this id already exists"


class PartnerTerminated(Conflict):
    code = "PARTNER_TERMINATED"
    title = "The partner is terminated"


class MsisdnRangeExhausted(DomainError):
    code = "MSISDN_RANGE_EXHAUSTED"
    status = 409
    title = "No free number is left in the market's fictitious range"


class DiagnosticScopeMissing(DomainError):
    code = "DIAGNOSTIC_SCOPE_MISSING"
    status = 403
    title = "The care-agent credential lacks the diagnostic scope"


class NetworkTicketNotFound(NotFound):
    code = "NETWORK_TICKET_NOT_FOUND"
    title = "No such network ticket"


class NetworkTicketUnavailable(DomainError):
    """The MNO did not take the ticket (no answer, 5xx, off contract); nothing was stored."""

    code = "NETWORK_TICKET_UNAVAILABLE"
    status = 502
    title = "The host network did not take the ticket"
    retryable = True


class NetworkTicketRefused(Unprocessable):
    code = "NETWORK_TICKET_REFUSED"
    title = "The host network refused the ticket (e.g. its externalId names another ticket)"


class IccidBelongsToOtherAccount(DomainError):
    code = "ICCID_BELONGS_TO_OTHER_ACCOUNT"
    status = 422
    title = "The SIM is mapped to another subscriber account than the order names"


# --- SIM batches and the ICCID mapping handoff -------------------------------------------


class CustomerMismatch(DomainError):
    code = "CUSTOMER_MISMATCH"
    status = 403
    title = "The vendor file's Customer is not the calling partner"


class BatchNumberReused(Conflict):
    code = "BATCH_NUMBER_REUSED"
    title = "This batch number was loaded from a different file"


class IccidInUse(SimFileRejection):
    code = "ICCID_IN_USE"
    title = "An ICCID or IMSI of the file is already in the MVNE's inventory"


class MatchingIdInUse(SimFileRejection):
    code = "MATCHING_ID_IN_USE"
    title = "An eSIM matching ID of the file already names another profile"


class BatchNotFound(NotFound):
    code = "BATCH_NOT_FOUND"
    title = "No such SIM batch for this partner"


class IccidNotInInventory(NotFound):
    code = "ICCID_NOT_IN_INVENTORY"
    title = "No SIM with this ICCID in this partner's inventory"


class IccidNotMapped(NotFound):
    code = "ICCID_NOT_MAPPED"
    title = "This SIM is not mapped to any account"


class IccidMappedToOtherAccount(Conflict):
    code = "ICCID_MAPPED_TO_OTHER_ACCOUNT"
    title = "This SIM is already mapped to another account"
