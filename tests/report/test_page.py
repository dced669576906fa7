"""The readiness page in a real browser: headless Chromium renders the stack diagram (six
parties, coloured handoffs) and the gaps table, and takes a screenshot of it."""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from report_support import junit

from simulators.report import render
from simulators.report.matrix import known_points, load_matrix
from simulators.report.model import Readiness, assess
from simulators.report.results import load_features, read_results

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).with_name("data")
CHROMIUM = shutil.which("chromium")
WIDTH, HEIGHT = 1280, 1600

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install chromium): the page is not "
    "rendered",
)

# Added to a copy of the page only: the report itself carries no script.
MEASURE = """<script>
(() => {
  const size = (el) => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const svg = document.getElementById("stack-diagram");
  const measured = {
    svg: size(svg),
    parties: [...svg.querySelectorAll("g.party")].map((g) => [g.dataset.party, ...size(g)]),
    handoffs: [...svg.querySelectorAll("a.handoff")].map(
      (a) => [a.dataset.point, a.dataset.status, ...size(a)]),
    gaps: [...document.querySelectorAll("#gaps tbody tr")].map(
      (tr) => [tr.dataset.point, tr.dataset.kind, tr.getBoundingClientRect().height]),
    table: size(document.getElementById("gaps")),
  };
  const pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(measured);
  document.body.appendChild(pre);
})();
</script>"""


def chromium(profile: Path, *args: str) -> str:
    assert CHROMIUM is not None
    answer = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return answer.stdout


@pytest.fixture
def readiness(tmp_path: Path) -> Readiness:
    """The example MVNO's report on the project's own scenarios: every one passed but one
    callback scenario, the MVNE's verify passed and the MNO's failed."""
    features = load_features(REPO / "features")
    outcomes = {s.test_name: "passed" for found in features.values() for s in found}
    outcomes[features["callbacks"][0].test_name] = "failed"
    results = read_results(
        [
            junit(tmp_path / "junit.xml", outcomes),
            DATA / "verify-mvne.json",
            DATA / "verify-mno.json",
        ]
    )
    matrix = load_matrix(REPO / "examples" / "responsibility.yaml", known_points(REPO / "features"))
    return assess(matrix, features, results, generated_at="2026-03-02 09:00 UTC")


def test_the_page_renders_the_stack_and_the_gaps(tmp_path: Path, readiness: Readiness) -> None:
    page = render.html(readiness)
    (tmp_path / "readiness.html").write_text(page)
    measuring = tmp_path / "measuring.html"
    measuring.write_text(page.replace("</body>", MEASURE + "</body>"))

    dom = chromium(tmp_path / "profile", "--dump-dom", measuring.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, "the page did not finish rendering"
    measured: dict[str, Any] = json.loads(html.unescape(found.group(1)))

    width, height = measured["svg"]
    assert width > 600 and height > 300
    parties = {party: (w, h) for party, w, h in measured["parties"]}
    assert set(parties) == {"mvno", "mvne", "mno", "finance", "fulfillment", "care"}
    assert all(w > 50 and h > 20 for w, h in parties.values())

    handoffs = {(point, status) for point, status, w, h in measured["handoffs"] if w + h > 0}
    status = {p.point.id: p.status for p in readiness.points}
    assert handoffs == {(point_id, status[point_id]) for point_id in status}
    assert ("callbacks", "failing") in handoffs
    assert ("mvne-mno-provisioning", "failing") in handoffs  # the MNO's verify failed
    assert ("billing-disputes", "gap") in handoffs
    assert ("partner-activation", "ready") in handoffs

    rows = [(point, kind) for point, kind, row_height in measured["gaps"] if row_height > 10]
    assert rows == [(gap.point, gap.kind) for gap in readiness.gaps]
    assert ("billing-disputes", "no-accountable") in rows
    assert ("network-tickets", "no-escalation") in rows
    assert ("callbacks", "scenario-failing") in rows
    assert measured["table"][1] > 30 * len(rows)

    screenshot = tmp_path / "readiness.png"
    chromium(
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        (tmp_path / "readiness.html").as_uri(),
    )
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (WIDTH, HEIGHT)
    assert len(png) > 50_000  # a blank page of this size compresses to a few kilobytes
