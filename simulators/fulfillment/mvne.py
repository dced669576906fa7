"""Fulfillment's client of the MVNE's inventory: batch loads and ICCID mappings.

Fulfillment acts at the MVNE with the key of the MVNO it serves (a delegated
credential, as billing does): the MVNE then loads the batch into, and maps
ICCIDs within, that partner's inventory only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from simulators.core.runtime import PeerCallFailed, Runtime
from simulators.core.tenancy import derive_api_key

SIM_BATCHES = "/v1/simBatches"
ICCID_MAPPINGS = "/v1/iccidMappings"


class MvneUnavailable(Exception):
    """No answer, or 5xx/429: worth trying again later."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True)
class Answer:
    """What the MVNE said: its status and, for a refusal, its problem's members."""

    status: int
    body: dict[str, Any]

    @property
    def refused(self) -> bool:
        return self.status >= 400

    @property
    def code(self) -> str:
        return str(self.body.get("code") or f"HTTP_{self.status}")

    def error(self) -> dict[str, Any]:
        """The refusal as a production order shows it: code, status, detail, row, line."""
        found: dict[str, Any] = {
            "code": self.code,
            "status": self.status,
            "detail": str(self.body.get("detail") or self.body.get("title") or self.code),
        }
        for name in ("row", "line"):
            value = self.body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                found[name] = value
        if isinstance(self.body.get("field"), str):
            found["field"] = self.body["field"]
        return found


def partner_key(runtime: Runtime, partner_id: str) -> str:
    return derive_api_key(runtime.settings.secret_key, partner_id)


def _call(
    runtime: Runtime,
    partner_id: str,
    method: str,
    path: str,
    correlation_id: str | None,
    *,
    json_body: Any = None,
    text_body: str | None = None,
) -> Answer:
    try:
        response = runtime.call_peer(
            caller="fulfillment",
            peer="mvne",
            method=method,
            path=path,
            api_key=partner_key(runtime, partner_id),
            correlation_id=correlation_id,
            json_body=json_body,
            text_body=text_body,
        )
    except PeerCallFailed as exc:
        raise MvneUnavailable(str(exc)) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise MvneUnavailable(f"MVNE answered {response.status_code}", response.status_code)
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    return Answer(response.status_code, body if isinstance(body, dict) else {})


def load_batch(
    runtime: Runtime, partner_id: str, batch_number: str, text: str, correlation_id: str | None
) -> Answer:
    """PUT the vendor file: 201 loaded, 200 already loaded (same file), 4xx refused."""
    path = f"{SIM_BATCHES}/{quote(batch_number, safe='')}"
    return _call(runtime, partner_id, "PUT", path, correlation_id, text_body=text)


def map_iccid(
    runtime: Runtime,
    partner_id: str,
    iccid: str,
    *,
    account_id: str,
    shipment_id: str,
    subscriber_name: str | None,
    correlation_id: str | None,
) -> Answer:
    """Map a SIM of the partner's inventory to the subscriber's account (201, or 200 again)."""
    body: dict[str, Any] = {"accountId": account_id, "shipmentId": shipment_id}
    if subscriber_name:
        body["subscriberName"] = subscriber_name
    return _call(
        runtime, partner_id, "PUT", f"{ICCID_MAPPINGS}/{iccid}", correlation_id, json_body=body
    )


def unmap_iccid(
    runtime: Runtime, partner_id: str, iccid: str, correlation_id: str | None
) -> Answer:
    """Take an available SIM back from its account (204)."""
    return _call(runtime, partner_id, "DELETE", f"{ICCID_MAPPINGS}/{iccid}", correlation_id)
