"""The host network (MNO) fake: service ordering, the HLR/HSS service inventory, usage and
its feed to real-time charging, wholesale settlement with the MVNOs it hosts, and the CAMARA
network APIs (SIM Swap, Number Verification, Device Roaming Status) with the authorization
server that issues their access tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulators.core.contract import load_contract
from simulators.core.http import RoleApi
from simulators.core.scenarios import ScenarioInvalid

from . import (
    admin,  # noqa: F401  (registers the admin traffic and generator operations)
    agreements,
    authorization,
    authorization_api,
    camara_api,
    partners,
    rating,
    settlement,
    summaries,
    usage,
    wholesale_api,  # noqa: F401  (registers the wholesale and settlement operations)
)
from .api import api
from .model import PROGRESS_SERVICE_ORDER, run_progress_step, seed_reference_data

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from simulators.core.runtime import Runtime

__all__ = ["EXTRA_APIS", "api", "install"]

# The MNO's APIs besides its TMF one, each under its own base path.
EXTRA_APIS: dict[str, RoleApi] = {
    authorization_api.PREFIX: authorization_api.api,
    **camara_api.NETWORK_APIS,
}


def _seed(runtime: Runtime, conn: Connection, seed: int) -> None:
    """The MVNE platform as the network's client, the CAMARA clients, the wholesale partners
    with their IMSI blocks, agreements and credentials, and the settlement staff."""
    seed_reference_data(runtime, conn, seed)
    authorization.seed_clients(runtime, conn, seed)
    partners.seed(runtime.settings.secret_key, conn, seed, runtime.clock.now(conn))


def install(runtime: Runtime) -> None:
    """Register the MNO's lifecycle steps and reference data with the running stack."""
    runtime.tasks.register(PROGRESS_SERVICE_ORDER, run_progress_step)
    runtime.tasks.register(rating.PUBLISH_SUMMARY, summaries.run_publish)
    runtime.tasks.register(settlement.INVOICE_DUE, settlement.run_invoice_due)
    runtime.tasks.register(usage.GENERATE, usage.run_generator)
    runtime.seeders["mno"] = _seed
    runtime.pack_data_loaders["agreementVersions"] = load_agreement_versions
    runtime.pack_data_loaders["usageGenerator"] = load_usage_generator


def load_agreement_versions(
    runtime: Runtime, conn: Any, items: list[dict[str, Any]], now: float, source: str
) -> None:
    """A scenario pack's new agreement versions: the latest terms with the pack's laid over."""
    check = load_contract("mno").component_check("AgreementTerms")
    for index, item in enumerate(items):
        partner = partners.get(conn, item["partnerId"])
        latest = agreements.versions_of(conn, partner.id)[-1]
        if latest.created_by == source and latest.effective_from >= now:
            continue  # applied again before its version took effect: that version stands
        terms = {**latest.terms, **item["terms"]}
        problems = check.errors(terms)
        if problems:
            raise ScenarioInvalid(
                f"data.agreementVersions[{index}].terms: {problems[0].message}",
                field=f"data.agreementVersions[{index}].terms",
            )
        agreements.add_version(
            conn,
            partner_id=partner.id,
            agreement_id=partner.agreement_id,
            effective_from=now + float(item.get("effectiveAfterSeconds", 0)),
            terms=terms,
            now=now,
            actor=source,
            correlation_id=None,
        )


def load_usage_generator(
    runtime: Runtime, conn: Any, settings: dict[str, Any], now: float, source: str
) -> None:
    usage.configure(
        runtime,
        conn,
        enabled=bool(settings["enabled"]),
        profile=dict(settings.get("profile") or {}),
        now=now,
    )
