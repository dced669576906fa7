"""`handoff`: start the stack, and drive a running one from the shell."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import quote

import click
import requests
import yaml
from rich.console import Console
from rich.table import Table

from .core.config import Settings, settings_from_env
from .core.faults import (
    CALLBACK_EFFECTS,
    CALLBACKS_ROLE,
    DATA_EFFECT,
    STATUS_EFFECT,
    TRANSPORT_EFFECTS,
)
from .core.problems import DomainError
from .core.runtime import STOP_GRACE_S
from .core.scenarios import apply_pack, find_pack, pack_paths, parse_pack
from .core.tenancy import list_partners
from .report.cli import report
from .stack import ROLES, create_app, extra_apis, operations_of, runtime_of
from .verify.cli import verify_command
from .verify.contracts_cli import contracts

# Piped output (logs, CI) gets a wide console so API keys and URLs are never cut.
console = Console() if sys.stdout.isatty() else Console(width=200)


def _env_for(settings: Settings) -> dict[str, str]:
    """What the server processes need to rebuild the same settings."""
    env = dict(os.environ)
    env.update(
        HANDOFF_DB=settings.db_url,
        HANDOFF_HOST=settings.host,
        HANDOFF_PORT=str(settings.port),
        HANDOFF_SECRET_KEY=settings.secret_key,
        HANDOFF_SEED=str(settings.faker_seed),
        HANDOFF_DISPATCHER="off",
    )
    if settings.mno_base_url:
        env["HANDOFF_MNO_URL"] = settings.mno_base_url
    if settings.mvne_base_url:
        env["HANDOFF_MVNE_URL"] = settings.mvne_base_url
    if settings.callback_allow_hosts:
        env["HANDOFF_CALLBACK_ALLOW_HOSTS"] = ",".join(settings.callback_allow_hosts)
    if settings.redis_url:
        env["HANDOFF_REDIS_URL"] = settings.redis_url
    return env


# Threads per gunicorn worker. A fake calls its peers on this same server (traffic: MNO ->
# MVNE charging; care -> MVNE -> MNO), and a request waiting on a peer, a fault's delay or a
# sink told to hang holds its thread while it waits: with four threads a worker, eight such
# requests at once left no thread to answer the peer calls they waited on, and each failed
# at the peer timeout (502) while the peer went on to do the work. Waiting threads do not
# compete for the interpreter lock: on two cores, runs of `benchmarks/run.py` and
# `benchmarks/callbacks.py` taking turns between 4 and 32 threads differed by less than the
# machine's own swings between runs.
SERVER_THREADS = 32


def _server_command(server: str, settings: Settings, workers: int) -> list[str]:
    bind_host, port = settings.host, str(settings.port)
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--host", bind_host,
            "--port", port, "--workers", str(workers), "--no-log", "simulators.wsgi:app",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
        f"{bind_host}:{port}", "--graceful-timeout", "5", "--log-level", "warning",
        # Threads, not one request per worker: a fake calls its peers on this same server
        # (care -> MVNE -> MNO), which with sync workers deadlocks once every worker waits.
        "--worker-class", "gthread", "--threads", str(SERVER_THREADS),
        # gunicorn refuses long request lines with an HTML page; the stack answers them
        # itself, with a problem document (simulators.core.http, MAX_URI_BYTES).
        "--limit-request-line", "0",
        "simulators.wsgi:app",
    ]  # fmt: skip


def _print_stack(settings: Settings, keys: list[tuple[str, str, str]]) -> None:
    base = settings.public_base_url
    table = Table(title=f"Handoff on {base}  (store: {settings.db_url})")
    for column in ("role", "base URL", "contract", "docs"):
        table.add_column(column)
    for role in [*ROLES, "__admin"]:
        name = "admin" if role == "__admin" else role
        table.add_row(name, f"{base}/{role}", f"{base}/{role}/openapi.json", f"{base}/{role}/docs")
        for prefix, api in extra_apis(ROLES[role]).items() if role in ROLES else ():
            table.add_row(
                f"  {api.contract_name}",
                f"{base}{prefix}",
                f"{base}{prefix}/openapi.json",
                f"{base}{prefix}/docs",
            )
    console.print(table)
    partners = Table(
        title="Partner API keys (send as X-API-Key; an mno-camara client's key is its "
        "OAuth client secret)"
    )
    for column in ("partner", "calls", "API key"):
        partners.add_column(column)
    for partner_id, role, key in keys:
        partners.add_row(partner_id, role, key)
    console.print(partners)


def _seeded_keys(app: Any) -> list[tuple[str, str, str]]:
    from .core.tenancy import MNO_NETWORK, MVNE_PLATFORM, derive_api_key, peer_api_key

    runtime = runtime_of(app)
    with runtime.store.read() as conn:
        found = list_partners(conn)
    keys = []
    for partner in found:
        if partner.status != "active":
            continue
        if partner.id in (MVNE_PLATFORM, MNO_NETWORK):
            key = peer_api_key(runtime.settings, partner.id)
        else:
            key = derive_api_key(runtime.settings.secret_key, partner.id)
        keys.append((partner.id, partner.role, key))
    return keys


# The admin contract's patterns for names the CLI puts in a URL path (contracts/admin.yaml:
# scenarioName, faultId). Checked here so a mistyped name is refused with its rule, not
# answered with whatever endpoint its slashes or dots lead to.
SCENARIO_NAME = "^[a-z0-9][a-z0-9-]{0,63}$"
FAULT_ID = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _scenario_name(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    """A scenario argument or option (one name, or a tuple of them) checked as a pack name."""
    for name in value if isinstance(value, tuple) else (value,):
        if not re.fullmatch(SCENARIO_NAME, name):
            raise click.BadParameter(
                f"{name!r} is not a scenario pack name: lowercase letters, digits and hyphens, "
                "at most 64 (`handoff scenario list` shows the packs)"
            )
    return value


def _fault_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(FAULT_ID, value):
        raise click.BadParameter(
            f"{value!r} is not a fault rule id: letters, digits, '.', '_' and '-', at most 64 "
            "(`handoff fault list` shows the ids)"
        )
    return value


def _wait_until_up(settings: Settings, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{settings.public_base_url}/__admin/health", timeout=1).ok:
                return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


@click.group()
@click.version_option(package_name="handoff")
def main() -> None:
    """Handoff: stateful fake vendors of an MVNO's stack, behind published contracts."""


