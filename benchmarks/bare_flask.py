"""Reference app for the benchmark: the smallest Flask endpoint that answers JSON.

Served by the same WSGI server, with the same worker count, as the Handoff
stack, so `handoff GET / bare` isolates what Handoff adds per request (routing,
validation, auth, store, journal) from what Flask and the server cost anyway.

    PYTHONPATH=benchmarks gunicorn --workers 2 bare_flask:app
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask("bare")


@app.get("/ping")
def ping():  # type: ignore[no-untyped-def]
    return jsonify(status="ok", service="bare-flask")


@app.post("/hook")
def hook():  # type: ignore[no-untyped-def]
    """A webhook receiver that keeps nothing: the floor for benchmarks/callbacks.py --split."""
    request.get_data()
    return jsonify(received=True)
