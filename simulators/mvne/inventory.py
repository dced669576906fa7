"""SIM intake on the MVNE: vendor batch files loaded exactly once, and the ICCID mapping
handoff that ties a shipped SIM to the subscriber's account.

No Flask here. A batch file is taken a line at a time and its SIMs are inserted a chunk
at a time inside the caller's one write transaction: a refused row, a lost connection or a
restart mid-load leaves nothing behind, and the file delivered again loads whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, select
from sqlalchemy.exc import IntegrityError

from simulators.core import simfile
from simulators.core.simfile import FileHeader, SimRow
from simulators.core.store import count_and_page
from simulators.core.tenancy import Partner, partners

from . import errors
from .model import _audit, sim_batch_table, sim_table

# SIMs inserted per statement: large enough that a 100,000-row batch is 50 round trips,
# small enough that a chunk's rows and parameters stay a few megabytes.
CHUNK_ROWS = 2000
# States in which a SIM may still be handed to a subscriber (and so mapped to one).
MAPPABLE = ("available", "reserved")

# Statements built once and run with bound values: see simulators/core/store.py.
_PARTNER_SIM = select(sim_table).where(
    sim_table.c.iccid == bindparam("iccid"), sim_table.c.partner_id == bindparam("partner_id")
)
_PARTNER_BATCH = select(sim_batch_table).where(
    sim_batch_table.c.partner_id == bindparam("partner_id"),
    sim_batch_table.c.batch_number == bindparam("batch_number"),
)
_INSERT_BATCH = sim_batch_table.insert()
_LOCK_PARTNER = (
    select(partners.c.id).where(partners.c.id == bindparam("partner_id")).with_for_update()
)
_FIRST_ICCID_TAKEN = select(func.min(sim_table.c.iccid)).where(
    sim_table.c.iccid.between(bindparam("first"), bindparam("last")),
    func.length(sim_table.c.iccid) == bindparam("length"),
)
_FIRST_IMSI_TAKEN = select(func.min(sim_table.c.imsi)).where(
    sim_table.c.imsi.between(bindparam("first"), bindparam("last")),
    func.length(sim_table.c.imsi) == bindparam("length"),
)
_A_MATCHING_ID_TAKEN = (
    select(sim_table.c.matching_id)
    .where(sim_table.c.matching_id.in_(bindparam("matching_ids", expanding=True)))
    .limit(1)
)
_MAP_SIM = (
    sim_table.update()
    .where(
        sim_table.c.iccid == bindparam("match_iccid"),
        sim_table.c.partner_id == bindparam("match_partner"),
        sim_table.c.mapped_account_id.is_(None),
        sim_table.c.status.in_(MAPPABLE),
    )
    .values(
        mapped_account_id=bindparam("account_id"),
        mapped_shipment_id=bindparam("shipment_id"),
        mapped_subscriber_name=bindparam("subscriber_name"),
        mapped_at=bindparam("now"),
        updated_at=bindparam("now"),
        # SGP.22: a profile set aside for one subscriber is allocated.
        esim_state=case(
            (sim_table.c.matching_id.is_not(None), "allocated"), else_=sim_table.c.esim_state
        ),
    )
)
_UNMAP_SIM = (
    sim_table.update()
    .where(
        sim_table.c.iccid == bindparam("match_iccid"),
        sim_table.c.partner_id == bindparam("match_partner"),
        sim_table.c.status == "available",
        sim_table.c.mapped_account_id == bindparam("match_account"),
    )
    .values(
        mapped_account_id=None,
        mapped_shipment_id=None,
        mapped_subscriber_name=None,
        mapped_at=None,
        updated_at=bindparam("now"),
        esim_state=case(
            (sim_table.c.matching_id.is_not(None), "available"), else_=sim_table.c.esim_state
        ),
    )
)


# --- batch loads -----------------------------------------------------------------------------


def load_batch(
    conn: Connection,
    *,
    partner: Partner,
    batch_number: str,
    lines: Iterable[bytes],
    correlation_id: str | None,
    now: float,
) -> tuple[Any, bool]:
    """Load one vendor output file into the partner's inventory; return (batch, loaded).

    Exactly once per (partner, batch number): the same file again answers the stored batch
    (`loaded` False) and changes nothing; another file under that number is refused.
    """
    reader = simfile.SimFileReader(lines)
    header = reader.header()
    if header.customer != partner.id:
        raise errors.CustomerMismatch(
            f"The file's Customer is {header.customer}; the key sent is {partner.id}'s",
            field="Customer",
        )
    if header.batch != batch_number:
        raise simfile.FileMalformed(
            f"The file's Batch {header.batch} is not the batch number of the URL, {batch_number}",
            field="Batch",
        )
    # Loads of one partner queue here (PostgreSQL; SQLite writers queue anyway), so two
    # deliveries of one batch at once cannot both pass the check below.
    conn.execute(_LOCK_PARTNER, {"partner_id": partner.id})
    scope = {"partner_id": partner.id, "batch_number": batch_number}
    existing = conn.execute(_PARTNER_BATCH, scope).first()
    if existing is not None:
        reader.drain()
        if reader.sha256 != existing.sha256:
            raise errors.BatchNumberReused(
                f"Batch {batch_number} was loaded from another file (SHA-256 "
                f"{existing.sha256}, this one {reader.sha256}); a new batch needs a new number"
            )
        _audit(
            conn,
            now=now,
            actor=f"partner:{partner.id}",
            partner_id=partner.id,
            action="simBatch.redelivered",
            entity_type="simBatch",
            entity_id=batch_number,
            correlation_id=correlation_id,
            details={"sha256": reader.sha256},
        )
        return existing, False
    chunk: list[SimRow] = []
    last: SimRow | None = None
    for row in reader.rows():
        chunk.append(row)
        if len(chunk) == CHUNK_ROWS:
            _insert_chunk(conn, partner.id, header, chunk, now)
            last, chunk = chunk[-1], []
    if chunk:
        _insert_chunk(conn, partner.id, header, chunk, now)
        last = chunk[-1]
    assert last is not None, "a header's Quantity is at least 1, and every row was counted"
    conn.execute(
        _INSERT_BATCH,
        {
            **scope,
            "profile_type": header.profile_type,
            "quantity": header.quantity,
            "first_iccid": header.first_iccid,
            "last_iccid": last.iccid,
            "first_imsi": header.first_imsi,
            "last_imsi": last.imsi,
            "sha256": reader.sha256,
            "correlation_id": correlation_id,
            "loaded_at": now,
        },
    )
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner.id}",
        partner_id=partner.id,
        action="simBatch.loaded",
        entity_type="simBatch",
        entity_id=batch_number,
        correlation_id=correlation_id,
        details={
            "quantity": header.quantity,
            "profileType": header.profile_type,
            "firstIccid": header.first_iccid,
            "lastIccid": last.iccid,
            "sha256": reader.sha256,
        },
    )
    return conn.execute(_PARTNER_BATCH, scope).one(), True


def _insert_chunk(
    conn: Connection, partner_id: str, header: FileHeader, chunk: list[SimRow], now: float
) -> None:
    _refuse_in_use(conn, header, chunk)
    esim = header.is_esim
    profile_type = "esim" if esim else "physical"
    esim_state = "available" if esim else None
    try:
        conn.execute(
            sim_table.insert(),
            [
                {
                    "iccid": row.iccid,
                    "partner_id": partner_id,
                    "imsi": row.imsi,
                    "status": "available",
                    "profile_type": profile_type,
                    "updated_at": now,
                    "batch_number": header.batch,
                    "matching_id": row.matching_id,
                    "esim_state": esim_state,
                }
                for row in chunk
            ],
        )
    except IntegrityError:
        # Checked just above, so another load committed these identifiers meanwhile.
        first, last = chunk[0].number, chunk[-1].number
        raise errors.IccidInUse(
            f"Rows {first}-{last}: another batch loaded some of these ICCIDs, IMSIs or "
            "matching IDs at the same moment",
            row=first,
        ) from None


def _refuse_in_use(conn: Connection, header: FileHeader, chunk: list[SimRow]) -> None:
    """ICCIDs and IMSIs of a chunk are consecutive ranges of one length (the reader saw to
    it), so one range lookup per identifier finds any that is already taken, anyone's."""
    first, last = chunk[0], chunk[-1]
    taken_iccid = conn.execute(
        _FIRST_ICCID_TAKEN, {"first": first.iccid, "last": last.iccid, "length": len(first.iccid)}
    ).scalar()
    if taken_iccid is not None:
        number = first.number + int(taken_iccid[:-1]) - int(first.iccid[:-1])
        raise errors.IccidInUse(
            f"Row {number}: ICCID {taken_iccid} is already in the MVNE's inventory",
            row=number,
            field="ICCID",
        )
    taken_imsi = conn.execute(
        _FIRST_IMSI_TAKEN, {"first": first.imsi, "last": last.imsi, "length": len(first.imsi)}
    ).scalar()
    if taken_imsi is not None:
        number = first.number + int(taken_imsi) - int(first.imsi)
        raise errors.IccidInUse(
            f"Row {number}: IMSI {taken_imsi} is already in the MVNE's inventory",
            row=number,
            field="IMSI",
        )
    if header.is_esim:
        rows_by_id = {row.matching_id: row.number for row in chunk}
        taken = conn.execute(_A_MATCHING_ID_TAKEN, {"matching_ids": list(rows_by_id)}).scalar()
        if taken is not None:
            number = rows_by_id[taken]
            raise errors.MatchingIdInUse(
                f"Row {number}: MATCHING_ID {taken} already names another eSIM profile",
                row=number,
                field="MATCHING_ID",
            )


