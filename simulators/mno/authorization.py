"""The host network's OAuth 2.0 / OpenID Connect authorization server for its CAMARA APIs.

Its clients are the MVNOs' network-API applications (tenancy role `mno-camara`), each tied
to the MVNO whose lines it may ask about. Two grants, as the CAMARA Security and
Interoperability Profile uses them: client credentials (a two-legged token that identifies
no subscriber) and CIBA in poll mode (a three-legged token: the subscriber behind
`login_hint=tel:+<E.164>` approves on the device, a few simulated seconds later).

Access tokens are signed JWTs (`core.oauth.AccessTokens`) and are never stored; a CIBA
request is stored under the SHA-256 of its `auth_req_id`, never the id itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Connection, Float, Integer, String, Text, bindparam, select

from simulators.core import audit, tenancy
from simulators.core.camara import TokenHolder
from simulators.core.identifiers import is_valid_msisdn
from simulators.core.oauth import (
    AccessTokens,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
    basic_credentials,
    hashed_secret,
    scope_set,
    scope_text,
    sign_id_token,
)
from simulators.core.problems import NotFound, PermissionDenied, Unauthenticated
from simulators.core.store import role_table, select_equal, update_equal

from . import model

if TYPE_CHECKING:
    from simulators.core.runtime import Runtime

CLIENT_ROLE = tenancy.api_role(model.ROLE, "camara")
AUDIENCE = "mno-network-apis"

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_CIBA = "urn:openid:params:grant-type:ciba"
GRANT_TYPES = (GRANT_CLIENT_CREDENTIALS, GRANT_CIBA)

ACCESS_TOKEN_LIFETIME_S = 3600
# CIBA (poll mode): how long an authentication request lives, how often the client may poll
# (and by how much `slow_down` stretches that), and how long the subscriber takes to approve
# the prompt on the device.
AUTH_REQUEST_LIFETIME_S = 120
POLL_INTERVAL_S = 2
SLOW_DOWN_S = 5
CONSENT_DELAY_S = 3.0

OPENID = "openid"
# CAMARA declares the purpose as a scope `dpv:<W3C DPV purpose>`; one at most.
PURPOSE_PREFIX = "dpv:"

SIM_SWAP_SCOPES = ("sim-swap", "sim-swap:check", "sim-swap:retrieve-date")
NUMBER_VERIFICATION_SCOPES = (
    "number-verification:verify",
    "number-verification:device-phone-number:read",
)
ROAMING_SCOPES = ("device-roaming-status:read",)
API_SCOPES = SIM_SWAP_SCOPES + NUMBER_VERIFICATION_SCOPES + ROAMING_SCOPES

# One network-API client per reference MVNO. Bravo has not signed up for Number
# Verification, as it has not for usage queries at the MVNE.
REFERENCE_CLIENTS: list[dict[str, Any]] = [
    {
        "id": "mvno-alpha-camara",
        "name": "Alpha Mobile network APIs",
        "mvno": "mvno-alpha",
        "scopes": list(API_SCOPES),
    },
    {
        "id": "mvno-bravo-camara",
        "name": "Bravo Connect network APIs",
        "mvno": "mvno-bravo",
        "scopes": list(SIM_SWAP_SCOPES + ROAMING_SCOPES),
    },
]

auth_requests = role_table(
    model.ROLE,
    "mno_auth_request",
    Column("pk", Integer, primary_key=True, autoincrement=True),
    # SHA-256 of the auth_req_id: the id is a bearer secret of the client's until redeemed.
    Column("request_hash", String(64), nullable=False, unique=True),
    Column("client_id", String(64), nullable=False),
    Column("service_id", String(40), nullable=False),
    Column("scope", Text, nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("approve_at", Float, nullable=False),
    Column("interval_s", Integer, nullable=False),
    Column("last_polled_at", Float, nullable=True),
    Column("redeemed_at", Float, nullable=True),
)

# Built once and run with bound values: see simulators/core/store.py.
_LIVE_LINE_OF_MVNO = select(model.services.c.id).where(
    model.services.c.msisdn == bindparam("msisdn"),
    model.services.c.mvno_id == bindparam("mvno_id"),
    model.services.c.state != model.SERVICE_TERMINATED,
)


# --- CIBA errors (OpenID Connect CIBA Core sections 11 and 13) -----------------------------


class UnknownUserId(OAuthError):
    code = "unknown_user_id"
    title = "The login_hint identifies no subscriber of this client"


class AccessDenied(OAuthError):
    code = "access_denied"
    status = 403
    title = "The request was denied"


class AuthorizationPending(OAuthError):
    code = "authorization_pending"
    title = "The subscriber has not approved the request yet"


class SlowDown(OAuthError):
    code = "slow_down"
    title = "Polling too fast: wait longer between token requests"


class ExpiredToken(OAuthError):
    code = "expired_token"
    title = "The auth_req_id has expired"


# --- clients ---------------------------------------------------------------------------------


def seed_clients(runtime: Runtime, conn: Connection, seed: int) -> None:
    """The reference MVNOs' network-API clients; only added when missing."""
    known = {partner.id for partner in tenancy.list_partners(conn, CLIENT_ROLE)}
    now = runtime.clock.now(conn)
    for client in REFERENCE_CLIENTS:
        if client["id"] in known:
            continue
        tenancy.create_partner(
            conn,
            secret_key=runtime.settings.secret_key,
            partner_id=client["id"],
            role=CLIENT_ROLE,
            name=client["name"],
            agreement={
                "mvno": client["mvno"],
                "scopes": client["scopes"],
                "grantTypes": list(GRANT_TYPES),
            },
            granted=[],
            now=now,
        )


