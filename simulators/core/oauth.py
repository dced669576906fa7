"""OAuth 2.0 machinery an authorization server and its resource servers share.

Errors in RFC 6749's `{error, error_description}` shape; client authentication by HTTP
Basic (`client_secret_basic`); access tokens as signed JWTs (RFC 9068) whose key is derived
from the stack's master key, so no token is ever stored and every worker can check one;
their expiry is read on the simulated clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from .http import ErrorShape
from .problems import DomainError

# RFC 9068 section 2.1: the media type that tells an access token from any other JWT (an ID
# token signed with the same algorithm can never be presented as an access token).
ACCESS_TOKEN_TYPE = "at+jwt"
SIGNING_ALGORITHM = "HS256"


# --- errors (RFC 6749 section 5.2, OpenID Connect CIBA section 13) ------------------------


class OAuthError(DomainError):
    """A refusal of the authorization server; `code` is the RFC 6749 `error` value."""

    status = 400


class InvalidRequest(OAuthError):
    code = "invalid_request"
    title = "The request is missing a parameter or has an invalid one"


class InvalidClient(OAuthError):
    code = "invalid_client"
    status = 401
    title = "Client authentication failed"

    def __init__(self, detail: str | None = None, **members: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Basic realm="handoff"'}, **members)


class InvalidGrant(OAuthError):
    code = "invalid_grant"
    title = "The grant is invalid, used, or was issued to another client"


class UnauthorizedClient(OAuthError):
    code = "unauthorized_client"
    title = "The client may not use this grant type"


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"
    title = "The grant type is not supported"


class InvalidScope(OAuthError):
    code = "invalid_scope"
    title = "The scope is invalid, unknown, or not granted to the client"


# --- the error shape --------------------------------------------------------------------

# Refusals the shared pipeline raises, in RFC 6749's vocabulary.
_PIPELINE_ERRORS: dict[str, tuple[int | None, str]] = {
    "INVALID_REQUEST": (400, "invalid_request"),
    "MALFORMED_JSON": (400, "invalid_request"),
    "INVALID_CORRELATION_ID": (400, "invalid_request"),
    "UNSUPPORTED_MEDIA_TYPE": (400, "invalid_request"),
    "PAYLOAD_TOO_LARGE": (400, "invalid_request"),
    "UNSUPPORTED_CHARACTER": (400, "invalid_request"),
    "UNAUTHENTICATED": (401, "invalid_client"),
    "PARTNER_INACTIVE": (401, "invalid_client"),
    "NOT_FOUND": (None, "invalid_request"),
    "METHOD_NOT_ALLOWED": (None, "invalid_request"),
}


def _render(error: DomainError) -> tuple[int, dict[str, Any]]:
    if isinstance(error, OAuthError):
        return error.status, {"error": error.code, "error_description": error.detail}
    mapped = _PIPELINE_ERRORS.get(error.code)
    if mapped is not None:
        status, code = mapped
        return status or error.status, {"error": code, "error_description": error.detail}
    if error.status in (429, 503):
        code = "temporarily_unavailable"
    elif error.status >= 500:
        code = "server_error"
    else:
        code = "invalid_request"
    return error.status, {"error": code, "error_description": error.detail}


OAUTH_ERRORS = ErrorShape(render=_render)


# --- client authentication --------------------------------------------------------------


def basic_credentials(header: str | None) -> tuple[str, str]:
    """`(client_id, client_secret)` from `Authorization: Basic`, form-decoded as RFC 6749
    section 2.3.1 requires; a missing or malformed header is `invalid_client`."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise InvalidClient("Authenticate the client with HTTP Basic (client_secret_basic)")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("The Basic credentials are not valid base64 UTF-8") from None
    client_id, separator, secret = decoded.partition(":")
    if not separator or not client_id or not secret:
        raise InvalidClient("The Basic credentials must be client_id:client_secret")
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


# --- scopes -------------------------------------------------------------------------------


def scope_set(scope: str | None) -> frozenset[str]:
    """RFC 6749 section 3.3: space-delimited, order does not matter."""
    return frozenset(part for part in (scope or "").split(" ") if part)


def scope_text(scopes: frozenset[str] | set[str]) -> str:
    return " ".join(sorted(scopes))


