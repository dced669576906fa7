"""Billing's work on the simulated clock: linking accounts, bill runs, dunning, MVNE orders.

Each step calls its peers (the MVNE, the tax engine) outside any transaction
and records what came back in short transactions of its own. A bill run
issues each account's bill in its own transaction under a unique (account,
period) constraint, so a run that dies between two accounts and runs again
issues every bill exactly once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from simulators.core.faults import Sample
from simulators.core.runtime import Runtime
from simulators.core.tasks import Task

from . import model, mvne, taxes
from .model import DAY_S

LINK_ACCOUNT = "billing.link_account"
BILL_RUN = "billing.bill_run"
DUNNING_STEP = "billing.dunning_step"
MVNE_ORDER = "billing.mvne_order"
# A bill run waits out a tax engine or MVNE outage for a long time before giving up.
BILL_RUN_ATTEMPTS = 20
# Bills issued per write transaction, and tax batches in flight at once.
CHUNK = 200
TAX_CONCURRENCY = 4
VERBS = {"suspended": "suspend", "terminated": "terminate", "active": "restore"}


def schedule(
    runtime: Runtime,
    conn: Any,
    kind: str,
    payload: dict[str, Any],
    due_at: float,
    correlation_id: str | None,
    max_attempts: int = 6,
) -> None:
    runtime.tasks.schedule(
        conn,
        role=model.ROLE,
        kind=kind,
        payload=payload,
        due_at=due_at,
        correlation_id=correlation_id,
        max_attempts=max_attempts,
    )


# --- accounts --------------------------------------------------------------------------------


def link_account(runtime: Runtime, task: Task) -> None:
    """Ask the MVNE whether the account's subscription exists for the partner."""
    account_id = task.payload["accountId"]
    with runtime.store.read() as conn:
        account = model.load_account(conn, account_id)
    refusal: str | None = None
    product: dict[str, Any] | None = None
    try:
        product = mvne.get_product(
            runtime, account.partner_id, account.product_id, task.correlation_id
        )
    except mvne.MvneRefused as refused:
        refusal = f"MVNE_REFUSED_{refused.code}"
    except mvne.MvneUnavailable:
        if not task.last_attempt:
            raise
        refusal = "MVNE_UNREACHABLE"
    now = runtime.clock.now()
    with runtime.store.write() as conn:
        account = model.link_account(
            conn,
            account_id,
            product=product,
            refusal=refusal,
            now=now,
            correlation_id=task.correlation_id,
        )
        if account.state == model.ACTIVE:
            ensure_cycle(runtime, conn, account.partner_id, account.bill_cycle_day, now)


def ensure_cycle(
    runtime: Runtime, conn: Any, partner_id: str, cycle_day: int, moment: float
) -> Any:
    """The bill run of this cycle day's current period, scheduled at its end once."""
    run, created = model.ensure_run(conn, partner_id, cycle_day, model.period_at(moment, cycle_day))
    if created:
        schedule(
            runtime, conn, BILL_RUN, {"runId": run.id}, run.period_end, None, BILL_RUN_ATTEMPTS
        )
    return run


# --- bill runs -------------------------------------------------------------------------------


def bill_run(runtime: Runtime, task: Task) -> None:
    run_bill_run(runtime, task.payload["runId"], task.correlation_id)


def run_bill_run(runtime: Runtime, run_id: str, correlation_id: str | None = None) -> Any:
    """Bill every account of the run not billed yet; safe to run again at any point."""
    now = runtime.clock.now()
    with runtime.store.write() as conn:
        run, accounts = model.start_run(conn, run_id, now)
        settings = model.get_settings(conn, run.partner_id)
    cid = correlation_id or f"billrun-{run.id}"
    if accounts:
        try:
            subscriptions, currencies = mvne.subscriptions(runtime, run.partner_id, cid)
        except mvne.MvneRefused as refused:
            # The MVNE will not list this partner's subscriptions at all (e.g. it was
            # terminated): every account is a failure of this run, none is dropped.
            subscriptions, currencies = {}, {}
            with runtime.store.write() as conn:
                for account in accounts:
                    model.record_run_failure(
                        conn,
                        run.id,
                        account.id,
                        "MVNE_REFUSED",
                        f"The MVNE answered {refused.code}",
                    )
            accounts = []
        usage: list[model.RatedUsage] = []
        usage_refused: str | None = None
        if any(account.rating_type == "postpaid" for account in accounts):
            try:
                usage = mvne.rated_usage(runtime, run.partner_id, cid)
            except mvne.MvneRefused as refused:
                usage_refused = refused.code
    if accounts:
        billable = []
        with runtime.store.write() as conn:
            for account in accounts:
                failure = _cannot_bill(account, subscriptions, currencies, usage_refused)
                if failure:
                    model.record_run_failure(conn, run.id, account.id, *failure)
                else:
                    billable.append(account)
            model.cycle_charges(
                conn, run, billable, subscriptions, usage, now=now, correlation_id=cid
            )
        with runtime.store.read() as conn:
            entries = model.entries_for(conn, [account.id for account in billable], run.period)
        _bill_accounts(runtime, run, billable, entries, settings, cid)
    with runtime.store.write() as conn:
        finished = model.finish_run(conn, run.id, runtime.clock.now())
        if model.has_active_accounts(conn, run.partner_id, run.bill_cycle_day):
            following = model.period_of_key(run.period).next
            ensure_cycle(runtime, conn, run.partner_id, run.bill_cycle_day, following.start)
    return finished


