"""Composes the fakes into one WSGI app: each role under its prefix, admin under /__admin."""

from __future__ import annotations

import gc
from types import ModuleType
from typing import Any

from flask import Flask, Response, jsonify
from flask_swagger_ui import get_swaggerui_blueprint

from . import billing, care, fulfillment, mno, mvne, payments, tax
from .core import (
    fault_admin,  # noqa: F401 - registers the fault and scenario admin operations
    ratelimit,
)
from .core.admin import admin_api, admin_authenticator, seed_all
from .core.config import Settings
from .core.fault_effects import TransportFaults
from .core.http import RoleApi, install_error_handlers
from .core.runtime import Runtime
from .core.sink_api import sink_api

# Order matters: a role's seeder may rely on the ones before it.
ROLES: dict[str, ModuleType] = {
    "mno": mno,
    "mvne": mvne,
    "tax": tax,
    "care": care,
    "payments": payments,
    "billing": billing,
    "fulfillment": fulfillment,
}


def extra_apis(module: ModuleType) -> dict[str, RoleApi]:
    """A role's APIs besides its main one, by base path."""
    found: dict[str, RoleApi] = getattr(module, "EXTRA_APIS", {})
    return found


def operations_of(module: ModuleType) -> set[str]:
    """Every operationId a role serves, over all its APIs (what fault rules may name)."""
    apis = [module.api, *extra_apis(module).values()]
    return {operation for api in apis for operation in api.contract().operations}


def _serve_contract(app: Flask, name: str, prefix: str, api: Any) -> None:
    contract = api.contract()

    def openapi() -> Response:
        return jsonify(contract.public_document(prefix))

    app.add_url_rule(f"{prefix}/openapi.json", f"{name}_openapi", openapi, methods=["GET"])
    app.register_blueprint(
        get_swaggerui_blueprint(
            f"{prefix}/docs",
            f"{prefix}/openapi.json",
            config={"app_name": f"Handoff {name.upper()} contract"},
            blueprint_name=f"{name}_docs",
        )
    )


def freeze_startup_objects() -> None:
    """Leave what a built stack holds for its whole life out of garbage collections.

    A full collection walks every object alive, and a built stack holds a few hundred
    thousand that live as long as the process (contracts and their compiled validators,
    statements, routes): each full collection took tens of milliseconds, inside whichever
    request set it off. Frozen (`gc.freeze`, meant for long-running processes), a
    collection walks only what came after. Called once the stack is built, by a server's
    worker and by the step library's in-process stack; never per test, where stacks come
    and go."""
    gc.freeze()


def create_app(settings: Settings, runtime: Runtime | None = None) -> Flask:
    """Build the stack; seed reference data into an empty store."""
    runtime = runtime or Runtime(settings)
    app = Flask("handoff")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["handoff"] = runtime
    install_error_handlers(app, runtime)
    ratelimit.install(app)
    for name, module in ROLES.items():
        module.install(runtime)
        runtime.role_operations[name] = operations_of(module)
        app.register_blueprint(module.api.blueprint(runtime))
        _serve_contract(app, name, f"/{name}", module.api)
        # A role's further APIs (the MNO's CAMARA APIs): same role, faults and journal, each
        # under its own base path with its own contract.
        for prefix, extra in extra_apis(module).items():
            app.register_blueprint(extra.blueprint(runtime, prefix=prefix))
            _serve_contract(app, extra.contract_name, prefix, extra)
    app.register_blueprint(admin_api.blueprint(runtime, admin_authenticator, prefix="/__admin"))
    _serve_contract(app, "admin", "/__admin", admin_api)
    # The built-in partner endpoint: anyone may deliver to it, as to a real partner's.
    app.register_blueprint(sink_api.blueprint(runtime, prefix="/__sink"))
    _serve_contract(app, "sink", "/__sink", sink_api)
    with runtime.store.write() as conn:
        seed_all(runtime, conn)
    app.wsgi_app = TransportFaults(app.wsgi_app)  # type: ignore[method-assign]
    return app


def runtime_of(app: Flask) -> Runtime:
    runtime: Runtime = app.extensions["handoff"]
    return runtime
