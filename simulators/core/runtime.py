"""The running stack's shared services: settings, store, clock, journal, outbox, steps, peers."""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import requests

from . import inprocess, tenancy
from .clock import Clock, check_in_range
from .config import Settings
from .faults import FaultEngine
from .generation import Generation, generation_path
from .journal import Journal, body_text
from .outbox import Outbox, outbox_table
from .ratelimit import Buckets, buckets_for
from .sink import SignatureCheck, recorder
from .store import Store
from .tasks import Tasks, due_among, next_due_among, task_table

STOP_GRACE_S = 30.0
# How long one clock move waits, in all, for steps a dispatcher process is running.
WAIT_FOR_DISPATCHER_S = 5.0
# After a pass that ran something, the dispatcher looks again this soon (doubling while idle).
FIRST_LOOK_AFTER_WORK_S = 0.005


class PeerCallFailed(Exception):
    """A peer did not answer (timeout, refused, reset)."""


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.db_url)
        self.store.create_all()
        self.clock = Clock(self.store)
        self.journal = Journal(self.store, settings.journal_max_entries, settings.journal_max_age_s)
        self.faults = FaultEngine(self.store, Generation(generation_path(self.store, "faults")))
        tenancy.share_partner_changes(Generation(generation_path(self.store, "partners")))
        self.outbox = Outbox(self.store, self.faults)
        self.tasks = Tasks(self.store)
        # Loaders for the `data` of scenario packs, by kind (e.g. "partners").
        self.pack_data_loaders: dict[str, Callable[..., Any]] = {}
        # Each faultable role's operationIds, so a rule naming an unknown one is refused.
        self.role_operations: dict[str, set[str]] = {}
        self.rate_limits: Buckets = buckets_for(settings.redis_url, self.store, self.clock)
        self.sink_signatures = SignatureCheck(settings.secret_key)
        self.sink_deliveries = recorder(self.store, self.clock)
        # Each role's reference data, run in this order on start, reset and seed.
        self.seeders: dict[str, Callable[[Runtime, Any, int], None]] = {}
        self._session = _peer_session()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    # --- peers ----------------------------------------------------------------------

    def peer_base_url(self, role: str) -> str:
        configured = {
            "mno": self.settings.mno_base_url,
            "mvne": self.settings.mvne_base_url,
            "tax": self.settings.tax_base_url,
            "billing": self.settings.billing_base_url,
        }
        return (configured.get(role) or f"{self.settings.public_base_url}/{role}").rstrip("/")

    def call_peer(
        self,
        *,
        caller: str,
        peer: str,
        method: str,
        path: str,
        api_key: str,
        correlation_id: str | None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        text_body: str | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> requests.Response:
        """Call a peer fake through its public contract; the call lands in the journal.
        `text_body` sends a body that is not JSON (e.g. a vendor file) as `content_type`."""
        url = self.peer_base_url(peer) + path
        headers = {"X-API-Key": api_key, "Accept": "application/json"}
        if correlation_id:
            headers["X-Correlation-ID"] = correlation_id
        data: bytes | None = None
        if text_body is not None:
            headers["Content-Type"] = content_type
            data = text_body.encode()
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        response_text: str | None = None
        try:
            response = inprocess.send(
                self._session,
                method,
                url,
                json=json_body,
                data=data,
                params=params,
                headers=headers,
                timeout=self.settings.peer_timeout_s,
            )
            status = response.status_code
            response_text = response.text
            return response
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            raise PeerCallFailed(f"{peer} did not answer: {type(exc).__name__}") from exc
        finally:
            self.journal.record(
                role=caller,
                direction="outbound",
                method=method,
                url=url,
                status=status,
                correlation_id=correlation_id,
                duration_ms=(time.perf_counter() - started) * 1000,
                request_body=body_text(text_body if data is not None else _json_text(json_body)),
                response_body=body_text(response_text),
                error=error,
                extra={"peer": peer},
            )

    # --- background work --------------------------------------------------------------

    def tick(self) -> int:
        """Run due lifecycle steps and callback deliveries once; return how many ran."""
        steps_due, deliveries_due = due_among(
            self.store, (task_table, outbox_table), self.clock.now()
        )
        ran = self.tasks.run_due(self, checked=True) if steps_due else 0
        if deliveries_due:
            ran += self.outbox.deliver_due(self, checked=True)
        elif ran:
            ran += self.outbox.deliver_due(self)  # what the steps just queued
        return ran

    def settle(self, max_rounds: int = 200) -> int:
        """Run everything due now until nothing is left (tests and `POST /__admin/settle`).

        On a live stack the dispatcher process may hold some of it under lease, so a pass
        that found nothing free waits for that work (up to WAIT_FOR_DISPATCHER_S) and looks
        again: a delivery it failed may be due again at once (retries without backoff)."""
        total = self._run_until_idle(max_rounds)
        self._publish_journal()
        return total

    def _run_until_idle(self, max_rounds: int = 200) -> int:
        total = 0
        patience = time.monotonic() + WAIT_FOR_DISPATCHER_S
        for _ in range(max_rounds):
            ran = self.tick()
            total += ran
            if ran == 0 and not self._more_elsewhere(patience):
                break
        return total

    def _publish_journal(self) -> None:
        """What the work journaled becomes visible to the stack's other processes once it
        has settled; while busy, the journal's own flushes (a full buffer, or every
        FLUSH_EVERY_S) keep it in batches rather than a write per pass. A stack alone with
        its store (tests, in-process) needs no write here: its journal queries read its
        own buffer first."""
        if self.settings.background:
            self.journal.flush()

    def _more_elsewhere(self, deadline: float) -> bool:
        """After a pass that ran nothing: whether another dispatcher had work in hand, or
        has just left some due, so that another pass is worth making."""
        if not self.settings.background:
            return False
        waited = self._await_running_elsewhere(deadline)
        if time.monotonic() >= deadline:
            return False
        if waited:
            return True
        return any(due_among(self.store, (task_table, outbox_table), self.clock.now()))

    def advance(self, seconds: float, max_events: int = 10_000) -> float:
        """Move the clock forward, stopping at each due time on the way, so every step
        and delivery runs at the simulated moment it was due (discrete-event order)."""
        target = self.clock.now() + seconds
        check_in_range(target, field="seconds")
        patience = time.monotonic() + WAIT_FOR_DISPATCHER_S
        self._await_running_elsewhere(patience)
        self._run_until_idle()
        for _ in range(max_events):
            self._await_running_elsewhere(patience)
            upcoming = next_due_among(self.store, (task_table, outbox_table))
            if upcoming is None or upcoming > target:
                break
            if upcoming > self.clock.now():
                self.clock.set(upcoming)
            self._run_until_idle()
        self.clock.set(target)
        self.settle()
        return target

    def _await_running_elsewhere(self, deadline: float) -> bool:
        """On a live stack a dispatcher process may be running a step or a delivery right
        now; what it schedules next is due from the clock as it stands, so the clock waits
        for it (until `deadline`, monotonic) before moving on. A stack with no dispatcher of
        its own (the tests, in-process) has nobody to wait for. Returns whether it found
        any to wait for."""
        if not self.settings.background:
            return False
        waited = False
        while time.monotonic() < deadline and (
            self.tasks.running_elsewhere() or self.outbox.running_elsewhere()
        ):
            waited = True
            time.sleep(0.01)
        return waited

    def start_background(self, interval_s: float = 0.1) -> None:
        if self._worker is not None:
            return

        def loop() -> None:
            quiet_rounds = 0
            while not self._stop.is_set():
                try:
                    busy = self.tick()
                    if not busy and quiet_rounds == 0:
                        self.journal.flush()  # what the work journaled, before the pause
                except Exception:  # keep serving; the step's row records the failure
                    busy = 0
                if busy:
                    quiet_rounds = 0
                    continue
                # More work usually follows work (a stream of events, the next steps of a
                # lifecycle): look again soon, then back off to `interval_s` once quiet. An
                # idle look is two indexed reads.
                self._stop.wait(min(interval_s, FIRST_LOOK_AFTER_WORK_S * 2**quiet_rounds))
                quiet_rounds = min(quiet_rounds + 1, 16)

        self._worker = threading.Thread(target=loop, name="handoff-dispatcher", daemon=True)
        self._worker.start()

    def close(self) -> None:
        """Stop background work, store the journal, release the store's connections."""
        self.stop_background()
        self.outbox.close()
        self.journal.close()
        self.store.dispose()

    def stop_background(self) -> None:
        self._stop.set()
        if self._worker is not None:
            # Let the batch in flight finish and be recorded: a delivery sent but not
            # recorded would go out again after a restart (at least once, not twice).
            self._worker.join(timeout=STOP_GRACE_S)
            self._worker = None
        self.journal.flush()


def _peer_session() -> requests.Session:
    """A session for peer calls. Without proxy variables, stop requests from reading the
    environment on every call (a third of an in-process call's cost): the CA bundle it
    would have found there is taken once here instead. Only ~/.netrc is no longer read."""
    session = requests.Session()
    if not urllib.request.getproxies():
        session.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            session.verify = bundle
    return session


def _json_text(value: Any) -> str | None:
    return None if value is None else _dumps(value)


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), default=str)
