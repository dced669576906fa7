"""The fees a wholesale agreement charges per line: the activation fee when the network
creates a partner's line, the monthly per-SIM fee for each line live in a period."""

from __future__ import annotations

from sqlalchemy import Connection

from . import agreements, ledger, partners


def post_activation_fee(
    conn: Connection,
    *,
    partner_id: str,
    service_id: str,
    service_order_id: str,
    item_id: str,
    now: float,
    correlation_id: str | None,
) -> bool:
    """Charge the activation of one line, once per service order item; False when no
    agreement was in force (the order reconciliation lists such a line)."""
    version = agreements.in_force(conn, partner_id, now)
    if version is None:
        return False
    partner = partners.get(conn, partner_id)
    ledger.post(
        conn,
        [
            ledger.Entry(
                partner_id=partner_id,
                account_id=partner.account_id,
                kind=ledger.ACTIVATION_FEE,
                entry_type=ledger.ORIGINAL,
                source=ledger.SOURCE_NETWORK,
                event_time=now,
                amount_micros=version.activation_fee_micros,
                currency=version.currency,
                idempotency_key=activation_key(service_order_id, item_id),
                evidence_ref=service_order_id,
                agreement_id=version.agreement_id,
                agreement_version=version.version,
                service_id=service_id,
                memo=f"service order {service_order_id} item {item_id}",
                correlation_id=correlation_id,
            )
        ],
        now=now,
    )
    return True


def activation_key(service_order_id: str, item_id: str) -> str:
    return f"activation:{service_order_id}:{item_id}"


def monthly_fee_entry(
    *,
    partner: partners.WholesalePartner,
    version: agreements.AgreementVersion,
    period_id: str,
    service_id: str,
    event_time: float,
) -> ledger.Entry:
    return ledger.Entry(
        partner_id=partner.id,
        account_id=partner.account_id,
        kind=ledger.MONTHLY_FEE,
        entry_type=ledger.ORIGINAL,
        source=ledger.SOURCE_SETTLEMENT,
        event_time=event_time,
        amount_micros=version.monthly_sim_fee_micros,
        currency=version.currency,
        idempotency_key=f"monthly:{partner.id}:{period_id}:{service_id}",
        evidence_ref=service_id,
        agreement_id=version.agreement_id,
        agreement_version=version.version,
        service_id=service_id,
    )
