"""Fault rules: match -> effect, with a dosage; kept in the store, read by every worker.

A rule says which requests (or callbacks) it concerns, what happens to them and
how often. Rules are data: they arrive through `/__admin/faults`, the CLI or a
scenario pack, live in the store (so every gunicorn worker applies the same
ones) and are cached per process until the shared generation file says a rule
changed. Counting (first N, every Nth) and the seeded coin of `probability` use
a per-rule match counter kept in the store, so a run is reproducible whatever
worker serves each request.

This module holds no HTTP: `fault_effects` applies what it decides.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from statistics import NormalDist
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Float,
    Integer,
    String,
    bindparam,
    select,
    update,
)

from .clock import isoformat, parse_iso
from .generation import Generation
from .problems import DomainError, NotFound
from .store import CORE_ROLE, Store, role_table

# Effects a rule can have, by where they act.
TRANSPORT_EFFECTS = ("latency", "timeout", "reset", "empty", "malformed", "wrongContentType")
STATUS_EFFECT = "status"
DATA_EFFECT = "data"
CALLBACK_EFFECTS = (
    "duplicate",
    "outOfOrder",
    "replay",
    "delay",
    "badSignature",
    "missingSignature",
    "storm",
    "noBackoff",
)
# Effects that decide the answer: the first rule of these that fires wins.
ANSWERING_EFFECTS = ("timeout", "reset", "empty", STATUS_EFFECT)
SHAPING_EFFECTS = ("malformed", "wrongContentType")

# Data faults: the fake named here applies them inside its domain rules.
DATA_FAULTS: dict[str, str] = {
    "ICCID_UNMAPPED": "the MVNE answers as if the ICCID had never been mapped to the partner",
    "ORDER_STUCK": "the MNO accepts the service order and never moves it past `state`",
    "ORDER_ITEM_FAILED": (
        "the MNO fails the matching order items (only line `line` of each, if set),"
        " so multi-line orders go partial"
    ),
    "DUPLICATE_USAGE": "the network delivers each matching usage record twice, to online "
    "charging and to wholesale mediation",
    "LATE_USAGE": "the network delivers matching usage records `delaySeconds` after they "
    "happened (after their day closed)",
    "MISSING_STOP": "the network never sends the STOP record of matching data sessions",
    "WRONG_UNIT": "the MNO's charging feed carries matching data in KB and voice in seconds "
    "under the contract's MB and minutes",
    "TAX_JURISDICTION_NOT_FOUND": "the tax engine quotes no tax for one level (`level`, city)",
    "TAX_JURISDICTION_DEFAULTED": "the tax engine silently uses the ZIP code's jurisdiction",
    "TAX_ANNEXATION_NOT_LOADED": "the tax engine ignores annexations: the area keeps its old taxes",
    "TAX_E911_WRONG_DISTRICT": "the tax engine sources the E911 fee to the adjacent district",
    "SLA_CATEGORY_NOT_COVERED": "the MNO takes the ticket; its SLA does not cover the category",
    "DIAGNOSTIC_SCOPE_MISSING": "the care agent's token lacks the diagnostic scope",
    "RESTORE_ORDER_LOST": "billing records a payment's restore order but it never reaches the MVNE",
    "SUSPENSION_NOT_SENT": "billing records a dunning suspension but it never reaches the MVNE",
    "MAPPING_NOT_SENT": "fulfillment ships the SIM but never sends its ICCID mapping to the MVNE",
    "MAPPING_WRONG_ICCID": "fulfillment maps the neighbouring ICCID instead of the one shipped",
    "MAPPING_SENT_TWICE": "fulfillment sends the ICCID mapping twice",
    "MAPPING_LATE": "fulfillment maps the ICCID `delaySeconds` (1 day) after the delivery",
    "VENDOR_FILE_OFF_BY_ONE": "the SIM vendor's ICCIDs run one ahead from data row `row` (1)",
    "VENDOR_FILE_NO_CHECK_DIGIT": "the SIM vendor drops the ICCID check digit from row `row` on",
    "VENDOR_FILE_LONG_IMSI": "the SIM vendor writes 16-digit IMSIs from row `row` on",
    "VENDOR_FILE_ROW_COUNT": "the SIM vendor's file holds one row more than its Quantity",
    "VENDOR_FILE_DUPLICATE_BATCH": "the SIM vendor reuses the partner's last loaded batch number",
    "CARRIER_ATTEMPT_FAIL": "the carrier's first `count` (1) delivery attempts fail; 3 return it",
    "CARRIER_EXCEPTION": "the parcel is damaged in transit and returned to sender",
    "CARRIER_EXPIRED": "the carrier stops scanning the parcel after pickup: Expired, SIM lost",
}

CALLBACKS_ROLE = "callbacks"
# Callback effects acting when an event is queued, and when a delivery is sent.
PUBLISH_EFFECTS = ("duplicate", "outOfOrder", "replay", "delay", "storm")
SEND_EFFECTS = ("badSignature", "missingSignature", "noBackoff")
MAX_STORM_DELIVERIES = 100_000

fault_table = role_table(
    CORE_ROLE,
    "fault_rule",
    Column("id", String(64), primary_key=True),
    Column("priority", Integer, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("source", String(120), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("matched", Integer, nullable=False, default=0),
    Column("fired", Integer, nullable=False, default=0),
)


class FaultRuleNotFound(NotFound):
    code = "FAULT_RULE_NOT_FOUND"
    title = "No such fault rule"


class FaultRuleInvalid(DomainError):
    code = "FAULT_RULE_INVALID"
    status = 422
    title = "The fault rule cannot be applied"


class FaultRuleExists(DomainError):
    code = "FAULT_RULE_EXISTS"
    status = 409
    title = "A fault rule with this id exists"


@dataclass(frozen=True)
class Sample:
    """What a rule is matched against: one request a fake serves (or one callback)."""

    role: str
    operation: str | None = None
    method: str | None = None
    path: str | None = None
    partner: str | None = None
    headers: Any = field(default_factory=dict)  # any mapping, e.g. werkzeug's Headers
    # Lower-cased field name -> values found in the path, query and body.
    fields: Mapping[str, tuple[str, ...]] | Callable[[], Mapping[str, tuple[str, ...]]] = field(
        default_factory=dict
    )
    event: str | None = None

    def field_values(self) -> Mapping[str, tuple[str, ...]]:
        if callable(self.fields):
            object.__setattr__(self, "fields", self.fields())
        assert not callable(self.fields)
        return self.fields


@dataclass(frozen=True)
class _Identity:
    """The part of a rule's match that a request's identity decides, as sets looked up in
    one step: with many rules on a role every request of that role tries them all."""

    role: str | None
    operations: frozenset[str] | None
    partners: frozenset[str] | None
    events: frozenset[str] | None
    methods: frozenset[str] | None
    # Path, headers or fields to look at as well, once the identity fits.
    content: bool


@dataclass(frozen=True)
class FaultRule:
    id: str
    priority: int
    spec: dict[str, Any]
    source: str
    created_at: float
    matched: int = 0
    fired: int = 0

    # Read on every request a rule is tried on: worked out once per rule.
    @cached_property
    def match(self) -> dict[str, Any]:
        return dict(self.spec.get("match") or {})

    @cached_property
    def effect(self) -> dict[str, Any]:
        return dict(self.spec["effect"])

    @cached_property
    def dosage(self) -> dict[str, Any]:
        return dict(self.spec.get("dosage") or {})

    @cached_property
    def effect_type(self) -> str:
        return str(self.spec["effect"]["type"])

    @cached_property
    def identity(self) -> _Identity:
        match = self.match

        def allowed(key: str) -> frozenset[str] | None:
            return frozenset(_as_tuple(match[key])) if key in match else None

        methods = allowed("method")
        return _Identity(
            role=match.get("role"),
            operations=allowed("operation"),
            partners=allowed("partner"),
            events=allowed("event"),
            methods=None if methods is None else frozenset(m.upper() for m in methods),
            content=bool("path" in match or match.get("headers") or match.get("fields")),
        )

    def matches(self, sample: Sample) -> bool:
        """`not mismatches(sample)`, without composing the reasons: the request path."""
        identity = self.identity
        if identity.role is not None and identity.role != sample.role:
            return False
        if identity.operations is not None and sample.operation not in identity.operations:
            return False
        if identity.partners is not None and sample.partner not in identity.partners:
            return False
        if identity.events is not None and sample.event not in identity.events:
            return False
        if identity.methods is not None and (sample.method or "") not in identity.methods:
            return False
        return not identity.content or not self._content_mismatches(sample)

    def mismatches(self, sample: Sample) -> list[str]:
        """Why this rule does not concern the sample; empty when it does."""
        match = self.match
        reasons: list[str] = []
        if match.get("role") not in (None, sample.role):
            reasons.append(f"role is {sample.role}, the rule wants {match.get('role')}")
        if "operation" in match:
            _differs(reasons, "operation", match["operation"], sample.operation)
        if "method" in match:
            methods = [m.upper() for m in _as_tuple(match["method"])]
            _differs(reasons, "method", methods, sample.method)
        if "event" in match:
            _differs(reasons, "event", match["event"], sample.event)
        if "partner" in match:
            _differs(reasons, "partner", match["partner"], sample.partner)
        return reasons + self._content_mismatches(sample)

    def _content_mismatches(self, sample: Sample) -> list[str]:
        """Why the sample's path, headers or fields do not fit the rule."""
        match = self.match
        reasons: list[str] = []
        if "path" in match and not (
            sample.path
            and any(fnmatch.fnmatchcase(sample.path, p) for p in _as_tuple(match["path"]))
        ):
            reasons.append(
                f"path {sample.path or '(none)'} is not {_says(_as_tuple(match['path']))}"
            )
        if match.get("headers"):
            lowered = {name.lower(): value for name, value in sample.headers.items()}
            for name, wanted in match["headers"].items():
                _differs(reasons, f"header {name}", wanted, lowered.get(name.lower()))
        if match.get("fields"):
            found = sample.field_values()
            for name, wanted in match["fields"].items():
                values = found.get(name.lower(), ())
                allowed = _as_tuple(wanted)
                if not any(value in allowed for value in values):
                    seen = ", ".join(values) if values else "absent"
                    reasons.append(f"field {name} is {seen}, the rule wants {_says(allowed)}")
        return reasons

    def outside_window(self, now: float) -> str | None:
        window = self.dosage.get("window") or {}
        start = _window_edge(window, "from", "fromSeconds", self.created_at)
        end = _window_edge(window, "until", "untilSeconds", self.created_at)
        if start is not None and now < start:
            return f"its window opens at {isoformat(start)}"
        if end is not None and now >= end:
            return f"its window closed at {isoformat(end)}"
        return None

    def fires_on(self, count: int) -> bool:
        """Whether the `count`-th matching request (1-based) gets the effect."""
        dosage = self.dosage
        if "firstN" in dosage and count > int(dosage["firstN"]):
            return False
        if "everyNth" in dosage and count % int(dosage["everyNth"]) != 0:
            return False
        if "probability" in dosage:
            return seeded_coin(int(dosage.get("seed", 0)), self.id, count) < float(
                dosage["probability"]
            )
        return True

    @property
    def counted(self) -> bool:
        return any(key in self.dosage for key in ("firstN", "everyNth", "probability"))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "priority": self.priority,
            **{k: v for k, v in self.spec.items() if k not in ("id", "priority")},
            "source": self.source,
            "createdAt": isoformat(self.created_at),
            "matched": self.matched,
            "fired": self.fired,
        }


