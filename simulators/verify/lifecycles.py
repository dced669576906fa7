"""The state machines a vendor's resources must move along, per role, as the contracts
describe them (each contract's state enum and its prose on who may follow whom).

A small table rather than a derivation: an OpenAPI enum lists the states but not the
edges. Keyed by the resource's TMF `@type`, then the field that holds its state. Roles
absent here (tax, payments, CAMARA) publish no lifecycle a partner can watch move.
"""

from __future__ import annotations

Machine = dict[str, tuple[str, ...]]

# TMF622 product orders at the MVNE and TMF641 service orders at the MNO.
_ORDER: Machine = {
    "acknowledged": ("inProgress", "held", "pending", "rejected", "cancelled", "failed"),
    "inProgress": ("completed", "failed", "partial", "held", "pending", "cancelled"),
    "held": ("inProgress", "pending", "cancelled", "failed"),
    "pending": ("inProgress", "held", "cancelled", "failed"),
    "completed": (),
    "failed": (),
    "partial": (),
    "cancelled": (),
    "rejected": (),
}
# TMF621 trouble tickets.
_TICKET: Machine = {
    "acknowledged": ("inProgress", "pending", "held", "rejected", "cancelled"),
    "inProgress": ("pending", "held", "resolved", "cancelled"),
    "pending": ("inProgress", "held", "cancelled"),
    "held": ("inProgress", "cancelled"),
    "resolved": ("closed", "inProgress"),
    "closed": (),
    "cancelled": (),
    "rejected": (),
}

LIFECYCLES: dict[str, dict[tuple[str, str], Machine]] = {
    "mvne": {
        ("ProductOrder", "state"): _ORDER,
        ("SimChange", "state"): {
            "acknowledged": ("inProgress", "failed"),
            "inProgress": ("completed", "failed"),
            "completed": (),
            "failed": (),
        },
        ("Product", "status"): {
            "active": ("suspended", "terminated"),
            "suspended": ("active", "terminated"),
            "terminated": (),
        },
    },
    "mno": {("ServiceOrder", "state"): _ORDER},
    "care": {("TroubleTicket", "status"): _TICKET},
    "fulfillment": {
        ("ProductionOrder", "state"): {
            "acknowledged": ("inProduction",),
            "inProduction": ("produced",),
            "produced": ("loading",),
            "loading": ("loaded", "rejected", "failed"),
            "loaded": (),
            "rejected": (),
            "failed": (),
        },
        # Carrier tracking tags: a parcel is scanned forward, a failed attempt goes out again
        # the next day, and returned (Exception), lost (Expired) and Delivered are final.
        ("Shipment", "status"): {
            "InfoReceived": ("InTransit", "Exception", "Expired"),
            "InTransit": ("OutForDelivery", "Delivered", "AttemptFail", "Exception", "Expired"),
            "OutForDelivery": ("Delivered", "AttemptFail", "Exception", "Expired"),
            "AttemptFail": ("OutForDelivery", "Delivered", "Exception", "Expired"),
            "Delivered": (),
            "Exception": (),
            "Expired": (),
        },
    },
    "billing": {
        ("Dispute", "state"): {
            "open": ("investigating", "resolved", "rejected"),
            "investigating": ("resolved", "rejected"),
            "resolved": (),
            "rejected": (),
        },
        ("BillRun", "state"): {
            "scheduled": ("running",),
            "running": ("completed",),
            "completed": (),
        },
    },
}


def reachable(machine: Machine, start: str) -> set[str]:
    """Every state `start` can lead to in any number of steps, itself included."""
    seen = {start}
    todo = [start]
    while todo:
        for following in machine.get(todo.pop(), ()):
            if following not in seen:
                seen.add(following)
                todo.append(following)
    return seen