def client_secret(runtime: Runtime, client_id: str) -> str:
    """A client's secret, derived from the master key like every partner key (never stored)."""
    return tenancy.derive_api_key(runtime.settings.secret_key, client_id)


def authenticate_client(conn: Connection, authorization: str | None) -> tenancy.Partner:
    """The client behind `Authorization: Basic` (client_secret_basic), or invalid_client."""
    client_id, secret = basic_credentials(authorization)
    try:
        client = tenancy.authenticate(conn, CLIENT_ROLE, secret)
    except tenancy.PartnerInactive:
        raise InvalidClient(f"Client {client_id} is not active") from None
    except Unauthenticated:
        raise InvalidClient("Unknown client or wrong secret") from None
    if client.id != client_id:
        raise InvalidClient("Unknown client or wrong secret")
    return client


def _granted_scopes(
    client: tenancy.Partner, scope: str | None, *, three_legged: bool
) -> frozenset[str]:
    """The scopes a token request may have: the client's own, one purpose at most, and
    `openid` only where a subscriber is authenticated."""
    requested = scope_set(scope)
    if not requested:
        raise InvalidRequest("scope is required: name the CAMARA scopes the token is for")
    purposes = {value for value in requested if value.startswith(PURPOSE_PREFIX)}
    if len(purposes) > 1:
        raise InvalidScope("Declare one purpose (dpv:...) at most")
    if OPENID in requested and not three_legged:
        raise InvalidScope("openid needs an authenticated subscriber: use CIBA, not this grant")
    allowed = set(client.agreement.get("scopes", []))
    unknown = sorted(requested - allowed - purposes - {OPENID})
    if unknown:
        raise InvalidScope(f"Scope not granted to client {client.id}: {' '.join(unknown)}")
    if not requested & allowed:
        raise InvalidScope("Ask for at least one CAMARA API scope")
    return requested


def _check_grant_type(client: tenancy.Partner, grant_type: str) -> None:
    if grant_type not in GRANT_TYPES:
        raise UnsupportedGrantType(
            f"grant_type {grant_type!r} is not supported; use {' or '.join(GRANT_TYPES)}"
        )
    if grant_type not in client.agreement.get("grantTypes", []):
        raise UnauthorizedClient(f"Client {client.id} may not use {grant_type}")


# --- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenResponse:
    access_token: str
    expires_in: int
    scope: str
    id_token: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.id_token is not None:
            body["id_token"] = self.id_token
        return body


def access_tokens(runtime: Runtime) -> AccessTokens:
    return AccessTokens(runtime.settings.secret_key, AUDIENCE)


def _issue(
    runtime: Runtime,
    conn: Connection,
    *,
    issuer: str,
    client: tenancy.Partner,
    grant_type: str,
    scopes: frozenset[str],
    now: float,
    line: model.Service | None = None,
    authenticated_at: float | None = None,
    correlation_id: str | None = None,
) -> TokenResponse:
    token, claims = access_tokens(runtime).issue(
        issuer=issuer,
        client_id=client.id,
        # RFC 9068: the subscriber's line when one authenticated, else the client itself.
        subject=line.id if line is not None else client.id,
        scopes=scopes,
        now=now,
        lifetime_s=ACCESS_TOKEN_LIFETIME_S,
        extra={"auth_time": int(authenticated_at)} if authenticated_at is not None else None,
    )
    id_token = None
    if line is not None and OPENID in scopes:
        id_token = sign_id_token(
            client_secret(runtime, client.id),
            {
                "iss": issuer,
                "sub": _pairwise_subject(runtime, client.id, line.id),
                "aud": client.id,
                "iat": claims.issued_at,
                "exp": claims.expires_at,
                "auth_time": int(authenticated_at or now),
            },
        )
    audit.record(
        conn,
        at=now,
        role=model.ROLE,
        actor=f"client:{client.id}",
        partner_id=client.id,
        action="accessToken.issued",
        entity_type="accessToken",
        entity_id=claims.token_id,
        correlation_id=correlation_id,
        details={
            "grantType": grant_type,
            "scope": scope_text(scopes),
            "serviceId": line.id if line is not None else None,
            "expiresAt": claims.expires_at,
        },
    )
    return TokenResponse(token, ACCESS_TOKEN_LIFETIME_S, scope_text(scopes), id_token)