def _cannot_bill(
    account: Any,
    subscriptions: dict[str, model.SubscriptionFacts],
    currencies: dict[str, str],
    usage_refused: str | None,
) -> tuple[str, str] | None:
    if account.product_id not in subscriptions:
        return "PRODUCT_NOT_FOUND", f"The MVNE has no subscription {account.product_id}"
    currency = currencies.get(account.product_id)
    if currency and currency != account.currency:
        return (
            "CURRENCY_MISMATCH",
            f"The plan is priced in {currency}, the account in {account.currency}",
        )
    if usage_refused and account.rating_type == "postpaid":
        return "USAGE_UNAVAILABLE", f"The MVNE refused the rated usage ({usage_refused})"
    return None


def _bill_accounts(
    runtime: Runtime,
    run: Any,
    accounts: list[Any],
    entries: dict[str, list[Any]],
    settings: dict[str, Any],
    cid: str,
) -> None:
    """Compose, tax and issue the bills of a chunk of accounts at a time."""
    for start in range(0, len(accounts), CHUNK):
        pending = accounts[start : start + CHUNK]
        for _ in range(5):
            drafts, outage = _taxed_drafts(runtime, run, pending, entries, cid)
            with runtime.store.write() as conn:
                issued, moved = model.issue_bills(
                    conn,
                    run=run,
                    drafts=drafts,
                    payment_term_days=int(settings["paymentTermDays"]),
                    now=runtime.clock.now(),
                    correlation_id=cid,
                )
                first = model.LADDER[0]
                for bill in issued:
                    if bill.state == model.SENT:
                        due = bill.due_date + settings["dunningLadder"][first] * DAY_S
                        payload = {"billId": bill.bill_id, "step": first}
                        schedule(runtime, conn, DUNNING_STEP, payload, due, cid)
                if moved:
                    # Charges posted while these were composed: compose them again.
                    entries.update(model.entries_for(conn, [a.id for a in moved], run.period))
            if outage is not None:
                # What was quoted is issued; the rest waits for the step's next attempt.
                raise outage
            if not moved:
                break
            pending = moved
        else:
            raise RuntimeError(f"bill run {run.id}: charges kept moving under the bills")


def _taxed_drafts(
    runtime: Runtime,
    run: Any,
    accounts: list[Any],
    entries: dict[str, list[Any]],
    cid: str,
) -> tuple[list[model.Draft], taxes.TaxUnavailable | None]:
    """Compose the accounts' bills and have them taxed, up to a batch of quotes per call
    and several calls in flight at once (the tax engine is a remote service); the drafts
    that got an answer (or needed none), in account order, and the outage if one struck."""
    drafts = [
        model.Draft(
            account, model.bill_lines([model.charge_of(row) for row in entries[account.id]])
        )
        for account in accounts
    ]
    asks = [(n, request) for n, draft in enumerate(drafts) if (request := _ask(run, draft))]
    groups = taxes.in_batches([request for _, request in asks])
    unanswered: dict[int, taxes.TaxUnavailable] = {}

    def tax_batch(group: list[int]) -> None:
        try:
            answers = taxes.request_quotes(runtime, [asks[i][1] for i in group], cid)
        except taxes.TaxUnavailable as unavailable:
            unanswered.update((asks[i][0], unavailable) for i in group)
            return
        for i, answer in zip(group, answers, strict=True):
            _apply(drafts[asks[i][0]], answer)

    if len(groups) == 1:
        tax_batch(groups[0])
    elif groups:
        with ThreadPoolExecutor(max_workers=min(TAX_CONCURRENCY, len(groups))) as pool:
            for done in [pool.submit(tax_batch, group) for group in groups]:
                done.result()
    outage = next(iter(unanswered.values()), None)
    return [draft for n, draft in enumerate(drafts) if n not in unanswered], outage


