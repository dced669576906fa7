"""A tiny orders API with a hub, correct unless told to carry one defect, and its contract."""

from __future__ import annotations

import copy
import itertools
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from flask import Flask, Response, jsonify, request
from standardwebhooks import Webhook
from werkzeug.serving import make_server

KEYS = {"key-alpha": "alpha", "key-bravo": "bravo"}
PROBLEM = {
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
}
ERRORS = {code: {"description": "error", **PROBLEM} for code in ("400", "401", "404", "415", "429")}
ERRORS["429"]["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
CORRELATION = {
    "name": "X-Correlation-ID",
    "in": "header",
    "schema": {"type": "string", "pattern": "^[a-zA-Z0-9-]{1,64}$"},
}
ORDER = {
    "type": "object",
    "required": ["id", "@type", "state", "stateChange"],
    "properties": {
        "id": {"type": "string"},
        "@type": {"const": "ProductOrder"},
        "externalId": {"type": "string"},
        "state": {"type": "string", "enum": ["acknowledged", "inProgress", "completed"]},
        "stateChange": {"type": "array", "items": {"type": "object"}},
    },
}
CONTRACT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Tiny orders", "version": "1"},
    "servers": [{"url": "/orders-api"}],
    "security": [{"partnerKey": []}],
    "paths": {
        "/orders": {
            "parameters": [CORRELATION],
            "post": {
                "operationId": "createOrder",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "pattern": "^[a-z0-9-]{1,40}$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "externalId": {"type": "string", "pattern": "^[a-z]{1,8}$"}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "created",
                        "content": {"application/json": {"schema": ORDER}},
                    },
                    **ERRORS,
                },
            },
        },
        "/orders/{id}": {
            "parameters": [
                CORRELATION,
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "get": {
                "operationId": "getOrder",
                "responses": {
                    "200": {
                        "description": "the order",
                        "content": {"application/json": {"schema": ORDER}},
                    },
                    **ERRORS,
                },
            },
        },
        "/hub": {
            "post": {
                "operationId": "registerListener",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["callback"],
                                "properties": {
                                    "callback": {"type": "string", "pattern": "^http://127"}
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "subscribed",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["id", "callback", "secret"],
                                    "properties": {
                                        "id": {"type": "string"},
                                        "callback": {"type": "string"},
                                        "secret": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    **ERRORS,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"partnerKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": {
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "code"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "code": {"type": "string"},
                },
            }
        },
    },
}
# The same API with a second caller: settlement staff, on their own security scheme (the
# same header), read a report no partner key opens (as the MNO's operationsKey does).
TWO_SCHEMES: dict[str, Any] = copy.deepcopy(CONTRACT)
TWO_SCHEMES["components"]["securitySchemes"]["staffKey"] = {
    "type": "apiKey",
    "in": "header",
    "name": "X-API-Key",
}
TWO_SCHEMES["paths"]["/report"] = {
    "get": {
        "operationId": "getReport",
        "security": [{"staffKey": []}],
        "responses": {
            "200": {
                "description": "the report",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["orders"],
                            "properties": {"orders": {"type": "integer"}},
                        }
                    }
                },
            },
            **{code: ERRORS[code] for code in ("401", "404")},
        },
    }
}
STAFF_KEY = "key-staff"
DEFECTS = (
    "replay",
    "leak",
    "plain_error",
    "no_correlation",
    "no_auth",
    "illegal_transition",
    "no_retry_after",
    "unsigned",
    "report_open",  # the staff report answers without credentials
    "hub_refuses",  # the hub refuses every subscription
)