def _pairwise_subject(runtime: Runtime, client_id: str, service_id: str) -> str:
    """CAMARA: the ID token's `sub` is a pairwise pseudonymous identifier, never the MSISDN;
    two clients cannot correlate their subscribers through it."""
    digest = hmac.new(
        runtime.settings.secret_key.encode(),
        f"pairwise:{client_id}:{service_id}".encode(),
        hashlib.sha256,
    )
    return digest.hexdigest()[:32]


def issue_client_credentials(
    runtime: Runtime,
    *,
    issuer: str,
    client: tenancy.Partner,
    scope: str | None,
    grant_type: str = GRANT_CLIENT_CREDENTIALS,
    correlation_id: str | None = None,
) -> TokenResponse:
    """A two-legged token: it identifies no subscriber, so a request names its subject.
    `grant_type` is the one the client sent (the CIBA grant goes to
    `redeem_backchannel_authentication`): any other is unsupported."""
    _check_grant_type(client, grant_type)
    scopes = _granted_scopes(client, scope, three_legged=False)
    with runtime.store.write() as conn:
        return _issue(
            runtime,
            conn,
            issuer=issuer,
            client=client,
            grant_type=GRANT_CLIENT_CREDENTIALS,
            scopes=scopes,
            now=runtime.clock.now(conn),
            correlation_id=correlation_id,
        )


@dataclass(frozen=True)
class BackchannelRequest:
    auth_req_id: str
    expires_in: int
    interval: int


def start_backchannel_authentication(
    conn: Connection,
    *,
    client: tenancy.Partner,
    scope: str | None,
    login_hint: str | None,
    now: float,
    correlation_id: str | None = None,
) -> BackchannelRequest:
    """CIBA authentication request: find the subscriber, prompt the device, answer an
    auth_req_id the client polls the token endpoint with."""
    _check_grant_type(client, GRANT_CIBA)
    scopes = _granted_scopes(client, scope, three_legged=True)
    line = _hinted_line(conn, client, login_hint)
    auth_req_id = secrets.token_urlsafe(32)
    conn.execute(
        auth_requests.insert(),
        {
            "request_hash": hashed_secret(auth_req_id),
            "client_id": client.id,
            "service_id": line.id,
            "scope": scope_text(scopes),
            "requested_at": now,
            "expires_at": now + AUTH_REQUEST_LIFETIME_S,
            "approve_at": now + CONSENT_DELAY_S,
            "interval_s": POLL_INTERVAL_S,
        },
    )
    audit.record(
        conn,
        at=now,
        role=model.ROLE,
        actor=f"client:{client.id}",
        partner_id=client.id,
        action="backchannelAuthentication.requested",
        entity_type="service",
        entity_id=line.id,
        correlation_id=correlation_id,
        details={"scope": scope_text(scopes)},
    )
    return BackchannelRequest(auth_req_id, AUTH_REQUEST_LIFETIME_S, POLL_INTERVAL_S)


def _hinted_line(
    conn: Connection, client: tenancy.Partner, login_hint: str | None
) -> model.Service:
    """The subscriber line `login_hint` names, among the lines of the client's MVNO."""
    if not login_hint:
        raise InvalidRequest("login_hint is required (tel:+<E.164 number>)")
    kind, _, value = login_hint.partition(":")
    if kind != "tel":
        # CAMARA also names ipport: and operatortoken: hints; this network resolves numbers.
        raise InvalidRequest(f"login_hint type {kind!r} is not supported; send tel:+<number>")
    if not is_valid_msisdn(value):
        raise InvalidRequest("login_hint must be tel: and an E.164 number without separators")
    line = served_line(conn, client, value)
    if line is None:
        raise UnknownUserId("No subscriber of this client has that number")
    if line.service_type == model.SERVICE_TYPE_IOT:
        raise AccessDenied("The number is a data-only IoT line: no subscriber can approve")
    return line


