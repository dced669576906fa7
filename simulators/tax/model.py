"""The tax engine's rules: invoice lines and a place of primary use in, one tax line per
jurisdiction level out, shaped like a telecom tax engine (Avalara AFC CalcTaxes).

US wireless: the federal USF on the interstate share (the FCC's 37.1 % wireless safe
harbour), state, county, city and special-district taxes on the charge, and E911 as a
fixed fee per subscriber line per month (postpaid). EU: VAT of the member state where the
customer belongs (the address; the IMSI's MCC only corroborates it), and for a B2B customer
with a VAT id the reverse charge (a `vat` line at rate 0).

Rounding: each tax line is computed from the exact charge (the USF from the exact
interstate share, not its rounded display) and rounded once, half-up, to the currency's
minor unit (`minorUnits` in the table). A line's `totalTax` is the sum of its rounded tax
lines, the quote's `totalTax` the sum of its lines', `totalAmount` the charges plus
`totalTax`: every total adds up to the cent, and no amount is negative or below a cent.

Rates, fees and boundaries come from `jurisdictions.yaml`, loaded once per process. They
are fictitious: NOT real tax advice. No web layer here: tests call these rules directly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache, cached_property
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    bindparam,
    select,
)

from simulators.core.contract import read_yaml
from simulators.core.problems import DomainError, IdempotencyKeyReused
from simulators.core.store import count_and_page, role_table
from simulators.core.tenancy import BILLING_PLATFORM, create_partner, partners, peer_api_key

from . import errors

ROLE = "tax"
CLIENT_CAPABILITIES = ("CALCULATE_TAX", "QUERY_TAX", "RECONCILE_TAX")
TABLE_PATH = Path(__file__).with_name("jurisdictions.yaml")

FEDERAL, STATE, COUNTY, CITY, DISTRICT, E911, VAT = (
    "federal", "state", "county", "city", "district", "e911", "vat",
)  # fmt: skip
LEVELS = (FEDERAL, STATE, COUNTY, CITY, DISTRICT, E911, VAT)
US_LEVELS = (STATE, COUNTY, CITY, DISTRICT, E911)

B2B = "B2B"
PREPAID = "prepaid"

# How the address was placed in the table, as the quote reports it.
BY_ZIP4 = "zip+4"  # a ZIP+4 range of a ZIP that has several areas
BY_ZIP = "zip"  # a ZIP with one area
BY_ZIP_DEFAULT = "zipDefault"  # a ZIP with several areas, placed in its default one
BY_COUNTRY = "country"  # EU VAT: the member state alone

# Matched with fullmatch: `$` would also match before a trailing newline ("62701\n").
_ZIP = re.compile(r"([0-9]{5})(?:-?([0-9]{4}))?")
# P.O. Box spellings, US and those of the EU member states in the table. Bounded by letters
# rather than \b: a box number is often written against the word ("PO Box123", "Postfach12"),
# and \b sees no boundary between a letter and a digit.
_PO_BOX = re.compile(
    r"(?<![^\W\d_])(?:p\.?\s*o\.?\s*box|post\s+office\s+box|pob|postfach|bo[iî]te\s+postale|"
    r"casella\s+postale|apartado\s+de\s+correos|postbus)(?![^\W\d_])",
    re.IGNORECASE,
)


# --- the jurisdiction table ---------------------------------------------------------------


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    level: str
    name: str
    rate: Decimal | None = None  # share of the charge
    fee: Decimal | None = None  # per subscriber line per month (E911)
    adjacent: str | None = None  # the E911 district a misloaded boundary routes to


@dataclass(frozen=True)
class Area:
    """A ZIP+4 range of a ZIP that lies in other jurisdictions than the ZIP's default."""

    first: int
    last: int
    overrides: Mapping[str, Any]
    annexed_on: date | None = None


@dataclass(frozen=True)
class ZipEntry:
    zip5: str
    state: str
    county: str
    city: str | None
    districts: tuple[str, ...]
    e911: str
    areas: tuple[Area, ...] = ()


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    mccs: tuple[str, ...]
    vat_name: str | None = None
    vat_rate: Decimal | None = None


@dataclass(frozen=True)
class Transaction:
    key: str
    levels: frozenset[str]
    usf: bool

    @cached_property
    def in_order(self) -> tuple[str, ...]:
        """Its levels in the order a quote lists them."""
        return tuple(level for level in LEVELS if level in self.levels)


