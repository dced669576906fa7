"""pytest plugin: options, the stack a run talks to, one fresh world per scenario, tags.

Loaded through the `pytest11` entry point of the package (or `-p simulators.bdd.plugin`).
In-process by default: the whole stack is built once per run and mounted into `responses`,
so scenarios use no sockets. `--handoff-url` points the same features at a live stack, or
replaces one role with a vendor's staging URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from . import tags
from .snapshot import Snapshot
from .target import (
    IN_PROCESS_URL,
    Target,
    TargetError,
    live_secret_key,
    parse_keys,
    parse_targets,
    serves_control_plane,
)
from .world import World

try:
    import pytest_bdd  # noqa: F401
except ImportError:  # pytest without pytest-bdd: the options and fixtures stay, no steps
    pytest_plugins: list[str] = []
else:
    from .catalogue import STEP_MODULES, define_steps

    # Importing the step modules declares their phrases.
    pytest_plugins = list(STEP_MODULES)
    define_steps()

# The in-process stack's master key: its own, so its API keys are never a real stack's.
IN_PROCESS_SECRET = "handoff-bdd-in-process"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("handoff", "Handoff scenarios")
    group.addoption(
        "--handoff-url",
        action="append",
        default=[],
        metavar="URL|ROLE=URL",
        help="run the scenarios against a live stack (http://127.0.0.1:8700) instead of "
        "in-process, and/or replace one role with a vendor (tax=https://tax.vendor.example); "
        "repeatable",
    )
    group.addoption(
        "--handoff-key",
        action="append",
        default=[],
        metavar="PARTNER=KEY",
        help="the API key of one identity (e.g. billing-platform=KEY for a vendor tax engine)",
    )
    group.addoption(
        "--handoff-secret-key",
        default=None,
        help="master key of a live stack (default: HANDOFF_SECRET_KEY, else "
        ".handoff/secret.key as `handoff up` keeps it)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, description in tags.markers():
        config.addinivalue_line("markers", f"{name}: {description}")


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-bdd, which may not be installed
def pytest_bdd_step_func_lookup_error(
    request: pytest.FixtureRequest, feature: Any, scenario: Any, step: Any, exception: Exception
) -> None:
    """An undefined step fails with the phrases nearest to it."""
    from pytest_bdd.exceptions import StepDefinitionNotFoundError

    from .catalogue import undefined_step_message

    where = f'line {step.line_number} of "{scenario.name}" in {feature.rel_filename}'
    raise StepDefinitionNotFoundError(f"{undefined_step_message(step.type, step.name)}\n({where})")


@pytest.fixture(scope="session")
def handoff_target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The stack this run's scenarios talk to; in-process unless `--handoff-url` names one."""
    config = request.config
    try:
        stack_url, replaced = parse_targets(config.getoption("--handoff-url"))
        keys = parse_keys(config.getoption("--handoff-key"))
    except TargetError as exc:
        raise pytest.UsageError(str(exc)) from None
    admin_token = os.environ.get("HANDOFF_ADMIN_TOKEN", "")
    if stack_url is not None:
        session = requests.Session()
        yield Target(
            stack_url=stack_url,
            in_process=False,
            replaced=replaced,
            secret_key=live_secret_key(config.getoption("--handoff-secret-key")),
            keys=keys,
            has_control_plane=serves_control_plane(session, stack_url),
            admin_token=admin_token,
        )
        return
    yield from _in_process(tmp_path_factory, replaced, keys)


def _in_process(
    tmp_path_factory: pytest.TempPathFactory, replaced: dict[str, str], keys: dict[str, str]
) -> Iterator[Target]:
    import responses

    from simulators.core.config import Settings
    from simulators.core.inprocess import mount
    from simulators.stack import create_app, freeze_startup_objects, runtime_of

    directory = tmp_path_factory.mktemp("handoff-bdd")
    settings = Settings(
        db_url=os.environ.get("HANDOFF_DB") or f"sqlite:///{directory / 'state.db'}",
        secret_key=IN_PROCESS_SECRET,
        background=False,
        state_dir=str(directory),
        # Peers replaced by a vendor are reached at the vendor's URL.
        mno_base_url=replaced.get("mno", ""),
        mvne_base_url=replaced.get("mvne", ""),
        tax_base_url=replaced.get("tax", ""),
        billing_base_url=replaced.get("billing", ""),
    )
    app = create_app(settings)
    freeze_startup_objects()
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mount(mock, app, IN_PROCESS_URL)
    for url in replaced.values():
        mock.add_passthru(url)
    target = Target(
        stack_url=IN_PROCESS_URL,
        in_process=True,
        replaced=replaced,
        secret_key=IN_PROCESS_SECRET,
        keys=keys,
        mock=mock,
        runtime=runtime_of(app),
        # The stack's store is this run's own: no other process writes it.
        snapshot=Snapshot(runtime_of(app), only_this_process_writes=True),
    )
    try:
        yield target
    finally:
        runtime_of(app).close()


@pytest.fixture
def handoff(handoff_target: Target) -> Iterator[World]:
    """One scenario's world, on a freshly reset stack whose clock stands still."""
    mock = handoff_target.mock
    if mock is not None:
        mock.start()
    session = requests.Session()
    # Proxies and CA bundles from the environment are read once here, not on every call.
    session.trust_env = False
    world = World(handoff_target, session)
    try:
        world.start_scenario()
        yield world
    finally:
        session.close()
        if mock is not None:
            mock.stop(allow_assert=False)