def get_batch(conn: Connection, partner: Partner, batch_number: str) -> Any:
    row = conn.execute(
        _PARTNER_BATCH, {"partner_id": partner.id, "batch_number": batch_number}
    ).first()
    if row is None:
        raise errors.BatchNotFound(f"No SIM batch {batch_number}")
    return row


def list_batches(
    conn: Connection, partner: Partner, offset: int, limit: int
) -> tuple[int, Sequence[Any]]:
    return count_and_page(
        conn,
        sim_batch_table,
        [sim_batch_table.c.partner_id == partner.id],
        [sim_batch_table.c.loaded_at.desc(), sim_batch_table.c.batch_number],
        offset,
        limit,
    )


# --- the ICCID mapping handoff ---------------------------------------------------------------


def _partner_sim(conn: Connection, partner: Partner, iccid: str) -> Any:
    sim = conn.execute(_PARTNER_SIM, {"iccid": iccid, "partner_id": partner.id}).first()
    if sim is None:
        # Another partner's ICCID answers the same: its existence is not this partner's to know.
        raise errors.IccidNotInInventory(f"No SIM {iccid} in this partner's inventory")
    return sim


def map_iccid(
    conn: Connection,
    *,
    partner: Partner,
    iccid: str,
    body: dict[str, Any],
    correlation_id: str | None,
    now: float,
) -> tuple[Any, bool]:
    """Map a SIM to the subscriber's account; return (SIM row, newly mapped).

    The same mapping again changes nothing (the audit records the repeat); a SIM mapped to
    another account, or no longer available to a subscriber, is refused.
    """
    account_id = body["accountId"]
    mapped = conn.execute(
        _MAP_SIM,
        {
            "match_iccid": iccid,
            "match_partner": partner.id,
            "account_id": account_id,
            "shipment_id": body.get("shipmentId"),
            "subscriber_name": body.get("subscriberName"),
            "now": now,
        },
    ).rowcount
    sim = _partner_sim(conn, partner, iccid)
    if not mapped:
        if sim.mapped_account_id is None:
            raise errors.SimNotAvailable(
                f"SIM {iccid} is {sim.status}: only a SIM not yet in service can be mapped"
            )
        if sim.mapped_account_id != account_id:
            raise errors.IccidMappedToOtherAccount(
                f"SIM {iccid} is mapped to account {sim.mapped_account_id}, not {account_id}; "
                "unmap it first if it was shipped to the wrong subscriber",
                field="accountId",
            )
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner.id}",
        partner_id=partner.id,
        action="iccid.mapped" if mapped else "iccid.mappingRepeated",
        entity_type="sim",
        entity_id=iccid,
        correlation_id=correlation_id,
        details={
            "accountId": account_id,
            "shipmentId": body.get("shipmentId"),
            "batchNumber": sim.batch_number,
        },
    )
    return sim, bool(mapped)