@dataclass(frozen=True)
class Federal:
    code: str
    name: str
    rate: Decimal
    safe_harbour: Decimal


@dataclass(frozen=True)
class Sourcing:
    """The jurisdictions of one US place, level by level, resolved when the table loads."""

    authorities: Mapping[str, tuple[Jurisdiction, ...]]


# A US place in the table: ZIP, the index of its ZIP+4 area (None: the ZIP's default),
# and whether the E911 fee goes to the adjacent district (a data fault).
SourcingKey = tuple[str, int | None, bool]


@dataclass(frozen=True)
class Table:
    minor_units: Mapping[str, int]
    federal: Federal
    transactions: Mapping[str, Transaction]
    jurisdictions: Mapping[str, Jurisdiction]
    zips: Mapping[str, ZipEntry]
    countries: Mapping[str, Country]
    mcc_country: Mapping[str, str]
    # Every place a quote can land on, worked out once: a quote looks its place up.
    sourcing: Mapping[SourcingKey, Sourcing] = field(default_factory=dict)

    def quantum(self, currency: str) -> Decimal:
        return _QUANTA[self.minor_units[currency]]


class TableInvalid(ValueError):
    """The bundled table contradicts itself: a bug in the table, found at start-up."""


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


_QUANTA = {digits: Decimal(1).scaleb(-digits) for digits in range(0, 5)}


def _sourcing(
    jurisdictions: Mapping[str, Jurisdiction],
    entry: ZipEntry,
    area: int | None,
    e911_wrong_district: bool,
) -> Sourcing:
    chosen: dict[str, Any] = {
        STATE: entry.state,
        COUNTY: entry.county,
        CITY: entry.city,
        "districts": entry.districts,
        E911: entry.e911,
    }
    if area is not None:
        chosen.update(entry.areas[area].overrides)
    e911 = chosen[E911]
    if e911_wrong_district:
        e911 = jurisdictions[e911].adjacent or e911
    codes: dict[str, tuple[str, ...]] = {
        STATE: (chosen[STATE],),
        COUNTY: (chosen[COUNTY],),
        CITY: (chosen[CITY],) if chosen[CITY] else (),
        DISTRICT: tuple(chosen["districts"]),
        E911: (e911,),
    }
    return Sourcing(
        authorities={
            level: tuple(jurisdictions[code] for code in found) for level, found in codes.items()
        },
    )


def parse_table(document: Mapping[str, Any]) -> Table:
    """Build the table and check that it holds together (codes exist, levels fit)."""
    jurisdictions = {
        code: Jurisdiction(
            code=code,
            level=spec["level"],
            name=spec["name"],
            rate=_decimal(spec["rate"]) if "rate" in spec else None,
            fee=_decimal(spec["fee"]) if "fee" in spec else None,
            adjacent=spec.get("adjacent"),
        )
        for code, spec in document["jurisdictions"].items()
    }

    def check(code: str | None, level: str, where: str) -> None:
        if code is None:
            return
        found = jurisdictions.get(code)
        if found is None or found.level != level:
            raise TableInvalid(f"{where}: {code} is not a known {level} jurisdiction")

    for item in jurisdictions.values():
        if item.level not in US_LEVELS:
            raise TableInvalid(f"{item.code}: level {item.level} is not a US level")
        if (item.fee is None) == (item.rate is None) or (item.fee is not None) != (
            item.level == E911
        ):
            raise TableInvalid(f"{item.code}: E911 takes a fee, every other level a rate")
        check(item.adjacent, E911, f"{item.code}.adjacent")
    zips: dict[str, ZipEntry] = {}
    for zip5, spec in document["zips"].items():
        areas = []
        for area in spec.get("areas", ()):
            first, last = (int(part) for part in area["plus4"].split("-"))
            overrides = {k: v for k, v in area.items() if k in (CITY, "districts", E911)}
            annexed = area.get("annexedOn")
            areas.append(
                Area(first, last, overrides, date.fromisoformat(str(annexed)) if annexed else None)
            )
        entry = ZipEntry(
            zip5=str(zip5),
            state=spec[STATE],
            county=spec[COUNTY],
            city=spec.get(CITY),
            districts=tuple(spec.get("districts", ())),
            e911=spec[E911],
            areas=tuple(areas),
        )
        for where, values in (("", spec), *((f".areas[{i}]", a) for i, a in enumerate(areas))):
            source = values.overrides if isinstance(values, Area) else values
            check(source.get(STATE), STATE, f"zip {zip5}{where}")
            check(source.get(COUNTY), COUNTY, f"zip {zip5}{where}")
            check(source.get(CITY), CITY, f"zip {zip5}{where}")
            check(source.get(E911), E911, f"zip {zip5}{where}")
            for district in source.get("districts", ()):
                check(district, DISTRICT, f"zip {zip5}{where}")
        zips[entry.zip5] = entry
    countries = {
        code: Country(
            code=code,
            name=spec["name"],
            mccs=tuple(str(mcc) for mcc in spec.get("mcc", ())),
            vat_name=spec["vat"]["name"] if "vat" in spec else None,
            vat_rate=_decimal(spec["vat"]["rate"]) if "vat" in spec else None,
        )
        for code, spec in document["countries"].items()
    }
    federal = document["federal"]
    sourcing = {
        (entry.zip5, area, wrong): _sourcing(jurisdictions, entry, area, wrong)
        for entry in zips.values()
        for area in (None, *range(len(entry.areas)))
        for wrong in (False, True)
    }
    return Table(
        minor_units=dict(document["minorUnits"]),
        federal=Federal(
            code=federal["code"],
            name=federal["name"],
            rate=_decimal(federal["rate"]),
            safe_harbour=_decimal(federal["safeHarbour"]),
        ),
        transactions={
            key: Transaction(key, frozenset(spec["levels"]), bool(spec.get("usf", False)))
            for key, spec in document["transactions"].items()
        },
        jurisdictions=jurisdictions,
        zips=zips,
        countries=countries,
        mcc_country={mcc: country.code for country in countries.values() for mcc in country.mccs},
        sourcing=sourcing,
    )


