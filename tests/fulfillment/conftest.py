"""Fulfillment fixtures, and a stand-in for the MVNE's inventory endpoints for as long as the
MVNE does not serve them.

`MvneInventory` answers `PUT/GET /mvne/v1/simBatches/{batchNumber}` and
`PUT/GET/DELETE /mvne/v1/iccidMappings/{iccid}` as the fulfillment <-> MVNE interface
specifies them: the vendor file checked row by row (QUANTITY_MISMATCH, ICCID_CHECK_DIGIT,
IMSI_INVALID, RANGE_BROKEN, ICCID_IN_USE, SECRET_IN_FILE, FILE_MALFORMED with the row or
line), a load keyed on (partner, batch number) with the file's SHA-256, mappings with their
201 / 200 / 404 / 409 answers. It steps aside by itself once `contracts/mvne.yaml`
declares those paths: the same tests then run against the real MVNE.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import responses
from conftest import BASE_URL, SECRET, api_key, conforms, settle
from flask import Flask
from flask.testing import FlaskClient
from requests import PreparedRequest

from simulators.core.contract import load_contract
from simulators.core.identifiers import is_valid_iccid
from simulators.core.inprocess import MountedStack, mount
from simulators.core.runtime import Runtime
from simulators.core.tenancy import derive_api_key, list_partners
from simulators.fulfillment import vendor

FULFILLMENT = "/fulfillment/v1"
ORDERS = f"{FULFILLMENT}/productionOrders"
SHIPMENTS = f"{FULFILLMENT}/shipments"
STOCK = f"{FULFILLMENT}/sims"
HUB = f"{FULFILLMENT}/hub"
ALPHA = {"X-API-Key": api_key("mvno-alpha")}
BRAVO = {"X-API-Key": api_key("mvno-bravo")}
HOUR = 3600.0
DAY = 24 * HOUR
ADDRESS = {"line1": "1 High Street", "city": "Leeds", "postalCode": "LS1 1AA", "country": "GB"}


def mvne_serves(method: str, path_pattern: str) -> bool:
    """Whether the MVNE's contract declares this operation (whatever its parameter's name)."""
    paths = load_contract("mvne").document.get("paths", {})
    pattern = re.compile(path_pattern)
    return any(pattern.fullmatch(path) and method in item for path, item in paths.items())


MVNE_LOADS_BATCHES = mvne_serves("put", r"/v1/simBatches/\{[^}]+\}")
MVNE_MAPS_ICCIDS = mvne_serves("put", r"/v1/iccidMappings/\{[^}]+\}")
MVNE_INVENTORY = MVNE_LOADS_BATCHES and MVNE_MAPS_ICCIDS
needs_mvne_inventory = pytest.mark.skipif(
    not MVNE_INVENTORY,
    reason="the MVNE's contract has no PUT /v1/simBatches and /v1/iccidMappings yet",
)

BATCH_URL = re.compile(re.escape(BASE_URL) + r"/mvne/v1/simBatches/([^/?]+)$")
MAPPING_URL = re.compile(re.escape(BASE_URL) + r"/mvne/v1/iccidMappings/([0-9]+)$")
_HEADER_KEYS = ("Customer", "Profile_Type", "Batch", "Quantity", "Ser_Nb", "IMSI")


class Refusal(Exception):
    def __init__(self, status: int, code: str, detail: str, **members: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.members = status, code, detail, members


@dataclass
class MvneInventory:
    """The MVNE's inventory endpoints as specified, in memory, per test."""

    partners: Callable[[], list[str]]
    batches: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sims: dict[str, dict[str, Any]] = field(default_factory=dict)
    imsis: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def __call__(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        url = (request.url or "").split("?")[0]
        try:
            partner = self._partner(request.headers.get("X-API-Key"))
            if match := BATCH_URL.fullmatch(url):
                status, body, headers = self._batch(request, partner, match.group(1))
            elif match := MAPPING_URL.fullmatch(url):
                status, body, headers = self._mapping(request, partner, match.group(1))
            else:
                raise Refusal(404, "NOT_FOUND", "no such path")
        except Refusal as refusal:
            status, headers = refusal.status, {"Content-Type": "application/problem+json"}
            body = {"type": "about:blank", "title": refusal.code, "status": refusal.status,
                    "detail": refusal.detail, "code": refusal.code, **refusal.members}  # fmt: skip
        self.calls.append((request.method or "", url, status))
        text = "" if body is None else json.dumps(body)
        return status, {"Content-Type": "application/json", **headers}, text

    def clear(self) -> None:
        """Forget everything, as the MVNE does on a reset of the stack."""
        self.batches.clear()
        self.sims.clear()
        self.imsis.clear()

    def _partner(self, key: str | None) -> str:
        for partner in self.partners():
            if key == derive_api_key(SECRET, partner):
                return partner
        raise Refusal(401, "UNAUTHENTICATED", "unknown key")

    # --- batches ---------------------------------------------------------------------------

    def _batch(
        self, request: PreparedRequest, partner: str, batch_number: str
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        stored = self.batches.get((partner, batch_number))
        if request.method == "GET":
            if stored is None:
                raise Refusal(404, "SIM_BATCH_NOT_FOUND", f"no batch {batch_number}")
            return 200, stored, {}
        raw = request.body or b""
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if stored is not None:
            if stored["sha256"] == digest:
                return 200, stored, {}
            raise Refusal(409, "BATCH_NUMBER_REUSED", f"batch {batch_number} holds another file")
        batch = self._load(text, partner, batch_number, digest)
        self.batches[(partner, batch_number)] = batch
        return 201, batch, {"Location": batch["href"]}

    def _load(self, text: str, partner: str, batch_number: str, digest: str) -> dict[str, Any]:
        header: dict[str, str] = {}
        lines = text.split("\n")
        columns: list[str] | None = None
        number = 0
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r")
            if line.startswith("*") or not line.strip():
                continue
            key, sep, value = line.partition(":")
            if not sep:
                raise Refusal(422, "FILE_MALFORMED", f"line {number}: not a header", line=number)
            if key == "Var_Out":
                columns = value.strip().split("/")
                break
            header[key.strip()] = value.strip()
        missing = [key for key in _HEADER_KEYS if key not in header]
        if columns is None or missing:
            raise Refusal(422, "FILE_MALFORMED", f"header misses {missing or ['Var_Out']}",
                          line=number)  # fmt: skip
        if header["Customer"] != partner:
            raise Refusal(403, "CUSTOMER_MISMATCH", "the file is another customer's")
        if header["Batch"] != batch_number:
            raise Refusal(422, "FILE_MALFORMED", "Batch differs from the path", line=number)
        if tuple(columns) not in (vendor.UICC_COLUMNS, vendor.ESIM_COLUMNS):
            raise Refusal(422, "FILE_MALFORMED", f"unknown Var_Out {columns}", line=number)
        quantity = int(header["Quantity"])
        rows: list[dict[str, str]] = []
        previous: dict[str, str] | None = None
        for offset, line in enumerate(lines[number:], number + 1):
            if not line.strip():
                continue
            fields = line.split()
            row = len(rows) + 1
            if len(fields) != len(columns):
                raise Refusal(422, "FILE_MALFORMED", f"line {offset}: {len(fields)} fields",
                              line=offset)  # fmt: skip
            if row > quantity:
                raise Refusal(422, "QUANTITY_MISMATCH", f"row {row} beyond Quantity {quantity}",
                              row=row)  # fmt: skip
            values = dict(zip(columns, fields, strict=True))
            if values["KI"] != vendor.KI_REDACTED:
                raise Refusal(422, "SECRET_IN_FILE", f"row {row}: KI not redacted", row=row)
            if not is_valid_iccid(values["ICCID"]):
                raise Refusal(422, "ICCID_CHECK_DIGIT", f"row {row}: {values['ICCID']}", row=row)
            imsi = values["IMSI"]
            if len(imsi) != 15 or not imsi.startswith("00101") or not imsi.isdigit():
                raise Refusal(422, "IMSI_INVALID", f"row {row}: IMSI {imsi}", row=row)
            expected = (
                (header["Ser_Nb"], header["IMSI"])
                if previous is None
                else (vendor.iccid_at(previous["ICCID"], 1), vendor.imsi_at(previous["IMSI"], 1))
            )
            if (values["ICCID"], imsi) != expected:
                raise Refusal(422, "RANGE_BROKEN", f"row {row}: expected {expected}", row=row)
            if values["ICCID"] in self.sims or imsi in self.imsis:
                raise Refusal(422, "ICCID_IN_USE", f"row {row}: already in inventory", row=row)
            rows.append(values)
            previous = values
        if len(rows) != quantity:
            raise Refusal(422, "QUANTITY_MISMATCH", f"{len(rows)} rows for Quantity {quantity}",
                          row=len(rows))  # fmt: skip
        for values in rows:
            self.sims[values["ICCID"]] = {"partner": partner, "status": "available",
                                          "mapping": None, "batch": batch_number}  # fmt: skip
            self.imsis.add(values["IMSI"])
        href = f"{BASE_URL}/mvne/v1/simBatches/{batch_number}"
        return {
            "id": batch_number, "href": href, "@type": "SimBatch", "batchNumber": batch_number,
            "customer": partner, "profileType": header["Profile_Type"], "quantity": quantity,
            "firstIccid": rows[0]["ICCID"], "lastIccid": rows[-1]["ICCID"],
            "firstImsi": rows[0]["IMSI"], "lastImsi": rows[-1]["IMSI"], "sha256": digest,
            "loadedAt": "2026-03-02T09:00:00.000Z",
        }  # fmt: skip

    # --- mappings ----------------------------------------------------------------------------

    def _mapping(
        self, request: PreparedRequest, partner: str, iccid: str
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        sim = self.sims.get(iccid)
        if sim is None or sim["partner"] != partner:
            raise Refusal(404, "ICCID_NOT_IN_INVENTORY", f"{iccid} is not in the inventory")
        if request.method == "GET":
            if sim["mapping"] is None:
                raise Refusal(404, "ICCID_NOT_MAPPED", f"{iccid} is not mapped")
            return 200, {"iccid": iccid, **sim["mapping"]}, {}
        if sim["status"] != "available":
            raise Refusal(409, "SIM_NOT_AVAILABLE", f"{iccid} is {sim['status']}")
        if request.method == "DELETE":
            sim["mapping"] = None
            return 204, None, {}
        raw = request.body or b"{}"
        body = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        mapping = sim["mapping"]
        if mapping is not None and mapping["accountId"] != body["accountId"]:
            raise Refusal(409, "ICCID_MAPPED_TO_OTHER_ACCOUNT", f"{iccid} is another account's")
        status = 200 if mapping is not None else 201
        if mapping is None:
            sim["mapping"] = {"accountId": body["accountId"], "shipmentId": body.get("shipmentId"),
                              "mappedAt": "2026-03-02T09:00:00.000Z"}  # fmt: skip
        href = f"{BASE_URL}/mvne/v1/iccidMappings/{iccid}"
        return status, {"iccid": iccid, **sim["mapping"], "href": href, "@type": "IccidMapping"}, {}


@pytest.fixture
def inventory(runtime: Runtime) -> MvneInventory:
    def partners() -> list[str]:
        with runtime.store.read() as conn:
            return [partner.id for partner in list_partners(conn, "mvne")]

    return MvneInventory(partners)


Callback = Callable[[PreparedRequest], Any]


@dataclass
class _Routes:
    """Collects the stack's in-process routes, so the inventory paths can be put in front."""

    callbacks: dict[str, tuple[Any, Callback]] = field(default_factory=dict)

    def add_callback(self, method: str, pattern: Any, callback: Callback) -> None:
        self.callbacks[method] = (pattern, callback)


@pytest.fixture
def network(app: Flask, inventory: MvneInventory) -> Iterator[responses.RequestsMock]:
    """The in-process stack; the MVNE's inventory paths answered by the stand-in while the
    MVNE lacks them (one route per method: `responses` pops a route when two match)."""
    routes = _Routes()
    stack: MountedStack = mount(routes, app, BASE_URL)  # type: ignore[arg-type]

    def route(forward: Callback) -> Callback:
        def answer(request: PreparedRequest) -> Any:
            url = (request.url or "").split("?")[0]
            ours = BATCH_URL.fullmatch(url) or MAPPING_URL.fullmatch(url)
            if ours and not MVNE_INVENTORY:
                path = url.removeprefix(BASE_URL)
                status = stack.outage_for(request.method or "GET", path)
                if status is not None:
                    return status, {"Content-Type": "text/plain"}, b"outage"
                return inventory(request)
            return forward(request)

        return answer

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method, (pattern, forward) in routes.callbacks.items():
            mock.add_callback(method, pattern, callback=route(forward))
        mock.stack = stack  # type: ignore[attr-defined]
        yield mock


# --- helpers -----------------------------------------------------------------------------------


def order(client: FlaskClient, headers: dict[str, str] = ALPHA, **body: Any) -> dict[str, Any]:
    answer = client.post(ORDERS, json={"profileType": "UICC", "quantity": 5, **body},
                         headers=headers)  # fmt: skip
    created: dict[str, Any] = conforms(answer, "fulfillment", "createProductionOrder")
    assert answer.status_code == 201, created
    return created


def get_order(client: FlaskClient, order_id: str, headers: dict[str, str] = ALPHA) -> Any:
    return conforms(
        client.get(f"{ORDERS}/{order_id}", headers=headers), "fulfillment", "getProductionOrder"
    )


def produce(client: FlaskClient, runtime: Runtime, **body: Any) -> dict[str, Any]:
    """Order a batch and let the vendor and the MVNE load take their time."""
    created = order(client, **body)
    settle(runtime, 3 * HOUR)
    return dict(get_order(client, created["id"]))


def ship(client: FlaskClient, headers: dict[str, str] = ALPHA, **body: Any) -> dict[str, Any]:
    payload = {"accountId": "acct-1001", "addressTo": ADDRESS, **body}
    if payload.get("profileType") == "eSIM":
        payload.pop("addressTo", None)
    answer = client.post(SHIPMENTS, json=payload, headers=headers)
    created: dict[str, Any] = conforms(answer, "fulfillment", "createShipment")
    assert answer.status_code == 201, created
    return created


def get_shipment(client: FlaskClient, shipment_id: str, headers: dict[str, str] = ALPHA) -> Any:
    return conforms(
        client.get(f"{SHIPMENTS}/{shipment_id}", headers=headers), "fulfillment", "getShipment"
    )


def add_fault(client: FlaskClient, rule: dict[str, Any]) -> None:
    answer = client.post("/__admin/faults", json=rule)
    assert answer.status_code == 201, answer.get_data(as_text=True)


def data_fault(operation: str, fault: str, **effect: Any) -> dict[str, Any]:
    return {
        "match": {"role": "fulfillment", "operation": operation},
        "effect": {"type": "data", "fault": fault, **effect},
    }
