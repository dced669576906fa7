"""Billing's HTTP surface: TMF666 accounts, TMF678 bills and the vendor's /v1 resources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, request
from sqlalchemy import Connection, select

from simulators.core.clock import isoformat
from simulators.core.contract import Operation
from simulators.core.http import (
    Authenticator,
    Reply,
    RequestContext,
    RoleApi,
    created,
    list_reply,
    paging,
)
from simulators.core.tenancy import Partner, authenticate

from . import errors, model, mvne, steps
from .views import (
    account_view,
    action_view,
    bill_view,
    dispute_view,
    ledger_view,
    payment_view,
    run_view,
)

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

# The MVNO partners are the MVNE's: billing accepts the keys they use there.
PARTNERS_OF = "mvne"


def mvno_partner(runtime: Runtime, conn: Connection, operation: Operation) -> Partner | None:
    if not operation.secured:
        return None
    return authenticate(conn, PARTNERS_OF, request.headers.get("X-API-Key"))


class BillingApi(RoleApi):
    def blueprint(
        self,
        runtime: Runtime,
        authenticator: Authenticator | None = None,
        prefix: str | None = None,
    ) -> Blueprint:
        return super().blueprint(runtime, authenticator or mvno_partner, prefix)


api = BillingApi("billing")


def _account_json(ctx: RequestContext, row: Any) -> dict[str, Any]:
    return account_view(row, ctx.base_url, model.receivable_minor(ctx.conn, row.id))


# --- billing accounts ----------------------------------------------------------------------------


@api.operation("createBillingAccount", write=True)
def create_billing_account(ctx: RequestContext) -> Reply:
    row = model.create_account(
        ctx.conn,
        partner_id=ctx.partner_id,
        body=ctx.body,
        now=ctx.now(),
        correlation_id=ctx.correlation_id,
    )
    steps.schedule(
        ctx.runtime,
        ctx.conn,
        steps.LINK_ACCOUNT,
        {"accountId": row.id},
        ctx.now(),
        ctx.correlation_id,
    )
    return created(_account_json(ctx, row))


@api.operation("listBillingAccounts")
def list_billing_accounts(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_accounts(
        ctx.conn,
        ctx.partner_id,
        state=ctx.params.get("state"),
        product_id=ctx.params.get("product.id"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [_account_json(ctx, row) for row in rows])


@api.operation("getBillingAccount")
def get_billing_account(ctx: RequestContext) -> Reply:
    return Reply(_account_json(ctx, model.get_account(ctx.conn, ctx.partner_id, ctx.params["id"])))


# --- bills and bill runs -------------------------------------------------------------------------


@api.operation("listCustomerBills")
def list_customer_bills(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_bills(
        ctx.conn,
        ctx.partner_id,
        account_id=ctx.params.get("billingAccount.id"),
        state=ctx.params.get("state"),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [bill_view(row, ctx.base_url) for row in rows])


@api.operation("getCustomerBill")
def get_customer_bill(ctx: RequestContext) -> Reply:
    return Reply(
        bill_view(model.get_bill(ctx.conn, ctx.partner_id, ctx.params["id"]), ctx.base_url)
    )


@api.operation("listBillRuns")
def list_bill_runs(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_runs(ctx.conn, ctx.partner_id, offset, limit)
    return list_reply(total, [run_view(row, ctx.base_url) for row in rows])


@api.operation("getBillRun")
def get_bill_run(ctx: RequestContext) -> Reply:
    return Reply(run_view(model.get_run(ctx.conn, ctx.partner_id, ctx.params["id"]), ctx.base_url))


# --- charges and payments ------------------------------------------------------------------------


@api.operation("createOneOffCharge", write=True)
def create_one_off_charge(ctx: RequestContext) -> Reply:
    row = model.post_one_off(
        ctx.conn, ctx.partner_id, ctx.body, now=ctx.now(), correlation_id=ctx.correlation_id
    )
    return created(ledger_view(row, ctx.base_url))


@api.operation("getLedgerEntry")
def get_ledger_entry(ctx: RequestContext) -> Reply:
    return Reply(
        ledger_view(model.get_entry(ctx.conn, ctx.partner_id, ctx.params["id"]), ctx.base_url)
    )


@api.operation("createPayment", write=True)
def create_payment(ctx: RequestContext) -> Reply:
    now = ctx.now()
    payment, restore = model.record_payment(
        ctx.conn,
        ctx.partner_id,
        ctx.body,
        now=now,
        correlation_id=ctx.correlation_id,
        restore_lost=ctx.data_fault("RESTORE_ORDER_LOST") is not None,
    )
    if restore is not None and not restore.lost:
        steps.order_mvne(
            ctx.runtime,
            ctx.conn,
            ctx.partner_id,
            restore.product_id,
            "active",
            restore.action_id,
            now,
            ctx.correlation_id,
        )
    return created(payment_view(payment, ctx.base_url))


@api.operation("listPayments")
def list_payments(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_payments(
        ctx.conn, ctx.partner_id, ctx.params.get("customerBill.id"), offset, limit
    )
    return list_reply(total, [payment_view(row, ctx.base_url) for row in rows])


# --- disputes ----------------------------------------------------------------------------------


def _dispute_json(ctx: RequestContext, row: Any) -> dict[str, Any]:
    return dispute_view(row, ctx.base_url, model.sla_breached(row, ctx.now()))


@api.operation("createDispute", write=True)
def create_dispute(ctx: RequestContext) -> Reply:
    row = model.create_dispute(
        ctx.conn, ctx.partner_id, ctx.body, now=ctx.now(), correlation_id=ctx.correlation_id
    )
    return created(_dispute_json(ctx, row))


@api.operation("listDisputes")
def list_disputes(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_disputes(
        ctx.conn,
        ctx.partner_id,
        unowned=ctx.params.get("unowned"),
        state=ctx.params.get("state"),
        breached=ctx.params.get("slaBreached"),
        bill_id=ctx.params.get("customerBill.id"),
        now=ctx.now(),
        offset=offset,
        limit=limit,
    )
    return list_reply(total, [_dispute_json(ctx, row) for row in rows])


@api.operation("getDispute")
def get_dispute(ctx: RequestContext) -> Reply:
    return Reply(_dispute_json(ctx, model.get_dispute(ctx.conn, ctx.partner_id, ctx.params["id"])))


@api.operation("updateDispute", write=True)
def update_dispute(ctx: RequestContext) -> Reply:
    row = model.update_dispute(
        ctx.conn,
        ctx.partner_id,
        ctx.params["id"],
        ctx.body,
        now=ctx.now(),
        correlation_id=ctx.correlation_id,
    )
    return Reply(_dispute_json(ctx, row))


# --- settings, dunning, reconciliation -----------------------------------------------------------


@api.operation("getBillingSettings")
def get_billing_settings(ctx: RequestContext) -> Reply:
    return Reply(model.get_settings(ctx.conn, ctx.partner_id))


@api.operation("updateBillingSettings", write=True)
def update_billing_settings(ctx: RequestContext) -> Reply:
    return Reply(model.put_settings(ctx.conn, ctx.partner_id, ctx.body))


@api.operation("listDunningActions")
def list_dunning_actions(ctx: RequestContext) -> Reply:
    offset, limit = paging(ctx)
    total, rows = model.list_actions(
        ctx.conn, ctx.partner_id, ctx.params.get("billingAccount.id"), offset, limit
    )
    return list_reply(total, [action_view(row, ctx.base_url) for row in rows])


@api.operation("getReconciliation")
def get_reconciliation(ctx: RequestContext) -> Reply:
    accounts = ctx.conn.execute(
        select(model.account_table)
        .where(
            model.account_table.c.partner_id == ctx.partner_id,
            model.account_table.c.state == model.ACTIVE,
        )
        .order_by(model.account_table.c.pk)
    ).all()
    statuses: dict[str, str] = {}
    if accounts:
        try:
            products = mvne.product_statuses(ctx.runtime, ctx.partner_id, ctx.correlation_id)
        except (mvne.MvneUnavailable, mvne.MvneRefused) as exc:
            raise errors.MvneUnreachable(
                f"The MVNE did not list the subscriptions: {exc}"
            ) from None
        statuses = {product_id: item["status"] for product_id, item in products.items()}
    items = model.reconcile(accounts, statuses)
    if ctx.params.get("breaksOnly"):
        items = [item for item in items if item["break"]]
    body = {
        "checkedDate": isoformat(ctx.now()),
        "accounts": len(accounts),
        "breaks": sum(1 for item in model.reconcile(accounts, statuses) if item["break"]),
        "items": [
            {
                "billingAccount": {
                    "id": item["account"].id,
                    "href": f"{ctx.base_url}/tmf-api/accountManagement/v4/billingAccount/"
                    f"{item['account'].id}",
                },
                "product": {"id": item["account"].product_id},
                "dunningStage": item["account"].dunning_stage,
                "expectedStatus": item["expected"],
                "mvneStatus": item["actual"],
                "break": item["break"],
            }
            for item in items
        ],
    }
    return Reply(body)