@cache
def load_table(path: Path = TABLE_PATH) -> Table:
    """The bundled table, parsed once per process: the quote path never reads a file."""
    with path.open() as handle:
        return parse_table(read_yaml(handle))


# --- data faults, as plain values -----------------------------------------------------------


@dataclass(frozen=True)
class TableFaults:
    """Ways the table can be wrong, as the fault engine switched them on for one request."""

    missing_level: str | None = None  # the level the table has no jurisdiction for
    zip_default: bool = False  # every ZIP resolves to its default area, ZIP+4 ignored
    annexation_ignored: bool = False  # annexed areas stay where they were
    e911_wrong_district: bool = False  # the E911 fee goes to the adjacent district


NO_FAULTS = TableFaults()


# --- a quote request --------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLine:
    line_id: str
    amount: Decimal
    transaction_type: str
    service_type: str
    line_count: int

    @property
    def pair(self) -> str:
        return f"{self.transaction_type}/{self.service_type}"


@dataclass(frozen=True)
class QuoteRequest:
    tax_date: date
    currency: str
    customer_type: str
    vat_id: str | None
    exemptions: frozenset[str]
    prepaid: bool
    address: Mapping[str, Any]
    imsi: str | None
    lines: tuple[InvoiceLine, ...]
    document_id: str | None = None


def parse_request(body: Mapping[str, Any]) -> QuoteRequest:
    """A contract-valid request body as plain values."""
    customer = body["customer"]
    return QuoteRequest(
        tax_date=date.fromisoformat(body["date"]),
        currency=body["currency"],
        customer_type=customer["type"],
        vat_id=customer.get("vatId") or None,
        exemptions=frozenset(customer.get("exemptions") or ()),
        prepaid=customer.get("ratingType") == PREPAID,
        address=body["placeOfPrimaryUse"],
        imsi=(body.get("evidence") or {}).get("imsi"),
        lines=tuple(
            InvoiceLine(
                line_id=line["lineId"],
                amount=_decimal(line["amount"]),
                transaction_type=line["transactionType"],
                service_type=line["serviceType"],
                line_count=int(line.get("lineCount", 1)),
            )
            for line in body["lines"]
        ),
        document_id=body.get("documentId"),
    )


# --- placing the address ----------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where the address is taxed: the country and, in the US, its jurisdictions per level."""

    country: str
    resolved_by: str
    sourcing: Sourcing | None = None  # None outside the US: EU VAT needs the country alone
    postal_code: str | None = None


@dataclass(frozen=True)
class Evidence:
    """Which evidence placed the customer in `country`, as an EU VAT quote records it."""

    country: str
    sources: tuple[str, ...]
    imsi_country: str | None