main.add_command(verify_command, "verify")


@main.command()
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8700).")
@click.option(
    "--db", "db_url", default=None, help="Store URL; default sqlite:///.handoff/state.db."
)
@click.option("--workers", type=int, default=2, show_default=True)
@click.option(
    "--server",
    type=click.Choice(["gunicorn", "granian", "dev"]),
    default="gunicorn",
    show_default=True,
    help="dev = werkzeug with reload, for working on Handoff itself.",
)
@click.option("--mno-url", default=None, help="Send the MVNE's network orders to this MNO instead.")
@click.option("--seed", type=int, default=None, help="Faker seed of the reference data.")
@click.option(
    "--dispatchers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    envvar="HANDOFF_DISPATCHERS",
    help="Processes running lifecycle steps and callback deliveries (leases keep them apart).",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    callback=_scenario_name,
    help="Apply this scenario pack (scenarios/NAME.yaml) before serving; repeatable.",
)
def up(
    host: str | None,
    port: int | None,
    db_url: str | None,
    workers: int,
    server: str,
    mno_url: str | None,
    seed: int | None,
    dispatchers: int,
    scenarios: tuple[str, ...],
) -> None:
    """Serve the fakes on one port: /mno, /mvne and the control plane /__admin."""
    overrides: dict[str, Any] = {}
    for name, value in (
        ("host", host),
        ("port", port),
        ("db_url", db_url),
        ("mno_base_url", mno_url),
        ("faker_seed", seed),
    ):
        if value is not None:
            overrides[name] = value
    settings = settings_from_env(**overrides)
    app = create_app(settings)
    runtime = runtime_of(app)
    for name in scenarios:
        try:
            applied = apply_pack(runtime, find_pack(name, runtime.role_operations))
        except DomainError as error:
            raise click.ClickException(error.detail) from None
        console.print(f"Scenario [bold]{name}[/bold]: {len(applied['faults'])} fault rules on")
    _print_stack(settings, _seeded_keys(app))
    if server == "dev":
        from werkzeug.serving import run_simple

        runtime.start_background()
        run_simple(settings.host, settings.port, app, use_reloader=False, threaded=True)
        return
    process = subprocess.Popen(_server_command(server, settings, workers), env=_env_for(settings))
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not _wait_until_up(settings):
        process.terminate()
        raise click.ClickException(f"{server} did not start on {settings.public_base_url}")
    runtime.start_background()
    # More dispatchers are processes of their own: one Python process sends callbacks at
    # a few hundred a second before its interpreter lock, not the CPUs, is the limit.
    helpers = [
        subprocess.Popen(
            [sys.executable, "-m", "simulators.cli", "dispatch"], env=_env_for(settings)
        )
        for _ in range(dispatchers - 1)
    ]
    console.print(f"[green]Up.[/green] {server} with {workers} workers; Ctrl-C stops, state stays.")
    try:
        while not stopping and process.poll() is None:
            time.sleep(0.2)
    finally:
        for helper in helpers:
            helper.terminate()
        runtime.stop_background()
        for child in [*helpers, process]:
            if child.poll() is None:
                child.terminate()
            try:
                child.wait(timeout=STOP_GRACE_S + 10)
            except subprocess.TimeoutExpired:
                child.kill()
        runtime.close()
    console.print("Stopped; state kept in " + settings.db_url)
    if process.returncode not in (0, -signal.SIGTERM, None) and not stopping:
        sys.exit(process.returncode)


