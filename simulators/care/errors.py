"""The care BPO's refusals, each with a stable code the MVNO can branch on."""

from __future__ import annotations

from simulators.core.problems import Conflict, DomainError, NotFound, Unprocessable


class TicketNotFound(NotFound):
    code = "TROUBLE_TICKET_NOT_FOUND"
    title = "No such trouble ticket"


class InvalidStatusTransition(Conflict):
    code = "INVALID_STATUS_TRANSITION"
    title = "The ticket's status does not allow that change"


class TicketFinal(Conflict):
    code = "TICKET_FINAL"
    title = "The ticket is closed, cancelled or rejected"


class NotAtL3(Conflict):
    code = "TICKET_NOT_AT_L3"
    title = "Only an L3 ticket is escalated to the network"


class NoSubscription(Unprocessable):
    code = "NO_SUBSCRIPTION"
    title = "The ticket names no MVNE subscription"


class SubscriptionUnknownAtMvne(Unprocessable):
    code = "SUBSCRIPTION_UNKNOWN_AT_MVNE"
    title = "The MVNE knows no such subscription of this partner"


class MvneUnavailable(DomainError):
    """The MVNE did not answer as its contract says; nothing was recorded on the ticket."""

    code = "MVNE_UNAVAILABLE"
    status = 502
    title = "The MVNE did not answer"
    retryable = True


class NetworkTicketRefused(Unprocessable):
    code = "NETWORK_TICKET_REFUSED"
    title = "The MVNE or the MNO refused the network ticket"
