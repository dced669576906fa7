"""The picture at the head of the report: the six parties of the stack and each integration
point's handoffs between them, coloured by the point's status. Laid out here as boxes and
curves; `templates/diagram.svg.j2` draws them."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from .matrix import ROLE_TITLES
from .model import Readiness

WIDTH, HEIGHT = 1000, 600
BOX_W, BOX_H = 190, 64
SUB_W, SUB_H = 150, 34


@dataclass(frozen=True)
class Party:
    id: str
    title: str
    roles: tuple[str, ...]
    x: float  # centre
    y: float


# MVNE in the middle: nearly every handoff goes through it. MNO next to MVNO operations, as
# settlement and the CAMARA APIs run between them directly.
PARTIES = (
    Party("mvno", "MVNO operations", ("mvno",), 500, 80),
    Party("care", "Care BPO", ("care",), 150, 240),
    Party("mvne", "MVNE", ("mvne",), 500, 280),
    Party("mno", "MNO", ("mno",), 850, 240),
    Party("fulfillment", "SIM fulfillment", ("fulfillment",), 220, 450),
    Party("finance", "Billing, tax, payments", ("billing", "tax", "payments"), 760, 445),
)
FINANCE_H = 190


@dataclass(frozen=True)
class Box:
    x: float  # top left
    y: float
    w: float
    h: float
    title: str
    company: str
    party: str
    role: str = ""  # set on a role's own box inside a party of several roles

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass(frozen=True)
class Edge:
    point: str
    title: str
    status: str
    source: str
    target: str
    path: str
    label_x: float
    label_y: float
    anchor: str


@dataclass(frozen=True)
class Pill:
    point: str
    title: str
    status: str
    x: float
    y: float
    w: float


@dataclass(frozen=True)
class Diagram:
    width: int
    height: int
    parties: tuple[Box, ...]
    roles: tuple[Box, ...]
    edges: tuple[Edge, ...]
    pills: tuple[Pill, ...]


def layout(readiness: Readiness) -> Diagram:
    companies = readiness.matrix.parties
    parties, role_boxes = [], {}
    for party in PARTIES:
        if len(party.roles) == 1:
            (role,) = party.roles
            box = Box(
                party.x - BOX_W / 2,
                party.y - BOX_H / 2,
                BOX_W,
                BOX_H,
                party.title,
                companies.get(role, ""),
                party.id,
            )
            parties.append(box)
            role_boxes[role] = box
            continue
        top = party.y - FINANCE_H / 2
        parties.append(Box(party.x - 105, top, 210, FINANCE_H, party.title, "", party.id))
        for index, role in enumerate(party.roles):
            role_boxes[role] = Box(
                party.x - SUB_W / 2,
                top + 14 + index * (SUB_H + 16),
                SUB_W,
                SUB_H,
                ROLE_TITLES[role],
                companies.get(role, ""),
                party.id,
                role,
            )
    party_of = {role: party.id for party in PARTIES for role in party.roles}

    handoffs: list[tuple[str, str, str, str, str]] = []  # point, title, status, from, to
    pills: list[Pill] = []
    for point_readiness in readiness.points:
        point = point_readiness.point
        if point.spans_every_party or not point.between:
            width = 24 + 7 * len(point.id)
            pills.append(Pill(point.id, point.title, point_readiness.status, 20, 0, width))
            continue
        for source, target in point.between:
            handoffs.append((point.id, point.title, point_readiness.status, source, target))
    pills = [
        Pill(pill.point, pill.title, pill.status, pill.x, 44 + 30 * index, pill.w)
        for index, pill in enumerate(pills)
    ]

    # Handoffs between the same two roles are drawn side by side, bowed apart.
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, (_point, _title, _status, source, target) in enumerate(handoffs):
        a, b = sorted((source, target))
        groups[(a, b)].append(index)
    edges: list[Edge | None] = [None] * len(handoffs)
    inside = 0
    for (a, b), members in groups.items():
        for rank, index in enumerate(members):
            point_id, title, status, source, target = handoffs[index]
            if party_of[a] == party_of[b] and a != b:
                path, label = _arc_inside(role_boxes[source], role_boxes[target], inside)
                inside += 1
            else:
                offset = (rank - (len(members) - 1) / 2) * 36
                path, label = _curve(role_boxes[a], role_boxes[b], offset, source == a)
            edges[index] = Edge(point_id, title, status, source, target, path, *label)
    return Diagram(
        WIDTH,
        HEIGHT,
        tuple(parties),
        tuple(box for box in role_boxes.values() if box.role),
        tuple(edge for edge in edges if edge is not None),
        tuple(pills),
    )


def _exit(box: Box, x: float, y: float, dx: float, dy: float) -> tuple[float, float]:
    """Where a ray from (x, y) inside `box` in direction (dx, dy) leaves it."""
    ts = []
    if dx:
        ts.append(((box.x + (box.w if dx > 0 else 0)) - x) / dx)
    if dy:
        ts.append(((box.y + (box.h if dy > 0 else 0)) - y) / dy)
    t = min(t for t in ts if t >= 0) if ts else 0
    return x + dx * t, y + dy * t


def _curve(a: Box, b: Box, offset: float, forward: bool) -> tuple[str, tuple[float, float, str]]:
    dx, dy = b.cx - a.cx, b.cy - a.cy
    length = math.hypot(dx, dy) or 1
    ux, uy = dx / length, dy / length
    nx, ny = -uy, ux
    shift = offset * 0.45
    start = _exit(a, a.cx + nx * shift, a.cy + ny * shift, ux, uy)
    end = _exit(b, b.cx + nx * shift, b.cy + ny * shift, -ux, -uy)
    mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
    cx, cy = mx + nx * offset, my + ny * offset
    if not forward:
        start, end = end, start
    # The label sits on the curve's middle (B(1/2) of the quadratic), on its outer side:
    # above or below a level curve, beside a steep one.
    lx = 0.25 * start[0] + 0.5 * cx + 0.25 * end[0]
    ly = 0.25 * start[1] + 0.5 * cy + 0.25 * end[1] + 4
    sx, sy = nx * offset, ny * offset
    anchor = "middle"
    if abs(offset) >= 1 and abs(sy) > abs(sx):
        ly += 12 if sy > 0 else -10
    elif abs(offset) >= 1:
        anchor = "start" if sx > 0 else "end"
        lx += 6 if sx > 0 else -6
    path = f"M{start[0]:.1f},{start[1]:.1f} Q{cx:.1f},{cy:.1f} {end[0]:.1f},{end[1]:.1f}"
    return path, (round(lx, 1), round(ly, 1), anchor)


def _arc_inside(source: Box, target: Box, index: int) -> tuple[str, tuple[float, float, str]]:
    """A handoff between two roles of one party: an arc beside their boxes, alternating
    sides so two of them do not overlap."""
    right = index % 2 == 1
    x = source.x + source.w if right else source.x
    bulge = (46 + 18 * (index // 2)) * (1 if right else -1)
    y1, y2 = source.cy, target.cy
    path = f"M{x:.1f},{y1:.1f} Q{x + bulge:.1f},{(y1 + y2) / 2:.1f} {x:.1f},{y2:.1f}"
    lx = x + bulge / 2 + (6 if right else -6)
    return path, (round(lx, 1), round((y1 + y2) / 2 + 4, 1), "start" if right else "end")
