"""The MNO's authorization server over HTTP: discovery, CIBA backchannel authentication and
the token endpoint, answering OAuth 2.0's own error shape."""

from __future__ import annotations

from flask import request
from sqlalchemy import Connection

from simulators.core.contract import Operation
from simulators.core.http import Reply, RequestContext, RoleApi
from simulators.core.oauth import OAUTH_ERRORS, InvalidRequest
from simulators.core.runtime import Runtime
from simulators.core.tenancy import Partner

from . import authorization, model

PREFIX = "/mno/oauth2"
# RFC 6749 section 5.1: token answers must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def authenticate_client(runtime: Runtime, conn: Connection, operation: Operation) -> Partner | None:
    if not operation.secured:
        return None
    return authorization.authenticate_client(conn, request.headers.get("Authorization"))


api = RoleApi(
    model.ROLE,
    "camara-authorization",
    authenticator=authenticate_client,
    error_shape=OAUTH_ERRORS,
    idempotency_keys=False,
)


def _issuer(ctx: RequestContext) -> str:
    return ctx.base_url


def _body(ctx: RequestContext) -> dict[str, str]:
    if not isinstance(ctx.body, dict):
        raise InvalidRequest("Send the parameters as an application/x-www-form-urlencoded form")
    return ctx.body


@api.operation("getOpenIdConfiguration")
def get_openid_configuration(ctx: RequestContext) -> Reply:
    return Reply(authorization.openid_configuration(_issuer(ctx)))


# A read handler on purpose: the grants write in transactions of their own, so that a CIBA
# poll that is refused is still recorded.
@api.operation("requestToken")
def request_token(ctx: RequestContext) -> Reply:
    body = _body(ctx)
    assert ctx.partner is not None
    grant_type = body["grant_type"]
    if grant_type == authorization.GRANT_CIBA:
        token = authorization.redeem_backchannel_authentication(
            ctx.runtime,
            issuer=_issuer(ctx),
            client=ctx.partner,
            auth_req_id=body.get("auth_req_id"),
            correlation_id=ctx.correlation_id,
        )
    else:
        token = authorization.issue_client_credentials(
            ctx.runtime,
            issuer=_issuer(ctx),
            client=ctx.partner,
            grant_type=grant_type,
            scope=body.get("scope"),
            correlation_id=ctx.correlation_id,
        )
    return Reply(token.as_json(), 200, dict(NO_STORE))


@api.operation("backchannelAuthenticate", write=True)
def backchannel_authenticate(ctx: RequestContext) -> Reply:
    body = _body(ctx)
    assert ctx.partner is not None
    started = authorization.start_backchannel_authentication(
        ctx.conn,
        client=ctx.partner,
        scope=body.get("scope"),
        login_hint=body.get("login_hint"),
        now=ctx.now(),
        correlation_id=ctx.correlation_id,
    )
    answer = {
        "auth_req_id": started.auth_req_id,
        "expires_in": started.expires_in,
        "interval": started.interval,
    }
    return Reply(answer, 200, dict(NO_STORE))