def locate(table: Table, request: QuoteRequest, faults: TableFaults = NO_FAULTS) -> Place:
    """The place of primary use in the table, or the refusal that names the field."""
    address = request.address
    country = address.get("country")
    if not country:
        raise errors.CountryRequired(
            "The place of primary use needs its country (ISO 3166-1 alpha-2); taxes "
            "cannot be sourced without it",
            field="placeOfPrimaryUse.country",
        )
    for name in ("line1", "line2"):
        if _PO_BOX.search(str(address.get(name) or "")):
            raise errors.PoBoxNotPrimaryUse(
                f"placeOfPrimaryUse.{name} is a P.O. Box; send the street address where "
                "the service is primarily used",
                field=f"placeOfPrimaryUse.{name}",
            )
    known = table.countries.get(country)
    if known is None or (known.vat_rate is None and country != "US"):
        raise errors.JurisdictionNotFound(
            f"The table has no jurisdictions in {country}", field="placeOfPrimaryUse.country"
        )
    if country != "US":
        return Place(country=country, resolved_by=BY_COUNTRY)
    return _locate_us(table, request, faults)


def _locate_us(table: Table, request: QuoteRequest, faults: TableFaults) -> Place:
    address = request.address
    postal = str(address.get("postalCode") or "")
    found = _ZIP.fullmatch(postal)
    if found is None:
        raise errors.JurisdictionNotFound(
            f"A US place of primary use needs a ZIP or ZIP+4, not {postal or '(none)'}",
            field="placeOfPrimaryUse.postalCode",
        )
    zip5, plus4 = found.group(1), found.group(2)
    entry = table.zips.get(zip5)
    if entry is None:
        raise errors.JurisdictionNotFound(
            f"ZIP {zip5} is not in the jurisdiction table", field="placeOfPrimaryUse.postalCode"
        )
    region = str(address.get("region") or "").upper()
    state_region = entry.state.removeprefix("US-")
    if region and region != state_region:
        raise errors.JurisdictionNotFound(
            f"ZIP {zip5} is in {state_region}, the address says {region}",
            field="placeOfPrimaryUse.region",
        )
    resolved_by, area = BY_ZIP, None
    if entry.areas:
        area = _area_of(entry, plus4, request.tax_date, faults)
        resolved_by = BY_ZIP_DEFAULT if area is None else BY_ZIP4
    return Place(
        country="US",
        resolved_by=resolved_by,
        sourcing=table.sourcing[(zip5, area, faults.e911_wrong_district)],
        postal_code=f"{zip5}-{plus4}" if plus4 else zip5,
    )


def _area_of(entry: ZipEntry, plus4: str | None, on: date, faults: TableFaults) -> int | None:
    """The index of the ZIP+4 area the address lies in, None for the ZIP's default."""
    if plus4 is None or faults.zip_default:
        return None
    number = int(plus4)
    for index, area in enumerate(entry.areas):
        if not area.first <= number <= area.last:
            continue
        if area.annexed_on is not None and (faults.annexation_ignored or on < area.annexed_on):
            continue
        return index
    return None


def evidence_of(table: Table, request: QuoteRequest, country: str) -> Evidence:
    """The address decides; an IMSI whose MCC names the same country corroborates it.

    Under the EU place-of-supply rules for telecom services (Implementing Regulation
    282/2011, art. 24b) the MCC of the SIM is acceptable evidence, but an address without
    a country is still refused (COUNTRY_REQUIRED): the MCC never replaces the address.
    """
    imsi_country = table.mcc_country.get(request.imsi[:3]) if request.imsi else None
    sources = ("address", "imsi") if imsi_country == country else ("address",)
    return Evidence(country=country, sources=sources, imsi_country=imsi_country)


# --- the quote --------------------------------------------------------------------------------


class TaxLine(NamedTuple):
    """One tax on one invoice line (a tuple: a quote makes many, and tuples are cheap)."""

    level: str
    name: str
    jurisdiction_code: str
    rate: Decimal | None
    basis: str
    amount: Decimal


@dataclass(frozen=True)
class QuotedLine:
    line: InvoiceLine
    taxes: tuple[TaxLine, ...]
    total_tax: Decimal  # the sum of its rounded tax lines


@dataclass(frozen=True)
class Quote:
    request: QuoteRequest
    place: Place
    evidence: Evidence | None
    lines: tuple[QuotedLine, ...]
    quantum: Decimal  # the currency's minor unit
    total_tax: Decimal
    total_amount: Decimal


