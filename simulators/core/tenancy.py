"""Partners, their credentials and capabilities: who is calling, and what they may do.

API keys are derived from the stack's master key and only their hash is
stored, so a dump of the store never yields a usable credential.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Connection, Float, ForeignKey, String, bindparam, select

from .generation import Generation
from .problems import DomainError, NotFound, PermissionDenied, Unauthenticated
from .store import CORE_ROLE, role_table

PARTNER_ACTIVE = "active"
PARTNER_SUSPENDED = "suspended"
PARTNER_TERMINATED = "terminated"

CAPABILITY_GRANTED = "granted"
CAPABILITY_SUSPENDED = "suspended"

partners = role_table(
    CORE_ROLE,
    "partner",
    Column("id", String(64), primary_key=True),
    # The role whose API this partner calls: MVNOs call the MVNE, the MVNE calls the MNO.
    Column("role", String(16), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(16), nullable=False),
    Column("agreement", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("terminated_at", Float, nullable=True),
)

capabilities = role_table(
    CORE_ROLE,
    "partner_capability",
    Column("partner_id", String(64), ForeignKey("partner.id"), primary_key=True),
    Column("capability", String(40), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("changed_at", Float, nullable=False),
)


@dataclass(frozen=True)
class Partner:
    id: str
    role: str
    name: str
    status: str
    agreement: dict[str, Any]
    capabilities: dict[str, str]

    def has(self, capability: str) -> bool:
        return self.capabilities.get(capability) == CAPABILITY_GRANTED


class PartnerInactive(DomainError):
    code = "PARTNER_INACTIVE"
    status = 403
    title = "This partner is not active"


class CapabilityNotGranted(DomainError):
    code = "CAPABILITY_NOT_GRANTED"
    status = 403
    title = "The partner's agreement does not grant this capability"


class CapabilitySuspended(DomainError):
    code = "CAPABILITY_SUSPENDED"
    status = 403
    title = "This capability is suspended for the partner"


def derive_api_key(secret_key: str, partner_id: str) -> str:
    digest = hmac.new(secret_key.encode(), f"api-key:{partner_id}".encode(), hashlib.sha256)
    return f"hk_{partner_id}_{digest.hexdigest()[:32]}"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


_CAPABILITIES_OF = select(capabilities.c.capability, capabilities.c.status).where(
    capabilities.c.partner_id == bindparam("partner_id")
)
_PARTNER_BY_KEY = select(partners).where(
    partners.c.key_hash == bindparam("key_hash"), partners.c.role == bindparam("role")
)

# Authenticated partners by (role, key hash), with the partner generation they were read
# at. A change made in any worker of this host bumps the generation, so every worker drops
# what it holds at its next request; a worker on another host sharing the database sees a
# change within CACHE_TTL_S, as with an API gateway's key cache.
CACHE_TTL_S = 1.0
_cache: dict[tuple[str, str], tuple[float, int, Partner]] = {}
_cache_lock = threading.Lock()
_changes = Generation(None)


def share_partner_changes(generation: Generation) -> None:
    """Use the stack's shared partner generation (one per store) from now on."""
    global _changes
    _changes = generation


def forget_partners() -> None:
    """Drop every cached partner, here and in the other workers: call after any change to
    partners or capabilities (again once it is committed, where the caller can)."""
    with _cache_lock:
        _cache.clear()
    _changes.bump()


def _load(conn: Connection, row: Any) -> Partner:
    caps = conn.execute(_CAPABILITIES_OF, {"partner_id": row.id}).all()
    return Partner(
        id=row.id,
        role=row.role,
        name=row.name,
        status=row.status,
        agreement=dict(row.agreement),
        capabilities={cap.capability: cap.status for cap in caps},
    )


def api_role(role: str, caller: str) -> str:
    """The tenancy role of a caller of `role`'s API: its partners, or e.g. its network."""
    return role if caller == "partner" else f"{role}-{caller}"


def cached_partner(role: str, api_key: str) -> Partner | None:
    """The partner behind this key if this process authenticated it within CACHE_TTL_S."""
    cached = _cache.get((role, hash_key(api_key)))
    if cached is None or cached[0] <= time.monotonic() or cached[1] != _changes.read():
        return None
    return cached[2]


def authenticate(conn: Connection, role: str, api_key: str | None) -> Partner:
    """The partner behind an API key on this role's API, or 401."""
    if not api_key:
        raise Unauthenticated("Send the partner API key in the X-API-Key header")
    key = (role, hash_key(api_key))
    now = time.monotonic()
    generation = _changes.read()
    cached = _cache.get(key)
    if cached is not None and cached[0] > now and cached[1] == generation:
        partner = cached[2]
    else:
        row = conn.execute(_PARTNER_BY_KEY, {"key_hash": key[1], "role": role}).first()
        if row is None:
            raise Unauthenticated("The API key is not known to this API")
        partner = _load(conn, row)
        with _cache_lock:
            _cache[key] = (now + CACHE_TTL_S, generation, partner)
    if partner.status != PARTNER_ACTIVE:
        raise PartnerInactive(f"Partner {partner.id} is {partner.status}")
    return partner


