"""The payment gateway's refusals, each with a stable code the merchant can branch on."""

from __future__ import annotations

from simulators.core.problems import Conflict, NotFound, Unprocessable


class CardDataNotAccepted(Unprocessable):
    # PCI DSS: the gateway takes tokens only. The detail names where, never the value.
    code = "CARD_DATA_NOT_ACCEPTED"
    title = "Card numbers and card verification values are not accepted; send a token"


class UnsupportedCurrency(Unprocessable):
    code = "UNSUPPORTED_CURRENCY"
    title = "The gateway does not settle in this currency"


class AmountNotExact(Unprocessable):
    code = "AMOUNT_NOT_EXACT"
    title = "The amount has more decimal places than its currency"


class AmountNotPositive(Unprocessable):
    code = "AMOUNT_NOT_POSITIVE"
    title = "The amount must be more than zero"


class CurrencyMismatch(Unprocessable):
    code = "CURRENCY_MISMATCH"
    title = "The amount is not in the payment's currency"


class UnknownPaymentMethod(Unprocessable):
    code = "UNKNOWN_PAYMENT_METHOD"
    title = "The body names a payment method this client does not have"


class UnknownPayment(Unprocessable):
    code = "UNKNOWN_PAYMENT"
    title = "The body names a payment this client does not have"


class HardDeclineNotRetryable(Unprocessable):
    code = "HARD_DECLINE_NOT_RETRYABLE"
    title = "The issuer hard-declined this card; it must not be retried"


class PaymentMethodNotFound(NotFound):
    code = "PAYMENT_METHOD_NOT_FOUND"
    title = "No such payment method"


class PaymentNotFound(NotFound):
    code = "PAYMENT_NOT_FOUND"
    title = "No such payment"


class RefundNotFound(NotFound):
    code = "REFUND_NOT_FOUND"
    title = "No such refund"


class PaymentStateConflict(Conflict):
    """An operation the payment's status does not allow (out of order)."""


class PaymentVoided(PaymentStateConflict):
    code = "PAYMENT_VOIDED"
    title = "The payment was voided"


class PaymentAlreadyCaptured(PaymentStateConflict):
    code = "PAYMENT_ALREADY_CAPTURED"
    title = "The payment was already captured"


class PaymentNotAuthorized(PaymentStateConflict):
    code = "PAYMENT_NOT_AUTHORIZED"
    title = "The payment holds no authorisation"


class PaymentNotCaptured(PaymentStateConflict):
    code = "PAYMENT_NOT_CAPTURED"
    title = "The payment was not captured"


class CaptureExceedsAuthorized(PaymentStateConflict):
    code = "CAPTURE_EXCEEDS_AUTHORIZED"
    title = "The capture is larger than the authorisation"


class RefundExceedsCaptured(PaymentStateConflict):
    code = "REFUND_EXCEEDS_CAPTURED"
    title = "The refund is larger than what was captured and not yet refunded"