@main.command()
def dispatch() -> None:
    """Run one more dispatcher (lifecycle steps, callback deliveries) on the store that
    HANDOFF_* names, until SIGTERM or Ctrl-C; `handoff up --dispatchers N` starts these."""
    runtime = runtime_of(create_app(settings_from_env()))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopping.set())
    runtime.start_background()
    stopping.wait()
    runtime.close()


def _segment(value: str) -> str:
    """A path segment from user input, percent-encoded: `/`, `?`, `#` or `..` in it stay
    part of the name instead of choosing another endpoint."""
    return quote(value, safe="")


def _admin(
    url: str, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
) -> Any:
    """Call the control plane; `params` go in the query string, encoded."""
    token = os.environ.get("HANDOFF_ADMIN_TOKEN", "")
    headers = {"X-Admin-Token": token} if token else {}
    try:
        response = requests.request(
            method,
            f"{url}/__admin{path}",
            params=params,
            json=body,
            headers=headers,
            timeout=30,
        )
    except requests.RequestException as exc:
        raise click.ClickException(f"No stack answers at {url}: {exc}") from exc
    if response.status_code >= 400:
        raise click.ClickException(response.text)
    return response.json() if response.content else None


URL_OPTION = click.option(
    "--url",
    default=lambda: os.environ.get("HANDOFF_URL", "http://127.0.0.1:8700"),
    show_default="HANDOFF_URL",
)


@main.command()
@URL_OPTION
@click.option("--role", type=click.Choice(list(ROLES)), default=None)
def reset(url: str, role: str | None) -> None:
    """Return a running stack (or one role) to its freshly seeded state."""
    done = _admin(url, "POST", "/reset", {"role": role} if role else {})
    console.print(f"Reset {', '.join(done['reset'])} (seed {done['seed']}).")


@main.command()
@URL_OPTION
@click.argument("seconds", type=float)
def advance(url: str, seconds: float) -> None:
    """Move the simulated clock forward and run what became due."""
    clock = _admin(url, "POST", "/clock/advance", {"seconds": seconds})
    console.print(f"Clock at {clock['now']}" + (" (frozen)." if clock["frozen"] else "."))


