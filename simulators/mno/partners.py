"""The host network's wholesale partners: who they are, which IMSIs are theirs, and the
credentials they and the MNO's own settlement staff use.

The network attributes a subscriber to an MVNO the way host networks do: by IMSI range.
Each wholesale partner holds blocks of the test network's IMSIs (E.212, MCC 001 / MNC 01);
a service whose IMSI falls in a partner's block is that partner's, for activation fees,
monthly fees, usage and reconciliation.

Credentials (derived from the stack's master key, as every other API key):

- an MVNO calls the wholesale API as `<partner>-wholesale` (tenancy role `mno-wholesale`):
  a partner id belongs to one API, so its MVNE key does not open the MNO's;
- the MNO's settlement staff call the operations API as themselves (tenancy role
  `mno-operations`); a manual adjustment needs a maker and a different checker, so the
  reference data has two people, one of them allowed to approve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Float, ForeignKey, String, bindparam, select

from simulators.core import tenancy
from simulators.core.identifiers import TEST_MCC, TEST_MNC
from simulators.core.store import role_table, select_equal

from . import agreements, errors

ROLE = "mno"
WHOLESALE_ROLE = tenancy.api_role(ROLE, "wholesale")
OPERATIONS_ROLE = tenancy.api_role(ROLE, "operations")

WHOLESALE_CAPABILITIES = (
    "VIEW_SETTLEMENT",
    "DISPUTE_USAGE",
    "DECLARE_REVENUE",
    "RECONCILE",
    "MANAGE_EVENTS",
)
OPERATE = "SETTLEMENT_OPERATE"
APPROVE = "SETTLEMENT_APPROVE"
OPERATORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("mno-settlement-analyst", "Settlement analyst", (OPERATE,)),
    ("mno-settlement-approver", "Settlement approver", (OPERATE, APPROVE)),
)

# The reference MVNOs and the IMSI block of the test network each was given: the block
# their SIM pools are cut from (MSIN = two digits of the seed, three of the block, five of
# the serial number).
REFERENCE_PARTNERS: tuple[dict[str, Any], ...] = (
    {"id": "mvno-alpha", "name": "Alpha Mobile", "currency": "GBP", "imsiBlock": 1},
    {"id": "mvno-bravo", "name": "Bravo Connect", "currency": "USD", "imsiBlock": 2},
)
# The reference agreements hold from before any simulated time a stack starts at.
REFERENCE_EFFECTIVE_FROM = 1577836800.0  # 2020-01-01T00:00:00Z

wholesale_partners = role_table(
    ROLE,
    "mno_wholesale_partner",
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("account_id", String(80), nullable=False, unique=True),
    Column("agreement_id", String(80), nullable=False, unique=True),
    # The same MVNO's tenancy at the MVNE: its new-activation capability is the one an
    # unpaid invoice suspends, and its inventory is the partner side of reconciliation.
    Column("mvne_partner_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

imsi_ranges = role_table(
    ROLE,
    "mno_imsi_range",
    Column("prefix", String(15), primary_key=True),
    Column("partner_id", String(64), ForeignKey("mno_wholesale_partner.id"), nullable=False),
)

# Built once and run with bound values: see simulators/core/store.py.
_PREFIXES_OF_PARTNER = select(imsi_ranges.c.prefix).where(
    imsi_ranges.c.partner_id == bindparam("partner_id")
)
_RANGES_OF_PREFIXES = select(imsi_ranges.c.prefix, imsi_ranges.c.partner_id).where(
    imsi_ranges.c.prefix.in_(bindparam("prefixes", expanding=True))
)
_PARTNER_OF_MVNO = select(wholesale_partners.c.id).where(
    wholesale_partners.c.mvne_partner_id == bindparam("mvno_id")
)
_MVNO_OF_PARTNER = select(wholesale_partners.c.mvne_partner_id).where(
    wholesale_partners.c.id == bindparam("partner_id")
)
_PARTNER_BLOCKS = select(wholesale_partners.c.id, imsi_ranges.c.prefix).outerjoin(
    imsi_ranges, imsi_ranges.c.partner_id == wholesale_partners.c.id
)


@dataclass(frozen=True)
class WholesalePartner:
    id: str
    name: str
    account_id: str
    agreement_id: str
    mvne_partner_id: str
    imsi_prefixes: tuple[str, ...]


credential_id = tenancy.wholesale_credential_id


def pool_imsi_prefix(seed: int, block: int) -> str:
    """The IMSI prefix of one SIM-pool block on the test network 001/01."""
    return f"{TEST_MCC}{TEST_MNC}{seed % 100:02d}{block:03d}"


def _from_row(row: Any, prefixes: Sequence[str]) -> WholesalePartner:
    return WholesalePartner(
        id=row.id,
        name=row.name,
        account_id=row.account_id,
        agreement_id=row.agreement_id,
        mvne_partner_id=row.mvne_partner_id,
        imsi_prefixes=tuple(sorted(prefixes)),
    )


def get(conn: Connection, partner_id: str) -> WholesalePartner:
    row = select_equal(conn, wholesale_partners, id=partner_id).first()
    if row is None:
        raise errors.WholesalePartnerNotFound(f"No wholesale partner {partner_id}")
    prefixes = conn.execute(_PREFIXES_OF_PARTNER, {"partner_id": partner_id}).scalars()
    return _from_row(row, list(prefixes))


def find(conn: Connection, partner_id: str) -> WholesalePartner | None:
    try:
        return get(conn, partner_id)
    except errors.WholesalePartnerNotFound:
        return None


def partner_of_imsi(conn: Connection, imsi: str) -> str | None:
    """The wholesale partner whose IMSI block holds this IMSI (the longest prefix wins)."""
    candidates = [imsi[:length] for length in range(5, len(imsi) + 1)]
    found = conn.execute(_RANGES_OF_PREFIXES, {"prefixes": candidates}).all()
    if not found:
        return None
    return str(max(found, key=lambda row: len(row.prefix)).partner_id)


def by_mvno(conn: Connection, mvno_id: str) -> str | None:
    """The wholesale partner of an MVNO as the MVNE names it (a service order's relatedParty,
    a line's `mvno_id`)."""
    found = conn.execute(_PARTNER_OF_MVNO, {"mvno_id": mvno_id}).scalar()
    return None if found is None else str(found)


def partner_of_line(conn: Connection, mvno_id: str | None, imsi: str) -> str | None:
    """Whose line this is: the MVNO the service order names, else the owner of the IMSI
    block."""
    if mvno_id is not None:
        return by_mvno(conn, mvno_id)
    return partner_of_imsi(conn, imsi)


def mvno_of(conn: Connection, partner_id: str | None) -> str | None:
    """The MVNO id a wholesale partner's lines carry (its id at the MVNE)."""
    if partner_id is None:
        return None
    found = conn.execute(_MVNO_OF_PARTNER, {"partner_id": partner_id}).scalar()
    return None if found is None else str(found)


def of_credential(partner: tenancy.Partner) -> str:
    """The wholesale partner an authenticated wholesale credential speaks for."""
    return str(partner.agreement["wholesalePartner"])


def register(
    conn: Connection,
    *,
    secret_key: str,
    partner_id: str,
    name: str,
    imsi_prefixes: Sequence[str],
    mvne_partner_id: str | None,
    now: float,
) -> tuple[WholesalePartner, str]:
    """Add a wholesale partner, its IMSI blocks and its API credential; return the key."""
    if find(conn, partner_id) is not None:
        raise errors.WholesalePartnerExists(f"Wholesale partner {partner_id} exists")
    taken = conn.execute(
        select(imsi_ranges.c.prefix).where(imsi_ranges.c.prefix.in_(list(imsi_prefixes)))
    ).scalars()
    clash = sorted(taken)
    if clash:
        raise errors.ImsiRangeTaken(
            f"IMSI prefix {clash[0]} already belongs to another partner", field="imsiPrefixes"
        )
    for prefix in imsi_prefixes:
        for other in conn.execute(select(imsi_ranges.c.prefix)).scalars():
            if prefix.startswith(other) or other.startswith(prefix):
                raise errors.ImsiRangeTaken(
                    f"IMSI prefix {prefix} overlaps {other}, another partner's",
                    field="imsiPrefixes",
                )
    conn.execute(
        wholesale_partners.insert(),
        {
            "id": partner_id,
            "name": name,
            "account_id": f"acct-{partner_id}",
            "agreement_id": f"wa-{partner_id}",
            "mvne_partner_id": mvne_partner_id or partner_id,
            "created_at": now,
        },
    )
    conn.execute(
        imsi_ranges.insert(), [{"prefix": p, "partner_id": partner_id} for p in imsi_prefixes]
    )
    key = ensure_credential(conn, secret_key=secret_key, partner_id=partner_id, name=name, now=now)
    return get(conn, partner_id), key


def _credential_name(name: str) -> str:
    """The credential's label: the partner's name, cut so the suffix still fits the column."""
    suffix = " (wholesale)"
    column: Any = tenancy.partners.c.name.type
    room = int(column.length) - len(suffix)
    return f"{name[:room]}{suffix}"


def ensure_credential(
    conn: Connection, *, secret_key: str, partner_id: str, name: str, now: float
) -> str:
    """The partner's wholesale API credential, created if missing; its key."""
    credential = credential_id(partner_id)
    key = tenancy.derive_api_key(secret_key, credential)
    known = select_equal(conn, tenancy.partners, id=credential).first()
    if known is None:
        tenancy.create_partner(
            conn,
            secret_key=secret_key,
            partner_id=credential,
            role=WHOLESALE_ROLE,
            name=_credential_name(name),
            agreement={
                "wholesalePartner": partner_id,
                "capabilities": list(WHOLESALE_CAPABILITIES),
            },
            granted=list(WHOLESALE_CAPABILITIES),
            now=now,
        )
    return key


_STAFF_CREDENTIALS = select(tenancy.partners.c.id).where(
    tenancy.partners.c.role.in_((WHOLESALE_ROLE, OPERATIONS_ROLE))
)


def seed(secret_key: str, conn: Connection, seed_value: int, now: float) -> None:
    """The reference MVNOs with their IMSI blocks and agreement, and the settlement staff.

    Only what is missing is added (a reset seeds again, so this stays a handful of
    statements); after a seed change the blocks follow the new seed, as the SIM pools cut
    from them do.
    """
    known = {row.id: row.prefix for row in conn.execute(_PARTNER_BLOCKS)}
    credentials = set(conn.execute(_STAFF_CREDENTIALS).scalars())
    missing = [ref for ref in REFERENCE_PARTNERS if ref["id"] not in known]
    if missing:
        conn.execute(
            wholesale_partners.insert(),
            [
                {
                    "id": ref["id"],
                    "name": ref["name"],
                    "account_id": f"acct-{ref['id']}",
                    "agreement_id": f"wa-{ref['id']}",
                    "mvne_partner_id": ref["id"],
                    "created_at": now,
                }
                for ref in missing
            ],
        )
        conn.execute(
            agreements.agreement_versions.insert(),
            [
                {
                    "partner_id": ref["id"],
                    "agreement_id": f"wa-{ref['id']}",
                    "version": 1,
                    "effective_from": REFERENCE_EFFECTIVE_FROM,
                    "currency": ref["currency"],
                    "terms": agreements.reference_terms(str(ref["currency"])),
                    "created_at": now,
                    "created_by": "system",
                }
                for ref in missing
            ],
        )
    blocks = {
        ref["id"]: pool_imsi_prefix(seed_value, int(ref["imsiBlock"])) for ref in REFERENCE_PARTNERS
    }
    moved = [partner for partner, prefix in blocks.items() if known.get(partner) != prefix]
    if moved:
        conn.execute(imsi_ranges.delete().where(imsi_ranges.c.partner_id.in_(moved)))
        conn.execute(imsi_ranges.insert(), [{"prefix": blocks[p], "partner_id": p} for p in moved])
    for ref in REFERENCE_PARTNERS:
        if credential_id(ref["id"]) not in credentials:
            ensure_credential(
                conn, secret_key=secret_key, partner_id=ref["id"], name=ref["name"], now=now
            )
    for operator_id, name, granted in OPERATORS:
        if operator_id not in credentials:
            tenancy.create_partner(
                conn,
                secret_key=secret_key,
                partner_id=operator_id,
                role=OPERATIONS_ROLE,
                name=name,
                agreement={"capabilities": list(granted)},
                granted=list(granted),
                now=now,
            )