def check_lines(table: Table, request: QuoteRequest) -> None:
    seen: set[str] = set()
    for index, line in enumerate(request.lines):
        if line.pair not in table.transactions:
            raise errors.UnknownTransactionService(
                f"Line {line.line_id}: {line.pair} is not a transaction/service pair the "
                f"engine knows ({', '.join(sorted(table.transactions))})",
                field=f"lines[{index}].serviceType",
                lineId=line.line_id,
            )
        if line.line_id in seen:
            raise errors.DuplicateLineId(
                f"lineId {line.line_id} appears twice", field=f"lines[{index}].lineId"
            )
        seen.add(line.line_id)


def calculate(table: Table, request: QuoteRequest, faults: TableFaults = NO_FAULTS) -> Quote:
    """Tax every line of the request; refusals name the field (see `errors`)."""
    place = locate(table, request, faults)
    check_lines(table, request)
    evidence = evidence_of(table, request, place.country) if place.country != "US" else None
    quantum = table.quantum(request.currency)
    skipped = set(request.exemptions)
    if faults.missing_level:
        skipped.add(faults.missing_level)
    if request.prepaid:
        skipped.add(E911)  # prepaid 911 is collected at the point of sale, not per bill
    lines = []
    charges = Decimal(0)
    for line in request.lines:
        taxes = _taxes(table, place, request, line, skipped, quantum)
        # Each tax line is already rounded to the minor unit: their sum is exact.
        lines.append(QuotedLine(line, taxes, sum((tax.amount for tax in taxes), Decimal(0))))
        charges += line.amount
    total_tax = _round(sum((quoted.total_tax for quoted in lines), Decimal(0)), quantum)
    return Quote(
        request=request,
        place=place,
        evidence=evidence,
        lines=tuple(lines),
        quantum=quantum,
        total_tax=total_tax,
        total_amount=_round(charges + total_tax, quantum),
    )


def _round(value: Decimal, quantum: Decimal) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


_ZERO = Decimal(0)


def _taxes(
    table: Table,
    place: Place,
    request: QuoteRequest,
    line: InvoiceLine,
    skipped: set[str],
    quantum: Decimal,
) -> tuple[TaxLine, ...]:
    transaction = table.transactions[line.pair]
    amount = line.amount
    basis = str(_round(amount, quantum))
    if place.sourcing is None:
        country = table.countries[place.country]
        if VAT not in transaction.levels or VAT in skipped or country.vat_rate is None:
            return ()
        if request.customer_type == B2B and request.vat_id:
            name = (
                f"{country.vat_name} reverse charge: the customer accounts for the VAT "
                "(VAT Directive art. 196)"
            )
            return (TaxLine(VAT, name, country.code, _ZERO, basis, _round(_ZERO, quantum)),)
        rate = country.vat_rate
        vat = _round(amount * rate, quantum)
        return (TaxLine(VAT, str(country.vat_name), country.code, rate, basis, vat),)
    authorities = place.sourcing.authorities
    taxes: list[TaxLine] = []
    for level in transaction.in_order:
        if level in skipped:
            continue
        if level == FEDERAL:
            if transaction.usf:
                federal = table.federal
                # The tax comes from the exact interstate share; its basis is shown rounded.
                interstate = amount * federal.safe_harbour
                shown = str(_round(interstate, quantum))
                tax = _round(interstate * federal.rate, quantum)
                taxes.append(TaxLine(FEDERAL, federal.name, federal.code, federal.rate, shown, tax))
            continue
        for authority in authorities.get(level, ()):
            if authority.fee is not None:
                if line.line_count > 0:
                    fee = _round(authority.fee * line.line_count, quantum)
                    count = str(line.line_count)
                    taxes.append(TaxLine(level, authority.name, authority.code, None, count, fee))
            elif authority.rate is not None:
                rate = authority.rate
                tax = _round(amount * rate, quantum)
                taxes.append(TaxLine(level, authority.name, authority.code, rate, basis, tax))
    return tuple(taxes)


# --- the quote as stored and answered -----------------------------------------------------


@cache
def rate_text(value: Decimal | None) -> str | None:
    """A rate as the contract writes it (0.0625, never 6.25E-2); the table has few rates."""
    return None if value is None else format(value.normalize(), "f")