def served_line(conn: Connection, client: tenancy.Partner, msisdn: str) -> model.Service | None:
    """The live line holding `msisdn` among the lines of the client's MVNO; another MVNO's
    number is as unknown as one the network does not serve."""
    mvno = client.agreement.get("mvno")
    if not mvno:
        return None  # a client tied to no MVNO sees no line (never the unattributed ones)
    row = conn.execute(_LIVE_LINE_OF_MVNO, {"msisdn": msisdn, "mvno_id": mvno}).first()
    return None if row is None else model.service_by_id(conn, row.id)


def redeem_backchannel_authentication(
    runtime: Runtime,
    *,
    issuer: str,
    client: tenancy.Partner,
    auth_req_id: str | None,
    correlation_id: str | None = None,
) -> TokenResponse:
    """The CIBA token request (poll mode): pending until the subscriber approves, then one
    three-legged token, once.

    A transaction of its own: a poll that is refused (pending, slow down) is still recorded,
    since the next poll's answer depends on when this one came.
    """
    _check_grant_type(client, GRANT_CIBA)
    if not auth_req_id:
        raise InvalidRequest("auth_req_id is required for the CIBA grant")
    with runtime.store.write() as conn:
        outcome = _redeem(
            runtime,
            conn,
            issuer=issuer,
            client=client,
            auth_req_id=auth_req_id,
            now=runtime.clock.now(conn),
            correlation_id=correlation_id,
        )
    if isinstance(outcome, OAuthError):
        raise outcome
    return outcome


def _redeem(
    runtime: Runtime,
    conn: Connection,
    *,
    issuer: str,
    client: tenancy.Partner,
    auth_req_id: str,
    now: float,
    correlation_id: str | None,
) -> TokenResponse | OAuthError:
    row = select_equal(conn, auth_requests, request_hash=hashed_secret(auth_req_id)).first()
    if row is None or row.client_id != client.id:
        return InvalidGrant("Unknown auth_req_id")
    if row.redeemed_at is not None:
        return InvalidGrant("The auth_req_id was already exchanged for a token")
    if now >= row.expires_at:
        return ExpiredToken("The authentication request expired; start a new one")
    if now < row.approve_at:
        too_soon = row.last_polled_at is not None and now < row.last_polled_at + row.interval_s
        interval = row.interval_s + SLOW_DOWN_S if too_soon else row.interval_s
        update_equal(conn, auth_requests, {"pk": row.pk}, last_polled_at=now, interval_s=interval)
        if too_soon:
            return SlowDown(f"Poll at most every {interval} s from now on")
        return AuthorizationPending("The subscriber has not approved the request yet")
    line = model.service_by_id(conn, row.service_id)
    if line is None or line.state == model.SERVICE_TERMINATED:
        return InvalidGrant("The subscriber's line is no longer served")
    update_equal(conn, auth_requests, {"pk": row.pk}, redeemed_at=now)
    return _issue(
        runtime,
        conn,
        issuer=issuer,
        client=client,
        grant_type=GRANT_CIBA,
        scopes=scope_set(row.scope),
        now=now,
        line=line,
        authenticated_at=row.approve_at,
        correlation_id=correlation_id,
    )


# --- what a token grants, as the CAMARA APIs check it ---------------------------------------


def verify_access_token(runtime: Runtime, conn: Connection, token: str) -> TokenHolder:
    """The client behind a valid, unexpired token of this network and what it grants; a
    three-legged token whose line is no longer served is void (a new authentication is
    needed)."""
    claims = access_tokens(runtime).verify(token, runtime.clock.now(conn))
    try:
        client = tenancy.get_partner(conn, claims.client_id)
    except NotFound:
        raise InvalidToken("The client of this token is no longer known") from None
    if client.role != CLIENT_ROLE:
        raise InvalidToken("The token was not issued to a network-API client")
    if client.status != tenancy.PARTNER_ACTIVE:
        raise PermissionDenied(f"Client {client.id} is {client.status}")
    line_id = None if claims.subject == claims.client_id else claims.subject
    if line_id is not None:
        line = model.service_by_id(conn, line_id)
        if (
            line is None
            or line.state == model.SERVICE_TERMINATED
            or line.mvno_id is None
            or line.mvno_id != client.agreement.get("mvno")
        ):
            raise InvalidToken("The line this token was issued for is no longer served")
    return TokenHolder(
        id=client.id,
        role=client.role,
        name=client.name,
        status=client.status,
        agreement=client.agreement,
        capabilities=client.capabilities,
        scopes=claims.scopes,
        line_id=line_id,
        token_id=claims.token_id,
    )


def openid_configuration(issuer: str) -> dict[str, Any]:
    """OpenID Provider metadata (OIDC Discovery 1.0, RFC 8414) of this server."""
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "backchannel_authentication_endpoint": f"{issuer}/bc-authorize",
        "grant_types_supported": list(GRANT_TYPES),
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "scopes_supported": [OPENID, *API_SCOPES],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["HS256"],
    }