def create_app(defect: str | None = None) -> Flask:
    app = Flask(__name__)
    orders: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    by_key: dict[tuple[str, str], str] = {}
    hubs: list[tuple[str, str, str]] = []  # (partner, callback, secret)
    counter = itertools.count(1)

    def problem(status: int, code: str) -> Response:
        if defect == "plain_error":
            answer = jsonify({"error": code})
        else:
            answer = jsonify({"type": "about:blank", "title": code, "status": status, "code": code})
            answer.content_type = "application/problem+json"
        answer.status_code = status
        if status == 429 and defect != "no_retry_after":
            answer.headers["Retry-After"] = "1"
        return answer

    def partner() -> str | None:
        key = request.headers.get("X-API-Key")
        if key is None and defect == "no_auth":
            return "alpha"
        return KEYS.get(key or "")

    @app.after_request
    def echo(answer: Response) -> Response:
        sent = request.headers.get("X-Correlation-ID")
        if sent and defect != "no_correlation":
            answer.headers["X-Correlation-ID"] = sent
        return answer

    def notify(who: str, order: dict[str, Any]) -> None:
        event = {
            "eventId": uuid.uuid4().hex,
            "eventTime": "2026-03-02T00:00:00Z",
            "eventType": "ProductOrderCreateEvent",
            "event": {"productOrder": order},
        }
        for owner, callback, secret in list(hubs):
            if owner != who:
                continue
            body = Response(response=[__import__("json").dumps(event)]).get_data()
            message_id = "msg_" + uuid.uuid4().hex
            headers = {"Content-Type": "application/json", "webhook-id": message_id}
            if defect != "unsigned":
                import datetime

                now = datetime.datetime.now(tz=datetime.UTC)
                headers["webhook-timestamp"] = str(int(now.timestamp()))
                headers["webhook-signature"] = Webhook(secret).sign(message_id, now, body.decode())
            threading.Thread(
                target=deliver,
                args=(callback,),
                kwargs={"data": body, "headers": headers, "timeout": 5},
                daemon=True,
            ).start()

    def deliver(callback: str, **kwargs: Any) -> None:
        try:
            requests.post(callback, **kwargs)
        except (requests.RequestException, ValueError):
            pass  # a fuzzed callback URL goes nowhere

    @app.before_request
    def correlation_id_shape() -> Any:
        sent = request.headers.get("X-Correlation-ID")
        if sent is not None and not re.fullmatch(r"[a-zA-Z0-9-]{1,64}", sent):
            return problem(400, "INVALID_CORRELATION_ID")
        return None

    @app.post("/orders-api/orders")
    def create_order() -> Any:
        who = partner()
        if who is None:
            return problem(401, "UNAUTHORIZED")
        if next(counter) % 7 == 0:
            return problem(429, "RATE_LIMITED")
        if not request.is_json:
            return problem(415, "UNSUPPORTED_MEDIA_TYPE")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or set(body) - {"externalId"}:
            return problem(400, "INVALID_REQUEST")
        external = body.get("externalId")
        if external is not None and (
            not isinstance(external, str)
            or not external.isalpha()
            or not external.islower()
            or len(external) > 8
        ):
            return problem(400, "INVALID_REQUEST")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not re.fullmatch(r"[a-z0-9-]{1,40}", key):
            return problem(400, "INVALID_REQUEST")
        if defect != "replay":
            for seen in filter(None, (key, external)):
                if (who, seen) in by_key:
                    return jsonify(orders[by_key[(who, seen)]]), 201
        order_id = uuid.uuid4().hex
        history = [{"state": "acknowledged"}]
        if defect == "illegal_transition":
            history.append({"state": "completed"})
        order = {
            "id": order_id,
            "@type": "ProductOrder",
            "state": history[-1]["state"],
            "stateChange": history,
            **({"externalId": external} if external else {}),
        }
        orders[order_id] = order
        owners[order_id] = who
        for seen in filter(None, (key, external)):
            by_key[(who, seen)] = order_id
        notify(who, order)
        return jsonify(order), 201

    @app.get("/orders-api/orders/<order_id>")
    def get_order(order_id: str) -> Any:
        who = partner()
        if who is None:
            return problem(401, "UNAUTHORIZED")
        if order_id not in orders or (owners[order_id] != who and defect != "leak"):
            return problem(404, "ORDER_NOT_FOUND")
        return jsonify(orders[order_id])

    @app.get("/orders-api/report")
    def report() -> Any:
        key = request.headers.get("X-API-Key")
        if key != STAFF_KEY and not (key is None and defect == "report_open"):
            return problem(401, "UNAUTHORIZED")
        return jsonify({"orders": len(orders)})

    @app.post("/orders-api/hub")
    def register() -> Any:
        who = partner()
        if who is None or defect == "hub_refuses":
            return problem(401, "UNAUTHORIZED")
        body = request.get_json(silent=True)
        callback = body.get("callback") if isinstance(body, dict) else None
        if not isinstance(callback, str) or not callback.startswith("http://127"):
            return problem(400, "INVALID_REQUEST")
        secret = "whsec_" + __import__("base64").b64encode(uuid.uuid4().bytes).decode()
        hubs.append((who, body["callback"], secret))
        return jsonify(
            {"id": uuid.uuid4().hex, "callback": body["callback"], "secret": secret}
        ), 201

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Any:
        return problem(404, "NOT_FOUND")

    @app.errorhandler(405)
    def not_allowed(error: Any) -> Any:
        answer = problem(405, "METHOD_NOT_ALLOWED")
        answer.headers["Allow"] = error.get_response().headers.get("Allow", "")
        return answer

    return app


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app on an ephemeral loopback port, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
