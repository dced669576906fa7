"""Billing's partner-visible refusals, each with a stable code."""

from __future__ import annotations

from simulators.core.problems import Conflict, DomainError, NotFound, Unprocessable


class AccountNotFound(NotFound):
    code = "BILLING_ACCOUNT_NOT_FOUND"
    title = "No such billing account for this partner"


class BillNotFound(NotFound):
    code = "CUSTOMER_BILL_NOT_FOUND"
    title = "No such bill for this partner"


class BillRunNotFound(NotFound):
    code = "BILL_RUN_NOT_FOUND"
    title = "No such bill run for this partner"


class DisputeNotFound(NotFound):
    code = "DISPUTE_NOT_FOUND"
    title = "No such dispute for this partner"


class AccountExists(Conflict):
    code = "ACCOUNT_EXISTS"
    title = "The subscription already has an open billing account"


class AccountNotActive(Conflict):
    code = "ACCOUNT_NOT_ACTIVE"
    title = "The billing account is not active"


class BillNotPayable(Conflict):
    code = "BILL_NOT_PAYABLE"
    title = "Only a sent or partly paid bill takes payments"


class BillNotDisputable(Conflict):
    code = "BILL_NOT_DISPUTABLE"
    title = "Only an issued bill (sent, partly paid or settled) can be disputed"


class DisputeExists(Conflict):
    code = "DISPUTE_EXISTS"
    title = "This bill line already has an open dispute"


class LineAlreadyCredited(Conflict):
    code = "LINE_ALREADY_CREDITED"
    title = "Earlier disputes of this bill line credited all of it"


class DisputeUnowned(Conflict):
    code = "DISPUTE_UNOWNED"
    title = "Nobody owns this dispute yet: assign an owner first"


class InvalidTransition(Conflict):
    code = "INVALID_TRANSITION"
    title = "Not possible in the dispute's current state"


class InvalidAmount(Unprocessable):
    code = "INVALID_AMOUNT"
    title = "The amount must be positive with at most two decimals"


class CurrencyMismatch(Unprocessable):
    code = "CURRENCY_MISMATCH"
    title = "The amount is not in the account's currency"


class Overpayment(Unprocessable):
    code = "OVERPAYMENT"
    title = "The payment is more than the bill still owes"


class PaymentReferenceReused(Unprocessable):
    code = "PAYMENT_REFERENCE_REUSED"
    title = "This payment reference was already recorded for another bill or amount"


class BillLineNotFound(Unprocessable):
    code = "BILL_LINE_NOT_FOUND"
    title = "The bill has no such disputable line"


class AdjustmentTooLarge(Unprocessable):
    code = "ADJUSTMENT_TOO_LARGE"
    title = "An adjustment may credit at most the disputed line"


class InvalidLadder(Unprocessable):
    code = "INVALID_LADDER"
    title = "The dunning ladder's days must not fall from one step to the next"


class MvneUnreachable(DomainError):
    code = "MVNE_UNREACHABLE"
    status = 503
    title = "The MVNE did not answer"
    retryable = True


class LedgerEntryNotFound(NotFound):
    code = "LEDGER_ENTRY_NOT_FOUND"
    title = "No such ledger entry for this partner"


class CreditLimitExceeded(Unprocessable):
    code = "CREDIT_LIMIT_EXCEEDED"
    title = "The charge would take the account over its credit limit"