def seeded_coin(seed: int, rule_id: str, count: int) -> float:
    """A number in [0, 1) fixed by (seed, rule, match number): the same run, the same faults."""
    digest = hashlib.blake2b(f"{seed}:{rule_id}:{count}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _as_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return (str(value),)


def _differs(reasons: list[str], name: str, wanted: Any, actual: str | None) -> None:
    allowed = _as_tuple(wanted)
    if actual is None or actual not in allowed:
        reasons.append(f"{name} is {actual or '(none)'}, the rule wants {_says(allowed)}")


def _says(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else "one of " + ", ".join(values)


def _window_edge(
    window: dict[str, Any], iso_key: str, offset_key: str, created: float
) -> float | None:
    if iso_key in window:
        return parse_iso(str(window[iso_key]))
    if offset_key in window:
        return created + float(window[offset_key])
    return None


def fields_of(
    path_args: Mapping[str, Any], query: Mapping[str, Iterable[str]], body: Any
) -> dict[str, tuple[str, ...]]:
    """Every named scalar of a request, by lower-cased name, for `match.fields`.

    TMF bodies carry identifiers as characteristics (`{"name": "ICCID", "value": ...}`),
    so a name/value pair counts as a field of that name too.
    """
    found: dict[str, list[str]] = {}

    def add(name: str, value: Any) -> None:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            found.setdefault(name.lower(), []).append(str(value))

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            name, value = node.get("name"), node.get("value")
            if isinstance(name, str) and value is not None:
                add(name, value)
            for key, child in node.items():
                add(str(key), child)
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for key, value in path_args.items():
        add(key, value)
    for key, values in query.items():
        for value in values:
            add(key, value)
    walk(body)
    return {name: tuple(values) for name, values in found.items()}


# --- the engine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Firing:
    """One rule that fired on one request, and what it does."""

    rule: FaultRule

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def effect(self) -> dict[str, Any]:
        return self.rule.effect

    @property
    def kind(self) -> str:
        return self.rule.effect_type

    def targets(self, field_name: str) -> tuple[str, ...]:
        """The values of `field_name` the rule matched on; empty means "all of them"."""
        fields = self.rule.match.get("fields") or {}
        for name, wanted in fields.items():
            if name.lower() == field_name.lower():
                return _as_tuple(wanted)
        return ()


@dataclass
class Decision:
    """Everything the rules decided for one request."""

    latency_ms: float = 0.0
    answer: Firing | None = None  # status, timeout, reset, empty
    shaping: Firing | None = None  # malformed, wrongContentType
    data: list[Firing] = field(default_factory=list)
    callbacks: list[Firing] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)

    def data_fault(self, name: str) -> Firing | None:
        return next((f for f in self.data if f.effect.get("fault") == name), None)


NO_FAULTS = Decision()


class RuleSet:
    """The rules of one generation, indexed by role and operation so a request only looks
    at the rules that can concern it."""

    def __init__(self, rules: list[FaultRule]) -> None:
        self.rules = sorted(rules, key=_order)
        by_role: dict[str | None, list[FaultRule]] = {}
        for rule in self.rules:
            by_role.setdefault(rule.identity.role, []).append(rule)
        anywhere = by_role.pop(None, [])
        self._anywhere = anywhere
        self._by_role = {
            role: sorted(own + anywhere, key=_order) if role != CALLBACKS_ROLE else own
            for role, own in by_role.items()
        }
        self._by_operation: dict[tuple[str, str | None], list[FaultRule]] = {}

    def candidates(self, role: str, operation: str | None = None) -> list[FaultRule]:
        """The rules that may concern a request of `role` (and of `operation`, if given),
        in the order they are tried. Callback rules always name the `callbacks` role (see
        `check_rule`)."""
        found = self._by_role.get(role)
        if found is None:
            found = [] if role == CALLBACKS_ROLE else self._anywhere
        if operation is None or not found:
            return found
        key = (role, operation)
        narrowed = self._by_operation.get(key)
        if narrowed is None:
            # Worked out on a role's first request of each operation: a contract has tens.
            narrowed = self._by_operation[key] = [
                rule
                for rule in found
                if rule.identity.operations is None or operation in rule.identity.operations
            ]
        return narrowed


def _order(rule: FaultRule) -> tuple[int, float, str]:
    return (rule.priority, rule.created_at, rule.id)


# Run on every request a rule matches: built once (see simulators/core/store.py).
_ALL_RULES = select(fault_table)
# Counted, then read back in the same transaction: with RETURNING the statement could not
# take the store's direct SQLite path, and cost more than the two.
_COUNT_MATCH = (
    update(fault_table)
    .where(fault_table.c.id == bindparam("rule_id"))
    .values(matched=fault_table.c.matched + 1)
)
_MATCHED = select(fault_table.c.matched).where(fault_table.c.id == bindparam("rule_id"))
_COUNT_FIRING = (
    update(fault_table)
    .where(fault_table.c.id == bindparam("rule_id"))
    .values(fired=fault_table.c.fired + 1)
)


class FaultEngine:
    def __init__(self, store: Store, generation: Generation) -> None:
        self.store = store
        self.generation = generation
        self._cached: tuple[int, RuleSet] | None = None
        self._lock = threading.Lock()

    # --- reading -------------------------------------------------------------------------

    def rule_set(self) -> RuleSet:
        current = self.generation.read()
        cached = self._cached
        if cached is not None and cached[0] == current:
            return cached[1]
        with self._lock, self.store.read() as conn:
            rules = [_rule_from_row(row) for row in conn.execute(_ALL_RULES).all()]
        rule_set = RuleSet(rules)
        self._cached = (current, rule_set)
        return rule_set

    def has_rules(self) -> bool:
        return bool(self.rule_set().rules)

    def in_force(self, conn: Connection) -> list[FaultRule]:
        rows = conn.execute(select(fault_table)).all()
        return RuleSet([_rule_from_row(row) for row in rows]).rules

    def get(self, conn: Connection, rule_id: str) -> FaultRule:
        row = conn.execute(select(fault_table).where(fault_table.c.id == rule_id)).first()
        if row is None:
            raise FaultRuleNotFound(f"No fault rule {rule_id}")
        return _rule_from_row(row)

    # --- changing ------------------------------------------------------------------------

    def add(self, conn: Connection, spec: dict[str, Any], *, source: str, now: float) -> FaultRule:
        """Store one rule already checked by `check_rule`; the caller bumps the generation
        after its transaction commits (`changed`)."""
        # Bodies carry exact decimals; a rule keeps plain JSON numbers.
        plain = json.loads(json.dumps(spec, default=float))
        stored = {k: v for k, v in plain.items() if k not in ("id", "priority")}
        rule_id = str(spec.get("id") or self._id_of(conn, plain))
        if conn.execute(select(fault_table.c.id).where(fault_table.c.id == rule_id)).first():
            raise FaultRuleExists(f"Fault rule {rule_id} exists; delete it first", field="id")
        priority = int(spec.get("priority", 100))
        conn.execute(
            fault_table.insert().values(
                id=rule_id,
                priority=priority,
                spec=stored,
                source=source,
                created_at=now,
                matched=0,
                fired=0,
            )
        )
        return FaultRule(rule_id, priority, stored, source, now)

    def _id_of(self, conn: Connection, plain: dict[str, Any]) -> str:
        """An id for a rule given none, derived from what the rule says: a seeded
        probability draws on the rule's id, so the same rules added in the same order give
        the same faults run after run. The same rule added again takes the next number."""
        digest = hashlib.blake2b(
            json.dumps(plain, sort_keys=True).encode(), digest_size=6
        ).hexdigest()
        base = f"fault-{digest}"
        taken = set(
            conn.execute(
                select(fault_table.c.id).where(fault_table.c.id.startswith(base, autoescape=True))
            ).scalars()
        )
        rule_id, number = base, 1
        while rule_id in taken:
            number += 1
            rule_id = f"{base}-{number}"
        return rule_id

    def remove(self, conn: Connection, rule_id: str) -> None:
        if conn.execute(fault_table.delete().where(fault_table.c.id == rule_id)).rowcount == 0:
            raise FaultRuleNotFound(f"No fault rule {rule_id}")

    def clear(self, conn: Connection, source: str | None = None) -> int:
        statement = fault_table.delete()
        if source is not None:
            statement = statement.where(fault_table.c.source == source)
        return conn.execute(statement).rowcount

    def changed(self) -> None:
        """Tell every worker to reload its rules (call after the change committed)."""
        self.generation.bump()

    # --- deciding ------------------------------------------------------------------------

    def decide(
        self,
        sample: Sample,
        now: Callable[[], float],
        kinds: tuple[str, ...] | None = None,
        conn: Connection | None = None,
    ) -> Decision:
        """Which rules fire on this request (only rules of `kinds`, if given), counting
        matches in the store: in `conn` when the caller is inside a write transaction
        (a second writer on this thread would wait for the first), else in its own."""
        candidates = self.rule_set().candidates(sample.role, sample.operation)
        if not candidates:
            return NO_FAULTS
        decision = Decision()
        moment: float | None = None
        for rule in candidates:
            kind = rule.effect_type
            if kinds is not None and kind not in kinds:
                continue
            if kind in ANSWERING_EFFECTS and decision.answer is not None:
                continue
            if kind in SHAPING_EFFECTS and decision.shaping is not None:
                continue
            if not rule.matches(sample):
                continue
            if moment is None:
                moment = now()
            if rule.outside_window(moment) is not None:
                continue
            count = self._count(rule, conn)
            if count is None or not rule.fires_on(count):
                continue
            firing = Firing(rule)
            decision.fired.append(rule.id)
            if kind == "latency":
                decision.latency_ms += latency_ms(rule, count)
            elif kind in ANSWERING_EFFECTS:
                decision.answer = firing
            elif kind in SHAPING_EFFECTS:
                decision.shaping = firing
            elif kind == DATA_EFFECT:
                decision.data.append(firing)
            else:
                decision.callbacks.append(firing)
        return decision

    def _count(self, rule: FaultRule, conn: Connection | None = None) -> int | None:
        """Count one match in the store; its number, or None if the rule is gone."""
        if conn is None:
            with self.store.write() as own:
                return self._count(rule, own)
        if conn.execute(_COUNT_MATCH, {"rule_id": rule.id}).rowcount == 0:
            return None  # the rule is gone
        count = int(conn.execute(_MATCHED, {"rule_id": rule.id}).scalar_one())
        if rule.fires_on(count):
            conn.execute(_COUNT_FIRING, {"rule_id": rule.id})
        return count

    def explain(self, sample: Sample, now: float) -> list[dict[str, Any]]:
        """For a sample request: per rule, would it match, and if not, why not. Counts nothing."""
        explained = []
        for rule in self.rule_set().rules:
            reasons = rule.mismatches(sample)
            window = rule.outside_window(now)
            if window:
                reasons.append(f"the simulated time is outside the rule's window: {window}")
            explained.append(
                {
                    "id": rule.id,
                    "priority": rule.priority,
                    "effect": rule.effect_type,
                    "matches": not reasons,
                    "reasons": reasons,
                    "dosage": rule.dosage or None,
                }
            )
        return explained


def latency_ms(rule: FaultRule, count: int) -> float:
    """Draw the `count`-th delay from the rule's distribution: seeded, so reproducible."""
    effect = rule.effect
    distribution = effect.get("distribution", "fixed")
    coin = seeded_coin(int(rule.dosage.get("seed", 0)), rule.id + ":latency", count)
    if distribution == "fixed":
        return float(effect["ms"])
    if distribution == "uniform":
        low, high = float(effect["minMs"]), float(effect["maxMs"])
        return low + (high - low) * coin
    # lognormal: median * exp(sigma * z), z standard normal from the coin (inverse CDF).

    z = NormalDist().inv_cdf(min(max(coin, 1e-9), 1 - 1e-9))
    return float(effect["medianMs"]) * math.exp(float(effect["sigma"]) * z)


def _rule_from_row(row: Any) -> FaultRule:
    return FaultRule(
        id=row.id,
        priority=row.priority,
        spec=dict(row.spec),
        source=row.source,
        created_at=row.created_at,
        matched=row.matched,
        fired=row.fired,
    )


# --- checking a rule before it is stored ---------------------------------------------------


_EFFECT_NEEDS: dict[str, tuple[str, ...]] = {
    "fixed": ("ms",),
    "uniform": ("minMs", "maxMs"),
    "lognormal": ("medianMs", "sigma"),
}


def check_rule(spec: dict[str, Any], operations: Mapping[str, set[str]]) -> dict[str, Any]:
    """What the contract's schema cannot say about a rule; returns it normalised.

    `operations` maps each faultable role to its contract's operationIds, so a typo in
    `match.operation` is refused instead of silently never matching.
    """
    spec = dict(spec)
    match = dict(spec.get("match") or {})
    effect = dict(spec["effect"])
    kind = effect["type"]

    def invalid(message: str, where: str) -> FaultRuleInvalid:
        return FaultRuleInvalid(message, field=where)

    role = match.get("role")
    if kind in CALLBACK_EFFECTS:
        if role not in (None, CALLBACKS_ROLE):
            raise invalid(
                f"effect {kind} acts on callbacks: match.role must be callbacks", "match.role"
            )
        match["role"] = CALLBACKS_ROLE
        for name in ("operation", "method", "path", "headers", "fields"):
            if name in match:
                raise invalid(
                    f"a callback rule matches on role, partner and event, not {name}",
                    f"match.{name}",
                )
    elif role == CALLBACKS_ROLE:
        raise invalid(f"effect {kind} acts on requests, not callbacks", "effect.type")
    elif "event" in match:
        raise invalid("match.event only applies to callback effects", "match.event")
    if role is not None and role != CALLBACKS_ROLE and role not in operations:
        raise invalid(f"role {role} is not served by this stack", "match.role")
    if "operation" in match:
        known = operations.get(role, set()) if role else set().union(*operations.values())
        for operation in _as_tuple(match["operation"]):
            if operation not in known:
                where = f"the {role} contract" if role else "any contract"
                raise invalid(f"operation {operation} is not in {where}", "match.operation")
    if kind == "latency":
        distribution = effect.setdefault("distribution", "fixed")
        for name in _EFFECT_NEEDS[distribution]:
            if name not in effect:
                raise invalid(f"a {distribution} latency needs effect.{name}", f"effect.{name}")
        if distribution == "uniform" and effect["minMs"] > effect["maxMs"]:
            raise invalid("effect.minMs is above effect.maxMs", "effect.minMs")
    if kind == STATUS_EFFECT and "status" not in effect:
        raise invalid("a status effect needs effect.status", "effect.status")
    if kind == DATA_EFFECT:
        if "fault" not in effect:
            raise invalid("a data effect needs effect.fault", "effect.fault")
        if effect["fault"] == "ORDER_STUCK" and "state" not in effect:
            effect["state"] = "inProgress"
    if kind == "storm":
        for name in ("perSecond", "seconds"):
            if name not in effect:
                raise invalid(f"a storm needs effect.{name}", f"effect.{name}")
        if effect["perSecond"] * effect["seconds"] > MAX_STORM_DELIVERIES:
            raise invalid(
                f"a storm may send at most {MAX_STORM_DELIVERIES} deliveries per event",
                "effect.seconds",
            )
    window = (spec.get("dosage") or {}).get("window") or {}
    if "from" in window and "fromSeconds" in window:
        raise invalid("give window.from or window.fromSeconds, not both", "dosage.window")
    if "until" in window and "untilSeconds" in window:
        raise invalid("give window.until or window.untilSeconds, not both", "dosage.window")
    spec["match"] = match
    spec["effect"] = effect
    return spec
