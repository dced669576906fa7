"""`/__admin/faults` and `/__admin/scenarios`: switch faults on and off, apply packs."""

from __future__ import annotations

from typing import Any

from flask import current_app
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

from .admin import admin_api
from .faults import Sample, check_rule
from .http import Reply, RequestContext, created
from .problems import BadRequest
from .scenarios import apply_pack, find_pack, pack_paths, parse_pack


def _rule_json(ctx: RequestContext, rule: Any) -> dict[str, Any]:
    return {**rule.as_json(), "href": ctx.href(f"/faults/{rule.id}")}


@admin_api.operation("listFaults")
def list_faults(ctx: RequestContext) -> Reply:
    return Reply([_rule_json(ctx, rule) for rule in ctx.runtime.faults.in_force(ctx.conn)])


@admin_api.operation("addFault", write=True)
def add_fault(ctx: RequestContext) -> Reply:
    spec = check_rule(ctx.body, ctx.runtime.role_operations)
    rule = ctx.runtime.faults.add(ctx.conn, spec, source="api", now=ctx.now())
    # Other workers reload on the generation bump; this transaction commits first.
    ctx.after_commit(ctx.runtime.faults.changed)
    body = _rule_json(ctx, rule)
    return created(body)


@admin_api.operation("getFault")
def get_fault(ctx: RequestContext) -> Reply:
    return Reply(_rule_json(ctx, ctx.runtime.faults.get(ctx.conn, ctx.params["faultId"])))


@admin_api.operation("removeFault", write=True)
def remove_fault(ctx: RequestContext) -> Reply:
    ctx.runtime.faults.remove(ctx.conn, ctx.params["faultId"])
    ctx.after_commit(ctx.runtime.faults.changed)
    return Reply(None, 204)


@admin_api.operation("clearFaults", write=True)
def clear_faults(ctx: RequestContext) -> Reply:
    removed = ctx.runtime.faults.clear(ctx.conn, source=ctx.params.get("source"))
    ctx.after_commit(ctx.runtime.faults.changed)
    return Reply({"removed": removed})


def _pairs(values: list[str], what: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for value in values:
        name, _, content = value.partition(":")
        if not name:
            raise BadRequest(f"{what} takes name:value, got {value!r}", field=what)
        found.setdefault(name, []).append(content)
    return found


@admin_api.operation("explainFaults")
def explain_faults(ctx: RequestContext) -> Reply:
    params = ctx.params
    fields = {
        name.lower(): tuple(values)
        for name, values in _pairs(params.get("field", []), "field").items()
    }
    headers = {
        name: values[-1] for name, values in _pairs(params.get("header", []), "header").items()
    }
    operation = params.get("operation")
    if operation is None and params.get("method") and params.get("path"):
        operation = _operation_at(params["method"], params["path"])
    sample = Sample(
        role=params["role"],
        operation=operation,
        method=params.get("method"),
        path=params.get("path"),
        partner=params.get("partner"),
        headers=headers,
        fields=fields,
        event=params.get("event"),
    )
    return Reply(ctx.runtime.faults.explain(sample, ctx.now()))


def _operation_at(method: str, path: str) -> str | None:
    """The operationId a request to `path` would reach, so that a sample given as method
    and path is explained as the request itself would be matched."""
    try:
        endpoint, _ = current_app.url_map.bind("localhost").match(
            path.partition("?")[0], method=method
        )
    except (HTTPException, RoutingException):
        return None
    # Each contract's blueprint names its endpoints by operationId.
    return str(endpoint).rpartition(".")[2] or None


@admin_api.operation("listScenarios")
def list_scenarios(ctx: RequestContext) -> Reply:
    operations = ctx.runtime.role_operations
    return Reply([parse_pack(path, operations).summary() for path in pack_paths()])


@admin_api.operation("applyScenario")
def apply_scenario(ctx: RequestContext) -> Reply:
    pack = find_pack(ctx.params["scenarioName"], ctx.runtime.role_operations)
    result = apply_pack(ctx.runtime, pack, correlation_id=ctx.correlation_id)
    ctx.runtime.settle()
    return Reply(result)