def get_mapping(conn: Connection, partner: Partner, iccid: str) -> Any:
    sim = _partner_sim(conn, partner, iccid)
    if sim.mapped_account_id is None:
        raise errors.IccidNotMapped(f"SIM {iccid} is not mapped to any account")
    return sim


def unmap_iccid(
    conn: Connection, *, partner: Partner, iccid: str, correlation_id: str | None, now: float
) -> None:
    """Take a mapping back: the SIM returns to stock, unassigned."""
    sim = get_mapping(conn, partner, iccid)
    if sim.status != "available":
        raise errors.SimNotAvailable(
            f"SIM {iccid} is {sim.status}: only an available SIM can be unmapped"
        )
    # get_mapping answered a mapped SIM: its account is never None here.
    unmapped = conn.execute(
        _UNMAP_SIM,
        {
            "match_iccid": iccid,
            "match_partner": partner.id,
            "match_account": sim.mapped_account_id,
            "now": now,
        },
    ).rowcount
    if not unmapped:
        raise errors.SimNotAvailable(
            f"SIM {iccid} changed while it was being unmapped; read it again"
        )
    _audit(
        conn,
        now=now,
        actor=f"partner:{partner.id}",
        partner_id=partner.id,
        action="iccid.unmapped",
        entity_type="sim",
        entity_id=iccid,
        correlation_id=correlation_id,
        details={"accountId": sim.mapped_account_id, "shipmentId": sim.mapped_shipment_id},
    )
