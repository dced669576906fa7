"""The MNO's wholesale events (TMF hub pattern), queued in the outbox with the change.

A wholesale partner subscribes at `/mno/v1/wholesale/hub`; its subscriptions are kept
under the wholesale partner's id, so each MVNO hears only about itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from simulators.core.clock import isoformat

from .agreements import micros_text

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

ROLE = "mno"
WHOLESALE_API = "wholesale"
USAGE_SUMMARY_CREATE = "UsageSummaryCreateEvent"
INVOICE_CREATE = "WholesaleInvoiceCreateEvent"
INVOICE_STATE_CHANGE = "WholesaleInvoiceStateChangeEvent"
DISPUTE_STATE_CHANGE = "UsageDisputeStateChangeEvent"
SUSPENSION_STATE_CHANGE = "ActivationSuspensionStateChangeEvent"
EVENT_TYPES = (
    USAGE_SUMMARY_CREATE,
    INVOICE_CREATE,
    INVOICE_STATE_CHANGE,
    DISPUTE_STATE_CHANGE,
    SUSPENSION_STATE_CHANGE,
)


def public_base(runtime: Runtime) -> str:
    return f"{runtime.settings.public_base_url}/{ROLE}"


def iso(epoch: float) -> str:
    return isoformat(epoch)


def money(micros: int, currency: str) -> dict[str, str]:
    """Exact decimal string, at least two decimals: `{"amount": "2.762", "units": "GBP"}`."""
    return {"amount": micros_text(micros), "units": currency}


def publish(
    runtime: Runtime,
    conn: Connection,
    *,
    partner_id: str,
    event_type: str,
    resource_name: str,
    resource: dict[str, Any],
    correlation_id: str | None,
    now: float,
) -> None:
    runtime.outbox.publish(
        conn,
        role=ROLE,
        api=WHOLESALE_API,
        partner_id=partner_id,
        event_type=event_type,
        resource_name=resource_name,
        resource=resource,
        correlation_id=correlation_id,
        now=now,
    )