def quote_record(quote: Quote) -> dict[str, Any]:
    """The quote's answer without id and href: what is stored and answered again."""
    request = quote.request
    quantum = quote.quantum
    record: dict[str, Any] = {"date": request.tax_date.isoformat(), "currency": request.currency}
    if request.document_id is not None:
        record["documentId"] = request.document_id
    record["lines"] = [
        {
            "lineId": quoted.line.line_id,
            "amount": str(_round(quoted.line.amount, quantum)),
            "transactionType": quoted.line.transaction_type,
            "serviceType": quoted.line.service_type,
            "taxes": [
                {
                    "level": tax.level,
                    "name": tax.name,
                    "jurisdictionCode": tax.jurisdiction_code,
                    "rate": rate_text(tax.rate),
                    "basis": tax.basis,
                    "amount": str(tax.amount),
                }
                for tax in quoted.taxes
            ],
            "totalTax": str(_round(quoted.total_tax, quantum)),
        }
        for quoted in quote.lines
    ]
    record["totalTax"] = str(quote.total_tax)
    record["totalAmount"] = str(quote.total_amount)
    place: dict[str, Any] = {"country": quote.place.country, "resolvedBy": quote.place.resolved_by}
    if quote.place.postal_code:
        place["postalCode"] = quote.place.postal_code
    record["jurisdiction"] = place
    if quote.evidence is not None:
        evidence: dict[str, Any] = {
            "country": quote.evidence.country,
            "sources": list(quote.evidence.sources),
        }
        if quote.evidence.imsi_country:
            evidence["imsiCountry"] = quote.evidence.imsi_country
        record["evidence"] = evidence
    return record


# --- storage ------------------------------------------------------------------------------------

quotes_table = role_table(
    ROLE,
    "tax_quote",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False),
    Column("document_id", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    # The request as sent, so reconciliation can quote it again independently.
    Column("request", JSON, nullable=False),
    Column("record", JSON, nullable=False),
    Index("ix_tax_quote_client_document", "client_id", "document_id"),
)


@dataclass(frozen=True)
class StoredQuote:
    id: str
    client_id: str
    document_id: str | None
    created_at: float
    request: dict[str, Any]
    record: dict[str, Any]


def new_quote_id() -> str:
    return f"txq_{uuid.uuid4().hex[:24]}"


_INSERT = quotes_table.insert()


def create_quote(
    conn: Connection,
    table: Table,
    *,
    client_id: str,
    body: Mapping[str, Any],
    now: float,
    faults: TableFaults = NO_FAULTS,
) -> StoredQuote:
    """Quote and store in one insert: quotes are immutable, the row is their record."""
    stored = _quoted(table, client_id, body, now, faults)
    conn.execute(_INSERT, _row(stored))
    return stored


def _quoted(
    table: Table, client_id: str, body: Mapping[str, Any], now: float, faults: TableFaults
) -> StoredQuote:
    quote = calculate(table, parse_request(body), faults)
    return StoredQuote(
        id=new_quote_id(),
        client_id=client_id,
        document_id=quote.request.document_id,
        created_at=now,
        request=dict(body),
        record=quote_record(quote),
    )


def _row(stored: StoredQuote) -> dict[str, Any]:
    return {
        "id": stored.id,
        "client_id": stored.client_id,
        "document_id": stored.document_id,
        "created_at": stored.created_at,
        "request": stored.request,
        "record": stored.record,
    }


# --- batches ----------------------------------------------------------------------------------

MAX_BATCH = 100

