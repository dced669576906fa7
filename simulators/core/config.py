"""Effective configuration of one Handoff stack: defaults, then environment (`HANDOFF_*`)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
DEFAULT_STATE_DIR = Path(".handoff")
DEFAULT_PORT = 8700


@dataclass(frozen=True)
class Settings:
    """Everything a stack needs to start; immutable once the app is built."""

    db_url: str = f"sqlite:///{DEFAULT_STATE_DIR / 'state.db'}"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Base URL the MVNE uses to reach the MNO; empty means "this stack's own /mno".
    mno_base_url: str = ""
    # Base URL the MNO uses to reach the MVNE's charging API; empty means "this stack's /mvne".
    mvne_base_url: str = ""
    # Where billing asks for tax, and where billing is reached; empty means "this stack's".
    tax_base_url: str = ""
    billing_base_url: str = ""
    # Credential the MVNE presents to the MNO and the MNO's network presents to the MVNE.
    mno_api_key: str = ""
    network_api_key: str = ""
    # Master key from which API keys and webhook secrets are derived, so none is stored.
    secret_key: str = ""
    admin_token: str = ""
    faker_seed: int = 2026
    # Hosts callbacks may go to besides loopback (SSRF guard, OWASP API7).
    callback_allow_hosts: tuple[str, ...] = ()
    callback_timeout_s: float = 5.0
    callback_max_attempts: int = 8
    # Deliveries in flight at once, each sending thread with its own keep-alive session.
    callback_concurrency: int = 16
    # Dead letters in a row after which an endpoint is disabled (0 = never; 410 always does).
    callback_disable_after: int = 3
    peer_timeout_s: float = 5.0
    journal_max_entries: int = 50_000
    journal_max_age_s: int = 7 * 24 * 3600
    idempotency_retention_s: int = 24 * 3600
    # Simulated seconds the MNO takes to provision a service order.
    mno_provisioning_s: float = 2.0
    sim_pool_size: int = 50
    # Partner rate-limit buckets in Redis (`redis://host:6379/0`); empty keeps them in the store.
    redis_url: str = ""
    background: bool = True
    # Where the master key and other per-stack files live.
    state_dir: str = str(DEFAULT_STATE_DIR)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def public_base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _read_or_create_secret(state_dir: Path) -> str:
    """Keep one master key per state directory so restarts derive the same keys."""
    path = state_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _allow_host(name: str) -> str:
    """An allow-list entry as `check_callback_url` sees a URL's host: `urlsplit().hostname`
    lowercases it and drops an IPv6 literal's brackets (RFC 3986 section 3.2.2)."""
    return name.strip().removeprefix("[").removesuffix("]").lower()


def settings_from_env(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build settings from `HANDOFF_*` variables; explicit overrides win."""
    env = dict(os.environ if env is None else env)
    base = Settings()
    values: dict[str, object] = {}
    mapping: dict[str, tuple[str, type]] = {
        "HANDOFF_DB": ("db_url", str),
        "HANDOFF_HOST": ("host", str),
        "HANDOFF_PORT": ("port", int),
        "HANDOFF_MNO_URL": ("mno_base_url", str),
        "HANDOFF_MVNE_URL": ("mvne_base_url", str),
        "HANDOFF_TAX_URL": ("tax_base_url", str),
        "HANDOFF_BILLING_URL": ("billing_base_url", str),
        "HANDOFF_MNO_API_KEY": ("mno_api_key", str),
        "HANDOFF_NETWORK_API_KEY": ("network_api_key", str),
        "HANDOFF_SECRET_KEY": ("secret_key", str),
        "HANDOFF_ADMIN_TOKEN": ("admin_token", str),
        "HANDOFF_SEED": ("faker_seed", int),
        "HANDOFF_STATE_DIR": ("state_dir", str),
        "HANDOFF_MNO_PROVISIONING_SECONDS": ("mno_provisioning_s", float),
        "HANDOFF_REDIS_URL": ("redis_url", str),
        "HANDOFF_CALLBACK_CONCURRENCY": ("callback_concurrency", int),
        "HANDOFF_CALLBACK_DISABLE_AFTER": ("callback_disable_after", int),
    }
    for name, (attr, kind) in mapping.items():
        if env.get(name):
            try:
                values[attr] = kind(env[name])
            except ValueError as exc:
                raise ValueError(f"{name}={env[name]!r} is not a valid {kind.__name__}") from exc
    if env.get("HANDOFF_CALLBACK_ALLOW_HOSTS"):
        values["callback_allow_hosts"] = tuple(
            host
            for host in map(_allow_host, env["HANDOFF_CALLBACK_ALLOW_HOSTS"].split(","))
            if host
        )
    values.update(overrides)
    settings = replace(base, **values)  # type: ignore[arg-type]
    if not settings.secret_key:
        settings = replace(settings, secret_key=_read_or_create_secret(Path(settings.state_dir)))
    return settings
