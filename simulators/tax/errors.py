"""The tax engine's refusals, each with a stable code billing can branch on and the field
that caused it."""

from __future__ import annotations

from simulators.core.problems import NotFound, Unprocessable


class PoBoxNotPrimaryUse(Unprocessable):
    # Telecom taxes follow the place of primary use (US Mobile Telecommunications Sourcing
    # Act, 4 U.S.C. 116-126): a residential or business street address, never a mailbox.
    code = "PO_BOX_NOT_PRIMARY_USE"
    title = "A P.O. Box is not a place of primary use"


class CountryRequired(Unprocessable):
    code = "COUNTRY_REQUIRED"
    title = "The place of primary use has no country"


class UnknownTransactionService(Unprocessable):
    code = "UNKNOWN_TRANSACTION_SERVICE"
    title = "The engine knows no such transaction/service pair"


class DuplicateLineId(Unprocessable):
    # 422, not 400: JSON Schema cannot say "lineId unique within lines".
    code = "DUPLICATE_LINE_ID"
    title = "Two invoice lines carry the same lineId"


class JurisdictionNotFound(Unprocessable):
    code = "JURISDICTION_NOT_FOUND"
    title = "The jurisdiction table does not know this address"


class QuoteNotFound(NotFound):
    code = "QUOTE_NOT_FOUND"
    title = "No such tax quote"
