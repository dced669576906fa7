"""Settlement golden tests: the fixtures in tests/mno/golden/ hold an agreement, a line,
usage events and what happens to them, and the ledger entries, statements and invoices
that must come out, with the arithmetic written beside them so a reader can check it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from simulators.core.clock import isoformat, parse_iso
from simulators.core.problems import DomainError
from simulators.core.runtime import Runtime
from simulators.core.tenancy import MVNE_PLATFORM
from simulators.mno import (
    agreements,
    disputes,
    ledger,
    model,
    partners,
    rating,
    reconciliation,
    settlement,
)

GOLDEN = Path(__file__).parent / "golden"
FIXTURES = sorted(path.stem for path in GOLDEN.glob("*.yaml"))


class Golden:
    """Plays one fixture against the store, on the simulated clock."""

    def __init__(self, runtime: Runtime, fixture: dict[str, Any]) -> None:
        self.runtime = runtime
        self.fixture = fixture
        self.partner_id = fixture["partner"]["id"]
        self.service_id = ""
        self.usage_ids: dict[str, str] = {}

    def at(self, moment: str) -> float:
        target = parse_iso(moment)
        now = self.runtime.clock.now()
        if target > now:
            self.runtime.advance(target - now)
        return target

    def set_up(self) -> None:
        first, *later = self.fixture["agreements"]
        now = self.runtime.clock.now()
        with self.runtime.store.write() as conn:
            partner, _key = partners.register(
                conn,
                secret_key=self.runtime.settings.secret_key,
                partner_id=self.partner_id,
                name=self.fixture["partner"]["name"],
                imsi_prefixes=[self.fixture["partner"]["imsiPrefix"]],
                mvne_partner_id=None,
                now=now,
            )
            agreements.add_version(
                conn,
                partner_id=self.partner_id,
                agreement_id=partner.agreement_id,
                effective_from=parse_iso(first["effectiveFrom"]),
                terms=first["terms"],
                now=now,
                actor="golden",
                correlation_id=None,
                allow_past=True,
            )
        line = self.fixture["line"]
        activated = self.at(line["activatedAt"])
        with self.runtime.store.write() as conn:
            order, _ = model.create_service_order(
                conn,
                self.runtime.tasks,
                client_id=MVNE_PLATFORM,
                external_id="golden-line",
                items=[
                    {
                        "id": "1",
                        "action": "add",
                        "service": {
                            "serviceCharacteristic": [
                                {"name": "IMSI", "value": line["imsi"]},
                                {"name": "MSISDN", "value": line["msisdn"]},
                                {"name": "ICCID", "value": line["iccid"]},
                            ]
                        },
                    }
                ],
                now=activated,
                correlation_id=None,
            )
        self.runtime.advance(5)
        with self.runtime.store.read() as conn:
            done = model.get_service_order(conn, MVNE_PLATFORM, order.id)
        assert done.state == model.COMPLETED
        self.service_id = str(done.items[0].service_id)
        for version in later:
            self.at(version["addedAt"])
            with self.runtime.store.write() as conn:
                self.add_version(conn, version)

    def add_version(self, conn: Any, version: dict[str, Any]) -> None:
        terms = version.get("terms") or self.fixture["agreements"][0]["terms"]
        agreements.add_version(
            conn,
            partner_id=self.partner_id,
            agreement_id=f"wa-{self.partner_id}",
            effective_from=parse_iso(version["effectiveFrom"]),
            terms=terms,
            now=self.runtime.clock.now(conn),
            actor="golden",
            correlation_id=None,
        )

    def record(self, alias: str) -> rating.NetworkUsage:
        event = self.fixture["events"][alias]
        return rating.NetworkUsage(
            network_event_id=event["networkEventId"],
            partner_id=self.partner_id,
            service_id=self.service_id,
            msisdn=self.fixture["line"]["msisdn"],
            usage_type=event["usageType"],
            event_time=parse_iso(event["at"]),
            quantity=int(event["quantity"]),
            unit=agreements.RATED_UNITS[event["usageType"]],
        )

    def play(self, step: dict[str, Any]) -> None:
        now = self.at(step["at"])
        refused = step.get("refused")
        try:
            with self.runtime.store.write() as conn:
                self.act(conn, step, now)
        except DomainError as error:
            assert refused == error.code, f"{step}: refused with {error.code}: {error.detail}"
            return
        assert refused is None, f"{step} was not refused"

    def act(self, conn: Any, step: dict[str, Any], now: float) -> None:
        if "deliver" in step:
            records = [self.record(alias) for alias in step["deliver"]]
            outcome = rating.ingest(conn, records, now=now, tasks=self.runtime.tasks)
            for alias, usage_id in zip(
                dict.fromkeys(step["deliver"]), outcome.usage_ids, strict=True
            ):
                self.usage_ids[alias] = usage_id
        if "close" in step:
            settlement.close_period(
                self.runtime,
                conn,
                partner_id=self.partner_id,
                period_id=step["close"],
                now=now,
                actor="mno-settlement-analyst",
                correlation_id=None,
            )
        if "dispute" in step:
            claim = step["dispute"]
            item: dict[str, Any] = {"id": self.usage_ids[claim["usage"]]}
            if "claimedQuantity" in claim:
                item["claimedQuantity"] = claim["claimedQuantity"]
            dispute = disputes.create_dispute(
                conn, partner_id=self.partner_id, reason="golden", items=[item], now=now
            )
            if step.get("resolve"):
                disputes.resolve_dispute(
                    self.runtime,
                    conn,
                    dispute_id=dispute.id,
                    accept=step["resolve"] == "accept",
                    note=None,
                    now=now,
                    actor="mno-settlement-approver",
                    correlation_id=None,
                )
        if "addVersion" in step:
            self.add_version(conn, step["addVersion"])


def _load(name: str) -> dict[str, Any]:
    with (GOLDEN / f"{name}.yaml").open() as handle:
        fixture: dict[str, Any] = yaml.safe_load(handle)
    return fixture


@pytest.mark.parametrize("name", FIXTURES)
def test_golden(runtime: Runtime, name: str) -> None:
    fixture = _load(name)
    golden = Golden(runtime, fixture)
    golden.set_up()
    for step in fixture["steps"]:
        golden.play(step)
    expected = fixture["expected"]

    with runtime.store.read() as conn:
        _, entries = ledger.list_entries(conn, golden.partner_id, limit=1000)
        duplicates = conn.execute(
            select(func.coalesce(func.sum(rating.usage_days.c.duplicates), 0)).where(
                rating.usage_days.c.partner_id == golden.partner_id
            )
        ).scalar_one()
        statements = {
            period: settlement.get_statement(
                conn, golden.partner_id, f"st-{golden.partner_id}-{period}"
            )
            for period in expected["statements"]
        }
        invoices = {
            row.period_id: row
            for row in settlement.list_invoices(
                conn, golden.partner_id, status=None, offset=0, limit=100
            )[1]
        }

    assert duplicates == expected["duplicatesDropped"]
    assert [_entry(entry, entries, golden.usage_ids) for entry in entries] == [
        _expected_entry(want, golden.usage_ids) for want in expected["ledger"]
    ]
    for period, want in expected["statements"].items():
        statement = statements[period]
        assert [_line(line) for line in statement.lines] == want["lines"], period
        assert agreements.cents_text(int(statement.total_cents)) == want["total"], period
    assert {
        period: {
            "number": row.number,
            "amount": agreements.cents_text(int(row.amount_cents)),
            "dueDate": isoformat(row.due_at),
        }
        for period, row in invoices.items()
    } == expected["invoices"]
    # The three views of the money agree: ledger, statements and invoices reconcile clean.
    with runtime.store.write() as conn:
        report = reconciliation.run(
            conn,
            partner_id=golden.partner_id,
            report_type="settlement",
            period_id=None,
            view={},
            now=runtime.clock.now(conn),
            requested_by="golden",
        )
    assert report.breaks == [] and report.compared["periods"] == len(expected["statements"])


def _entry(row: Any, entries: list[Any], usage_ids: dict[str, str]) -> dict[str, Any]:
    aliases = {usage_id: alias for alias, usage_id in usage_ids.items()}
    found: dict[str, Any] = {
        "kind": row.kind,
        "entryType": row.entry_type,
        "period": row.period_id,
        "servicePeriod": row.service_period,
        "amount": agreements.micros_text(int(row.amount_micros)),
        "version": row.agreement_version,
    }
    if row.kind == ledger.USAGE:
        original = (
            row
            if row.corrects_id is None
            else next(entry for entry in entries if entry.id == row.corrects_id)
        )
        found["usage"] = aliases[original.idempotency_key]
        found["quantity"] = int(row.quantity)
    if row.corrects_id is not None:
        found["corrects"] = next(
            index for index, entry in enumerate(entries, 1) if entry.id == row.corrects_id
        )
    if row.late:
        found["late"] = True
    return found


def _expected_entry(want: dict[str, Any], usage_ids: dict[str, str]) -> dict[str, Any]:
    return dict(want)


def _line(line: dict[str, Any]) -> dict[str, Any]:
    found = {
        "kind": line["kind"],
        "servicePeriod": line["servicePeriod"],
        "entryType": line["entryType"],
        "amount": agreements.cents_text(int(line["amountCents"])),
    }
    if "usageType" in line:
        found = {
            "kind": line["kind"],
            "usageType": line["usageType"],
            **{k: v for k, v in found.items() if k != "kind"},
        }
    return found