def _ask(run: Any, draft: model.Draft) -> dict[str, Any] | None:
    """The quote request of a draft's taxable lines; None when it has nothing to tax."""
    account = draft.account
    taxable = model.taxable_lines(draft.lines)
    if not taxable:
        return None
    return taxes.quote_request(
        document_id=f"{account.id}:{run.period}",
        date=model.period_of_key(run.period).next.key,
        currency=account.currency,
        customer_type=account.customer_type,
        rating_type=account.rating_type,
        exemptions=[item["level"] for item in account.tax_exemption],
        address=dict(account.place),
        lines=taxable,
    )


def _apply(draft: model.Draft, answer: taxes.Quote | taxes.TaxRefused) -> None:
    """Tax the draft's lines in place with its quote, or hold it with the refusal."""
    if isinstance(answer, taxes.TaxRefused):
        draft.hold_reason = f"TAX_REFUSED: {answer.code}"
        return
    for line in draft.lines:
        line.taxes = list(answer.taxes.get(line.line_id, []))
    missing = model.missing_levels(draft.account, draft.lines)
    draft.quote_id = answer.quote_id
    draft.hold_reason = f"TAX_LEVEL_MISSING: {', '.join(missing)}" if missing else None


# --- dunning ---------------------------------------------------------------------------------


def dunning_step(runtime: Runtime, task: Task) -> None:
    bill_id, step = task.payload["billId"], task.payload["step"]
    with runtime.store.read() as conn:
        bill = model.load_bill(conn, bill_id)
        account = model.load_account(conn, bill.account_id)
    lost = step in model.STEP_ORDERS and _fault(runtime, account, step, "SUSPENSION_NOT_SENT")
    now = runtime.clock.now()
    with runtime.store.write() as conn:
        outcome = model.dunning_step(conn, bill_id, step, now, order_lost=lost)
        if outcome is None:
            return
        if outcome.next_step is not None and outcome.next_due is not None:
            schedule(
                runtime,
                conn,
                DUNNING_STEP,
                {"billId": bill_id, "step": outcome.next_step},
                outcome.next_due,
                task.correlation_id,
            )
        if outcome.order is not None and outcome.action_id is not None:
            order_mvne(
                runtime,
                conn,
                account.partner_id,
                outcome.product_id,
                outcome.order,
                outcome.action_id,
                now,
                task.correlation_id,
            )


def _fault(runtime: Runtime, account: Any, step: str, name: str) -> bool:
    """Whether a billing data fault rule fires on this dunning step (match on role billing,
    partner, and the fields billingAccount.id, product.id or step)."""
    sample = Sample(
        role=model.ROLE,
        partner=account.partner_id,
        fields={
            "billingaccount.id": (account.id,),
            "product.id": (account.product_id,),
            "step": (step,),
        },
    )
    decision = runtime.faults.decide(sample, runtime.clock.now, kinds=("data",))
    return decision.data_fault(name) is not None


def order_mvne(
    runtime: Runtime,
    conn: Any,
    partner_id: str,
    product_id: str,
    status: str,
    action_id: int,
    now: float,
    correlation_id: str | None,
) -> None:
    """Queue a subscription status order for the MVNE, sent once this transaction commits."""
    schedule(
        runtime,
        conn,
        MVNE_ORDER,
        {"partnerId": partner_id, "productId": product_id, "status": status, "actionId": action_id},
        now,
        correlation_id,
    )


def send_mvne_order(runtime: Runtime, task: Task) -> None:
    payload = task.payload
    verb = VERBS[payload["status"]]
    try:
        mvne.set_status(
            runtime,
            payload["partnerId"],
            payload["productId"],
            payload["status"],
            task.correlation_id,
        )
        outcome = f"{verb}Sent"
    except mvne.MvneRefused:
        outcome = f"{verb}Failed"
    except mvne.MvneUnavailable:
        if not task.last_attempt:
            raise
        outcome = f"{verb}Failed"
    with runtime.store.write() as conn:
        model.set_action_order(conn, int(payload["actionId"]), outcome)


def register(runtime: Runtime) -> None:
    runtime.tasks.register(LINK_ACCOUNT, link_account)
    runtime.tasks.register(BILL_RUN, bill_run)
    runtime.tasks.register(DUNNING_STEP, dunning_step)
    runtime.tasks.register(MVNE_ORDER, send_mvne_order)