@main.command()
@URL_OPTION
@click.option("--correlation-id", default=None)
@click.option("--limit", type=int, default=50, show_default=True)
def journal(url: str, correlation_id: str | None, limit: int) -> None:
    """Show the request journal (optionally one correlation ID's path across the fakes)."""
    query: dict[str, Any] = {"limit": limit}
    if correlation_id:
        query["correlationId"] = correlation_id
    table = Table()
    for column in ("at", "role", "dir", "method", "url", "status"):
        table.add_column(column)
    for entry in _admin(url, "GET", "/journal", params=query):
        table.add_row(
            entry["at"],
            entry["role"],
            entry["direction"],
            entry["method"],
            entry["url"],
            str(entry["status"]),
        )
    console.print(table)


@main.group()
def fault() -> None:
    """Switch faults on and off in a running stack."""


EFFECT_TYPES = [*TRANSPORT_EFFECTS, STATUS_EFFECT, DATA_EFFECT, *CALLBACK_EFFECTS]
# What a rule's match.role may name: a role of the stack, or the callbacks it sends.
FAULT_ROLES = [*ROLES, CALLBACKS_ROLE]


def _pairs_option(values: tuple[str, ...], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r}: use NAME=VALUE", param_hint=what)
        pairs[name] = content
    return pairs