# Which quote answers an idempotency key of a batch item. Kept as long as the quote (a
# quote is never deleted but by a reset), so a batch retried any time later never stores
# a second quote for a document. A retry is recognised by the quote's own stored request.
quote_keys_table = role_table(
    ROLE,
    "tax_quote_key",
    Column("client_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("quote_id", String(40), nullable=False),
)

_INSERT_KEY = quote_keys_table.insert()
_BY_KEYS = (
    select(quote_keys_table.c.key, quotes_table)
    .join(quotes_table, quotes_table.c.id == quote_keys_table.c.quote_id)
    .where(
        quote_keys_table.c.client_id == bindparam("client_id"),
        quote_keys_table.c.key.in_(bindparam("keys", expanding=True)),
    )
)


@dataclass(frozen=True)
class BatchItem:
    """One quote request of a batch, already valid by the contract."""

    body: Mapping[str, Any]
    key: str | None = None  # see `item_key`
    faults: TableFaults = NO_FAULTS


@dataclass(frozen=True)
class ItemOutcome:
    """A batch item's answer: its quote (new, or `replayed` from its key), or its refusal."""

    quote: StoredQuote | None = None
    refusal: DomainError | None = None
    replayed: bool = False


def item_key(idempotency_key: str | None, body: Mapping[str, Any]) -> str | None:
    """The item's own key, else its document: a document is quoted once per content."""
    if idempotency_key:
        return idempotency_key
    document_id = body.get("documentId")
    return f"documentId:{document_id}" if document_id else None


def quote_batch(
    conn: Connection,
    table: Table,
    *,
    client_id: str,
    items: Sequence[BatchItem],
    now: float,
) -> list[ItemOutcome]:
    """Quote each item on its own, in order; store the new quotes and their keys with one
    statement each. A refusal concerns its item alone; a key seen before answers its
    quote again, unless its request differs (IDEMPOTENCY_KEY_REUSED)."""
    keys = sorted({item.key for item in items if item.key})
    known: dict[str, StoredQuote] = {}
    if keys:
        for row in conn.execute(_BY_KEYS, {"client_id": client_id, "keys": keys}):
            known[row.key] = _stored(row)
    outcomes: list[ItemOutcome] = []
    quote_rows: list[dict[str, Any]] = []
    key_rows: list[dict[str, Any]] = []
    for item in items:
        first = known.get(item.key) if item.key else None
        if first is not None:
            # The same request, whatever the order of its members (a contract-valid request
            # holds strings, integers, booleans and nulls: they come back from the store as
            # they went in).
            if first.request == item.body:
                outcomes.append(ItemOutcome(quote=first, replayed=True))
            else:
                outcomes.append(ItemOutcome(refusal=_key_reused(item)))
            continue
        try:
            stored = _quoted(table, client_id, item.body, now, item.faults)
        except DomainError as refusal:
            outcomes.append(ItemOutcome(refusal=refusal))
            continue
        outcomes.append(ItemOutcome(quote=stored))
        quote_rows.append(_row(stored))
        if item.key:
            known[item.key] = stored
            key_rows.append({"client_id": client_id, "key": item.key, "quote_id": stored.id})
    if quote_rows:
        conn.execute(_INSERT, quote_rows)
    if key_rows:
        conn.execute(_INSERT_KEY, key_rows)
    return outcomes


def _key_reused(item: BatchItem) -> IdempotencyKeyReused:
    if item.key and item.key.startswith("documentId:"):
        detail = (
            f"Document {item.body.get('documentId')} was quoted with another request; give "
            "the item an idempotencyKey of its own to quote the revised document"
        )
        return IdempotencyKeyReused(detail, field="documentId")
    return IdempotencyKeyReused(
        "This idempotencyKey was first used with another request; use a new key",
        field="idempotencyKey",
    )


def _stored(row: Any) -> StoredQuote:
    return StoredQuote(
        id=row.id,
        client_id=row.client_id,
        document_id=row.document_id,
        created_at=row.created_at,
        request=dict(row.request),
        record=dict(row.record),
    )


_BY_ID = select(quotes_table).where(
    quotes_table.c.id == bindparam("id"), quotes_table.c.client_id == bindparam("client_id")
)


def get_quote(conn: Connection, client_id: str, quote_id: str) -> StoredQuote:
    row = conn.execute(_BY_ID, {"id": quote_id, "client_id": client_id}).first()
    if row is None:
        raise errors.QuoteNotFound(f"No tax quote {quote_id}", field="quoteId")
    return _stored(row)


def list_quotes(
    conn: Connection,
    client_id: str,
    *,
    document_id: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[StoredQuote]]:
    """The client's quotes, oldest first, and how many match across all pages."""
    where = [quotes_table.c.client_id == client_id]
    if document_id is not None:
        where.append(quotes_table.c.document_id == document_id)
    total, rows = count_and_page(conn, quotes_table, where, [quotes_table.c.pk], offset, limit)
    return int(total), [_stored(row) for row in rows]


# --- reconciliation ---------------------------------------------------------------------------

MISSING_LEVEL = "missingLevel"
JURISDICTION_DIFFERS = "jurisdictionDiffers"
AMOUNT_DIFFERS = "amountDiffers"
UNEXPECTED_TAX = "unexpectedTax"
MAX_RECONCILED = 1000


@dataclass(frozen=True)
class Finding:
    line_id: str
    level: str
    kind: str
    quoted_code: str | None
    expected_code: str | None
    quoted_amount: str
    expected_amount: str

    @property
    def difference(self) -> str:
        """Expected minus quoted: positive is tax that was not collected."""
        return str(Decimal(self.expected_amount) - Decimal(self.quoted_amount))


@dataclass(frozen=True)
class QuoteCheck:
    quote: StoredQuote
    expected_tax: str
    findings: tuple[Finding, ...]

    @property
    def matched(self) -> bool:
        return not self.findings


def reconcile(
    conn: Connection,
    table: Table,
    client_id: str,
    *,
    quote_ids: Sequence[str] = (),
    document_id: str | None = None,
) -> list[QuoteCheck]:
    """Quote each stored request again, with the table as loaded and no data fault, and
    list every tax line that differs from what was quoted: the check that catches a
    jurisdiction level nobody taxed before the tax is due."""
    if quote_ids:
        stored = [get_quote(conn, client_id, quote_id) for quote_id in dict.fromkeys(quote_ids)]
    else:
        _, stored = list_quotes(conn, client_id, document_id=document_id, limit=MAX_RECONCILED)
    checks = []
    for quote in stored:
        expected = quote_record(calculate(table, parse_request(quote.request)))
        checks.append(
            QuoteCheck(
                quote=quote,
                expected_tax=expected["totalTax"],
                findings=tuple(compare(quote.record, expected)),
            )
        )
    return checks


def compare(quoted: Mapping[str, Any], expected: Mapping[str, Any]) -> list[Finding]:
    """Tax lines of two records of the same request that differ, level by level."""
    findings: list[Finding] = []
    quoted_lines = {line["lineId"]: line for line in quoted["lines"]}
    for line in expected["lines"]:
        line_id = line["lineId"]
        mine = quoted_lines.get(line_id, {"taxes": []})["taxes"]
        for level in LEVELS:
            want = [tax for tax in line["taxes"] if tax["level"] == level]
            got = [tax for tax in mine if tax["level"] == level]
            findings.extend(_compare_level(line_id, level, got, want))
    return findings


def _compare_level(
    line_id: str, level: str, got: list[dict[str, Any]], want: list[dict[str, Any]]
) -> list[Finding]:
    def finding(kind: str, mine: dict[str, Any] | None, theirs: dict[str, Any] | None) -> Finding:
        return Finding(
            line_id=line_id,
            level=level,
            kind=kind,
            quoted_code=mine["jurisdictionCode"] if mine else None,
            expected_code=theirs["jurisdictionCode"] if theirs else None,
            quoted_amount=mine["amount"] if mine else "0.00",
            expected_amount=theirs["amount"] if theirs else "0.00",
        )

    found: list[Finding] = []
    got_by_code = {tax["jurisdictionCode"]: tax for tax in got}
    unmatched_want = []
    for tax in want:
        mine = got_by_code.pop(tax["jurisdictionCode"], None)
        if mine is None:
            unmatched_want.append(tax)
        elif Decimal(mine["amount"]) != Decimal(tax["amount"]):
            found.append(finding(AMOUNT_DIFFERS, mine, tax))
    leftovers = list(got_by_code.values())
    for tax in unmatched_want:
        if leftovers:
            found.append(finding(JURISDICTION_DIFFERS, leftovers.pop(0), tax))
        else:
            found.append(finding(MISSING_LEVEL, None, tax))
    found.extend(finding(UNEXPECTED_TAX, tax, None) for tax in leftovers)
    return found


# --- reference data -----------------------------------------------------------------------------


def seed_reference_data(runtime: Any, conn: Connection, seed: int) -> None:
    """The billing platform as the tax engine's client; only added when missing."""
    load_table()  # a table that contradicts itself stops the stack here, not on a quote
    known = conn.execute(select(partners.c.id).where(partners.c.id == BILLING_PLATFORM)).first()
    if known is not None:
        return
    create_partner(
        conn,
        secret_key=runtime.settings.secret_key,
        partner_id=BILLING_PLATFORM,
        role=ROLE,
        name="Billing platform",
        agreement={"capabilities": list(CLIENT_CAPABILITIES)},
        granted=list(CLIENT_CAPABILITIES),
        now=runtime.clock.now(conn),
        api_key=peer_api_key(runtime.settings, BILLING_PLATFORM),
    )
