"""WSGI entry point for gunicorn and granian: `simulators.wsgi:app`, configured by `HANDOFF_*`.

Each worker builds its own app. Unless `HANDOFF_DISPATCHER=off` (set by
`handoff up`, which runs one dispatcher itself), a worker also runs the
background dispatcher; leases in the store keep several from colliding.
"""

from __future__ import annotations

import os

from .core.config import settings_from_env
from .stack import create_app, freeze_startup_objects, runtime_of

app = create_app(settings_from_env())
freeze_startup_objects()

if os.environ.get("HANDOFF_DISPATCHER", "on") != "off":
    runtime_of(app).start_background()