@fault.command("add")
@URL_OPTION
@click.option("--file", "rule_file", type=click.File(), help="A rule as YAML or JSON.")
@click.option("--id", "rule_id", default=None)
@click.option("--description", default=None)
@click.option("--priority", type=int, default=None)
@click.option(
    "--role",
    type=click.Choice(FAULT_ROLES),
    default=None,
    help=f"The role whose requests the rule matches ({CALLBACKS_ROLE} for callback effects).",
)
@click.option("--operation", default=None, help="operationId from the role's contract.")
@click.option("--method", default=None)
@click.option("--path", default=None, help="Glob on the request path, e.g. /mvne/*/productOrder*.")
@click.option("--partner", default=None)
@click.option("--event", default=None, help="Callback event type (callback effects).")
@click.option("--field", "fields", multiple=True, help="NAME=VALUE a request field must hold.")
@click.option("--header", "headers", multiple=True, help="NAME=VALUE a request header must hold.")
@click.option("--effect", type=click.Choice(EFFECT_TYPES), default=None)
@click.option("--set", "effect_values", multiple=True, help="Effect parameter NAME=VALUE (ms=200).")
@click.option("--probability", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--first", "first_n", type=int, default=None, help="Only the first N matches.")
@click.option("--every", "every_nth", type=int, default=None, help="Only every Nth match.")
def fault_add(
    url: str,
    rule_file: Any,
    rule_id: str | None,
    description: str | None,
    priority: int | None,
    role: str | None,
    operation: str | None,
    method: str | None,
    path: str | None,
    partner: str | None,
    event: str | None,
    fields: tuple[str, ...],
    headers: tuple[str, ...],
    effect: str | None,
    effect_values: tuple[str, ...],
    probability: float | None,
    seed: int | None,
    first_n: int | None,
    every_nth: int | None,
) -> None:
    """Switch one fault on: from --file, or from the options.

    \b
    handoff fault add --role mvne --operation createProductOrder \\
        --effect status --set status=503 --set retryAfter=5 --probability 0.5 --seed 1
    """
    rule: dict[str, Any]
    if rule_file is not None:
        rule = yaml.safe_load(rule_file)
    else:
        if effect is None:
            raise click.UsageError("give --effect (or --file)")
        match: dict[str, Any] = {
            key: value
            for key, value in (
                ("role", role),
                ("operation", operation),
                ("method", method),
                ("path", path),
                ("partner", partner),
                ("event", event),
            )
            if value is not None
        }
        if fields:
            match["fields"] = _pairs_option(fields, "--field")
        if headers:
            match["headers"] = _pairs_option(headers, "--header")
        effect_spec: dict[str, Any] = {"type": effect}
        for name, value in _pairs_option(effect_values, "--set").items():
            effect_spec[name] = yaml.safe_load(value)  # numbers stay numbers
        dosage = {
            key: value
            for key, value in (
                ("probability", probability),
                ("seed", seed),
                ("firstN", first_n),
                ("everyNth", every_nth),
            )
            if value is not None
        }
        rule = {"match": match, "effect": effect_spec}
        if dosage:
            rule["dosage"] = dosage
        extras: tuple[tuple[str, Any], ...] = (
            ("id", rule_id),
            ("description", description),
            ("priority", priority),
        )
        rule.update({key: value for key, value in extras if value is not None})
    added = _admin(url, "POST", "/faults", rule)
    console.print(f"Fault [bold]{added['id']}[/bold] on.")


@fault.command("list")
@URL_OPTION
def fault_list(url: str) -> None:
    """The faults in force, in the order they are tried."""
    table = Table()
    for column in ("id", "prio", "match", "effect", "dosage", "source", "matched", "fired"):
        table.add_column(column)
    for rule in _admin(url, "GET", "/faults"):
        table.add_row(
            rule["id"],
            str(rule["priority"]),
            json.dumps(rule.get("match") or {}, separators=(",", ":")),
            json.dumps(rule["effect"], separators=(",", ":")),
            json.dumps(rule.get("dosage") or {}, separators=(",", ":")),
            rule["source"],
            str(rule["matched"]),
            str(rule["fired"]),
        )
    console.print(table)


@fault.command("clear")
@URL_OPTION
@click.argument("rule_id", required=False, callback=_fault_id)
@click.option("--source", default=None, help="Only rules from this source (api, scenario:NAME).")
def fault_clear(url: str, rule_id: str | None, source: str | None) -> None:
    """Switch one fault (by id) or all of them off."""
    if rule_id:
        _admin(url, "DELETE", f"/faults/{_segment(rule_id)}")
        console.print(f"Fault {rule_id} off.")
        return
    query = {"source": source} if source else None
    removed = _admin(url, "DELETE", "/faults", params=query)["removed"]
    console.print(f"{removed} fault rules off.")


@main.group()
def scenario() -> None:
    """Scenario packs: named failure points (scenarios/*.yaml)."""


@scenario.command("list")
def scenario_list() -> None:
    """The packs this installation ships, checked."""
    operations = {name: operations_of(module) for name, module in ROLES.items()}
    table = Table()
    for column in ("name", "title", "handoff", "faults"):
        table.add_column(column)
    for path in pack_paths():
        try:
            summary = parse_pack(path, operations).summary()
        except DomainError as error:
            table.add_row(path.stem, f"[red]invalid: {error.detail}[/red]", "", "")
            continue
        table.add_row(summary["name"], summary["title"], summary["handoff"], str(summary["faults"]))
    console.print(table)


@scenario.command("apply")
@URL_OPTION
@click.argument("name", callback=_scenario_name)
def scenario_apply(url: str, name: str) -> None:
    """Apply a pack to a running stack, all or nothing (again: its rules are replaced)."""
    applied = _admin(url, "POST", f"/scenarios/{_segment(name)}")
    console.print(
        f"Scenario [bold]{name}[/bold]: {len(applied['faults'])} fault rules on "
        f"({applied['replaced']} replaced)."
    )


main.add_command(contracts)


@main.command("steps")
@click.option("--role", default=None, help="Only the steps of this role (e.g. mvne, clock).")
@click.option("--markdown", is_flag=True, help="Print features/STEPS.md instead of a table.")
def steps(role: str | None, markdown: bool) -> None:
    """The Gherkin step phrases a feature can use: phrase, example, role."""
    try:
        from .bdd import catalogue
    except ImportError as exc:  # the step library needs pytest-bdd
        raise click.ClickException(f"{exc}: pip install 'handoff[bdd]'") from None
    rows = catalogue.rows()
    # The roles are known once the step library is imported, which needs pytest-bdd: so
    # checked here rather than by a click.Choice built with the CLI.
    known = sorted({owner for _phrase, _example, owner in rows}, key=str.lower)
    if role is not None and role not in known:
        raise click.BadParameter(
            f"{role!r} is not a step role; the roles are: {', '.join(known)}",
            param_hint="'--role'",
        )
    if markdown:
        click.echo(catalogue.markdown(), nl=False)
        return
    table = Table("phrase", "example", "role", title="Step phrases", show_lines=False)
    for phrase, example, owner in rows:
        if role is None or owner == role:
            table.add_row(phrase, example, owner)
    console.print(table)


main.add_command(report)

if __name__ == "__main__":
    main()