def require_capability(partner: Partner, capability: str) -> None:
    status = partner.capabilities.get(capability)
    if status is None:
        raise CapabilityNotGranted(
            f"Capability {capability} is not in the agreement", capability=capability
        )
    if status != CAPABILITY_GRANTED:
        raise CapabilitySuspended(f"Capability {capability} is suspended", capability=capability)


def get_partner(conn: Connection, partner_id: str) -> Partner:
    row = conn.execute(select(partners).where(partners.c.id == partner_id)).first()
    if row is None:
        raise NotFound(f"No partner {partner_id}")
    return _load(conn, row)


def list_partners(conn: Connection, role: str | None = None) -> list[Partner]:
    query = select(partners).order_by(partners.c.id)
    if role:
        query = query.where(partners.c.role == role)
    return [_load(conn, row) for row in conn.execute(query).all()]


def create_partner(
    conn: Connection,
    *,
    secret_key: str,
    partner_id: str,
    role: str,
    name: str,
    agreement: dict[str, Any],
    granted: list[str],
    now: float,
    api_key: str | None = None,
) -> str:
    """Store a partner and its capabilities; return its API key (shown once)."""
    forget_partners()
    key = api_key or derive_api_key(secret_key, partner_id)
    conn.execute(
        partners.insert().values(
            id=partner_id,
            role=role,
            name=name,
            status=PARTNER_ACTIVE,
            key_hash=hash_key(key),
            key_hint=key[-4:],
            agreement=agreement,
            created_at=now,
        )
    )
    if granted:
        # One statement for all of them: every reset seeds every partner again.
        conn.execute(
            capabilities.insert(),
            [
                {
                    "partner_id": partner_id,
                    "capability": capability,
                    "status": CAPABILITY_GRANTED,
                    "changed_at": now,
                }
                for capability in granted
            ],
        )
    return key


def set_capability(
    conn: Connection, partner_id: str, capability: str, status: str, now: float
) -> None:
    """Grant or suspend one capability without touching the others."""
    forget_partners()
    updated = conn.execute(
        capabilities.update()
        .where(capabilities.c.partner_id == partner_id, capabilities.c.capability == capability)
        .values(status=status, changed_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(
            capabilities.insert().values(
                partner_id=partner_id, capability=capability, status=status, changed_at=now
            )
        )


def set_agreement(conn: Connection, partner_id: str, agreement: dict[str, Any]) -> None:
    forget_partners()
    conn.execute(partners.update().where(partners.c.id == partner_id).values(agreement=agreement))


def set_partner_status(conn: Connection, partner_id: str, status: str, now: float) -> None:
    forget_partners()
    values: dict[str, Any] = {"status": status}
    if status == PARTNER_TERMINATED:
        values["terminated_at"] = now
    conn.execute(partners.update().where(partners.c.id == partner_id).values(**values))


__all__ = [
    "BILLING_PLATFORM",
    "MNO_NETWORK",
    "MVNE_PLATFORM",
    "BILLING_PLATFORM",
    "peer_api_key",
    "care_agent_id",
    "wholesale_credential_id",
    "Partner",
    "PermissionDenied",
    "api_role",
    "authenticate",
    "cached_partner",
    "create_partner",
    "derive_api_key",
    "get_partner",
    "list_partners",
    "require_capability",
    "set_agreement",
    "set_capability",
    "set_partner_status",
]


# The peer credentials of the reference stack.
MVNE_PLATFORM = "mvne-platform"  # the MVNE, as the MNO's client
MNO_NETWORK = "mno-network"  # the MNO's network, as the MVNE's charging client
BILLING_PLATFORM = "billing-platform"  # the billing platform, as the tax engine's client
# The same platform as the payment gateway's merchant: an identity (and key) of its own,
# since a partner id belongs to one API.
BILLING_MERCHANT = "billing-merchant"


def wholesale_credential_id(partner_id: str) -> str:
    """The MNO wholesale API credential of one MVNO: a partner id belongs to one API, so its
    MVNE key does not open the MNO's."""
    return f"{partner_id}-wholesale"


def care_agent_id(mvne_partner_id: str) -> str:
    """The MVNE credential the care BPO's agents use for one MVNO partner's subscribers."""
    return f"care-agent-{mvne_partner_id}"


def peer_api_key(settings: Any, partner_id: str) -> str:
    """The key a fake presents to its peer: configured, else derived from the master key."""
    configured = {MVNE_PLATFORM: settings.mno_api_key, MNO_NETWORK: settings.network_api_key}
    return configured.get(partner_id) or derive_api_key(settings.secret_key, partner_id)