# --- access tokens ------------------------------------------------------------------------


class InvalidToken(DomainError):
    """RFC 6750: a bearer token that is missing, malformed, expired or not ours."""

    code = "UNAUTHENTICATED"
    status = 401
    title = "Missing, invalid or expired access token"

    def __init__(self, detail: str | None = None, *, error: str | None = "invalid_token") -> None:
        challenge = 'Bearer realm="handoff"'
        if error:
            challenge += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


def bearer_token(header: str | None) -> str:
    """The token of `Authorization: Bearer <token>` (RFC 6750 section 2.1)."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        # RFC 6750 section 3.1: no error code when the request carried no token at all.
        raise InvalidToken("Send an access token as Authorization: Bearer <token>", error=None)
    return token.strip()


@dataclass(frozen=True)
class AccessTokenClaims:
    token_id: str
    client_id: str
    subject: str
    scopes: frozenset[str]
    issued_at: int
    expires_at: int
    extra: Mapping[str, Any]


class AccessTokens:
    """Issues and checks JWT access tokens for one audience (the APIs that accept them).

    The signing key is derived from the master key and a label, so a token is valid on every
    worker, after a restart, and nowhere else; nothing about a token is stored.
    """

    def __init__(self, secret_key: str, audience: str) -> None:
        label = f"access-token:{audience}".encode()
        self._key = OctKey.import_key(hmac.new(secret_key.encode(), label, hashlib.sha256).digest())
        self.audience = audience

    def issue(
        self,
        *,
        issuer: str,
        client_id: str,
        subject: str,
        scopes: frozenset[str],
        now: float,
        lifetime_s: int,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[str, AccessTokenClaims]:
        issued_at = int(now)
        claims = AccessTokenClaims(
            token_id=uuid.uuid4().hex,
            client_id=client_id,
            subject=subject,
            scopes=scopes,
            issued_at=issued_at,
            expires_at=issued_at + lifetime_s,
            extra=dict(extra or {}),
        )
        payload = {
            **claims.extra,
            "iss": issuer,
            "sub": subject,
            "aud": self.audience,
            "client_id": client_id,
            "scope": scope_text(scopes),
            "iat": issued_at,
            "exp": claims.expires_at,
            "jti": claims.token_id,
        }
        header = {"alg": SIGNING_ALGORITHM, "typ": ACCESS_TOKEN_TYPE}
        return jwt.encode(header, payload, self._key, algorithms=[SIGNING_ALGORITHM]), claims

    def verify(self, token: str, now: float) -> AccessTokenClaims:
        """The claims of a token this server signed for this audience and that has not
        expired at `now` (simulated time); InvalidToken otherwise."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[SIGNING_ALGORITHM])
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise InvalidToken("The access token is not one this server issued") from None
        if decoded.header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidToken("The token is not an access token")
        registry = jwt.JWTClaimsRegistry(
            now=int(now),
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
            client_id={"essential": True},
            jti={"essential": True},
        )
        claims = decoded.claims
        try:
            registry.validate(claims)
        except JoseError as exc:
            if exc.error == "expired_token":
                raise InvalidToken("The access token has expired") from None
            raise InvalidToken("The access token is not valid here") from None
        known = {"iss", "sub", "aud", "client_id", "scope", "iat", "exp", "jti"}
        return AccessTokenClaims(
            token_id=str(claims["jti"]),
            client_id=str(claims["client_id"]),
            subject=str(claims["sub"]),
            scopes=scope_set(str(claims.get("scope", ""))),
            issued_at=int(claims.get("iat", 0)),
            expires_at=int(claims["exp"]),
            extra={name: value for name, value in claims.items() if name not in known},
        )


def sign_id_token(client_secret: str, claims: Mapping[str, Any]) -> str:
    """An OpenID Connect ID token signed HS256 with the client's secret: OIDC Core 10.1 makes
    the secret's UTF-8 octets the key, so the client can check it without any key exchange."""
    key = OctKey.import_key(client_secret.encode())
    return jwt.encode({"alg": SIGNING_ALGORITHM, "typ": "JWT"}, dict(claims), key)


def hashed_secret(value: str) -> str:
    """What a store keeps of a one-time secret (an auth_req_id): its SHA-256."""
    return hashlib.sha256(value.encode()).hexdigest()
