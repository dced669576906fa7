"""The host network's refusals, each with a stable code the MVNE can branch on."""

from __future__ import annotations

from simulators.core import camara
from simulators.core.problems import (
    BadRequest,
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
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
    "ACTIVATIONS_SUSPENDED": "New activations are suspended for this partner (unpaid invoice)",
}
ITEM_FAILED = "ITEM_FAILED"


def item_failure_reason(code: str | None) -> str:
    return ITEM_FAILURE_REASONS.get(code or ITEM_FAILED, "The network could not apply this item")


class TroubleTicketNotFound(NotFound):
    code = "TROUBLE_TICKET_NOT_FOUND"
    title = "No such trouble ticket"


# --- wholesale and settlement ---------------------------------------------------------------


class WholesalePartnerNotFound(NotFound):
    code = "WHOLESALE_PARTNER_NOT_FOUND"
    title = "No such wholesale partner"


class WholesalePartnerExists(Conflict):
    code = "WHOLESALE_PARTNER_EXISTS"
    title = "This wholesale partner exists"


class ImsiRangeTaken(Conflict):
    code = "IMSI_RANGE_TAKEN"
    title = "The IMSI block belongs to another partner"


class InvalidAgreementTerms(Unprocessable):
    code = "INVALID_AGREEMENT_TERMS"
    title = "The agreement terms are not consistent"


class AgreementBackdated(Unprocessable):
    # A version taking effect in the past would change how rated events are rated.
    code = "AGREEMENT_VERSION_BACKDATED"
    title = "An agreement version can only take effect from now on"


class AgreementNotFound(NotFound):
    code = "AGREEMENT_NOT_FOUND"
    title = "No such agreement version"


class LedgerEntryNotFound(NotFound):
    code = "LEDGER_ENTRY_NOT_FOUND"
    title = "No such ledger entry"


class EntryNotReversible(Conflict):
    code = "ENTRY_NOT_REVERSIBLE"
    title = "The ledger entry cannot be reversed"


class UnitNotRated(Unprocessable):
    code = "UNIT_NOT_RATED"
    title = "The usage is not in the unit its type is rated in"


class UsageSummaryNotFound(NotFound):
    code = "USAGE_SUMMARY_NOT_FOUND"
    title = "No such usage summary"


class NoAgreementInForce(Unprocessable):
    code = "NO_AGREEMENT_IN_FORCE"
    title = "No agreement version is in force for the partner at that time"


class StatementNotFound(NotFound):
    code = "STATEMENT_NOT_FOUND"
    title = "No such settlement statement"


class InvoiceNotFound(NotFound):
    code = "INVOICE_NOT_FOUND"
    title = "No such wholesale invoice"


class PeriodNotEnded(Conflict):
    code = "PERIOD_NOT_ENDED"
    title = "The settlement period has not ended yet"


class EarlierPeriodOpen(Conflict):
    code = "EARLIER_PERIOD_OPEN"
    title = "An earlier settlement period is still open; periods close in order"


class PeriodClosed(Conflict):
    code = "PERIOD_CLOSED"
    title = "The settlement period is closed"


class CurrencyMismatch(Unprocessable):
    code = "CURRENCY_MISMATCH"
    title = "The amount is not in the agreement's currency"


class InvalidAmount(Unprocessable):
    code = "INVALID_AMOUNT"
    title = "The amount cannot be used here"


class PaymentReferenceUsed(Conflict):
    code = "PAYMENT_REFERENCE_USED"
    title = "A payment with this reference was already recorded"


class InvoiceNotPayable(Conflict):
    code = "INVOICE_NOT_PAYABLE"
    title = "The invoice has nothing left to pay"


class PaymentExceedsDue(Unprocessable):
    code = "PAYMENT_EXCEEDS_DUE"
    title = "The payment is more than the invoice has due"


class InvalidOutage(Unprocessable):
    code = "INVALID_OUTAGE"
    title = "The outage cannot be recorded"


class AdjustmentNotFound(NotFound):
    code = "ADJUSTMENT_NOT_FOUND"
    title = "No such manual adjustment"


class AdjustmentDecided(Conflict):
    code = "ADJUSTMENT_ALREADY_DECIDED"
    title = "The adjustment was already approved or rejected"


class MakerCannotCheck(PermissionDenied):
    code = "MAKER_CANNOT_CHECK"
    title = "The person who proposed an adjustment cannot approve or reject it"


class DisputeNotFound(NotFound):
    code = "DISPUTE_NOT_FOUND"
    title = "No such usage dispute"


class DisputeWindowClosed(Unprocessable):
    code = "DISPUTE_WINDOW_CLOSED"
    title = "The agreement's dispute window for this usage has closed"


class UsageAlreadyDisputed(Conflict):
    code = "USAGE_ALREADY_DISPUTED"
    title = "The usage row is in another dispute, or was already credited"


class UnknownUsage(Unprocessable):
    code = "UNKNOWN_USAGE"
    title = "The dispute names a usage row the partner was not charged for"


class InvalidClaim(Unprocessable):
    code = "INVALID_CLAIM"
    title = "The claimed quantity is not below the charged one"


class DisputeResolved(Conflict):
    code = "DISPUTE_ALREADY_RESOLVED"
    title = "The dispute was already resolved"


class ReconciliationNotFound(NotFound):
    code = "RECONCILIATION_NOT_FOUND"
    title = "No such reconciliation run"


class PartnerViewUnavailable(DomainError):
    code = "PARTNER_VIEW_UNAVAILABLE"
    status = 502
    title = "The partner's own records could not be read from its platform"
    retryable = True


class UserNotAuthenticatedByMobileNetwork(camara.PermissionDenied):
    """Number Verification answers only for a subscriber the network authenticated (a
    three-legged token); a client credentials token identifies no one."""

    code = "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    title = "Client must authenticate via the mobile network to use this service"
