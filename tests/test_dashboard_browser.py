"""The dashboard in a real browser: Playwright drives the system Chromium (no browser download).

The test starts ``utenforsk dashboard`` on a free loopback port with a tiny experiment of its own,
checks that the page renders, runs an intervention for some months and sees a figure and a number
change, shows a validation message for a broken intervention, opens the Results tab, and saves
screenshots under the test's tmp dir. Every request the page makes must go to 127.0.0.1 (anything
else is aborted and fails the test). The server is stopped at the end, also on failure.

Without Chromium or Playwright this skips, saying why; with ``UTENFORSK_BROWSER_REQUIRED=1`` (set
by .ci/run) it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = os.environ.get("UTENFORSK_BROWSER_REQUIRED") == "1"
CHROMIUM = os.environ.get("UTENFORSK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
T = 120_000  # ms: generous, for a loaded 2-core CI machine (first runs compile kernels)

pytestmark = pytest.mark.slow


def _need(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (UTENFORSK_BROWSER_REQUIRED=1: the browser test must run here)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    d = tmp_path_factory.mktemp("dash_exp")
    yml = d / "tiny.yaml"
    yml.write_text(f"""name: tiny
description: "two scenarios, two replicates, small and short (the dashboard browser test)"
model: {ROOT / 'configs/norway/baseline.yaml'}
scale: 0.002
horizon_years: 2
replicates: 2
seed: 7
scenarios:
  baseline: {{}}
  ips_youth: {{interventions: [ips_youth]}}
hypotheses:
  - name: ips_reduces_neet
    statement: "ips_youth reduces the NEET rate 15-29"
    metric: neet_rate_15_29
    scenario: ips_youth
    compare_to: baseline
    direction: reduces
""")
    out = d / "out"
    proc = subprocess.run([sys.executable, "-m", "utenforsk.cli", "experiment", str(yml), "--out", str(out),
                           "--workers", "1"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "effects.csv").exists()
    return out


def _free_port() -> int:
    from utenforsk.dashboard.server import free_port

    return free_port("127.0.0.1")


@pytest.fixture(scope="module")
def server(tiny_experiment, tmp_path_factory):
    log = tmp_path_factory.mktemp("dash_log") / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "utenforsk.cli", "dashboard", "--port", str(port),
                                 "--experiment", str(tiny_experiment)], stdout=fh, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the dashboard exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not answer on {url} within 120 s:\n{log.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        from utenforsk.dashboard.server import stop_process_group

        stop_process_group(proc)
        assert proc.poll() is not None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed (pip install playwright; no browser download needed)")
    if not Path(CHROMIUM).exists():
        _need(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        # launch() gives the browser a new, empty profile directory of its own
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=T)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_in_chromium(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(T)
    outside, failed, console_errors = [], [], []

    def only_loopback(route):
        if route.request.url.startswith(server.rstrip("/")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        page.goto(server)
        run = page.get_by_role("button", name="Run", exact=True)
        run.wait_for()
        assert page.get_by_role("tab", name="Explore").is_visible()
        page.screenshot(path=shots / "0-loaded.png")

        # choose an intervention, run, see a figure and a number change
        page.get_by_text("ips_youth", exact=True).click()
        run.click()
        page.locator(".figure-neet.has-data svg g.mark-line path").first.wait_for()  # lines drawn
        page.locator(".figure-difference.has-data svg g.mark-line path").first.wait_for()
        counter = page.locator(".months-done").first
        counter.wait_for()
        first = counter.inner_text()
        page.wait_for_function("t => { const e = document.querySelector('.months-done');"
                               " return e && e.innerText !== t; }", arg=first)
        assert counter.inner_text() != first
        page.locator(".run-done").first.wait_for()   # 10 policy years at scale 0.005
        assert page.locator(".neet-difference").first.inner_text().strip().endswith("pp")
        page.screenshot(path=shots / "1-explore.png", full_page=True)

        # a broken intervention: its message in the page, not a traceback
        page.get_by_text("custom intervention (YAML)").click()
        area = page.locator("textarea").first
        area.wait_for()
        area.fill("name: broken\ncoverage: {value: 2, range: [0, 1], source: x}\n")
        run.click()
        page.get_by_text("custom intervention (YAML in the page)").first.wait_for()
        body = page.inner_text("body")
        assert "Traceback" not in body
        page.screenshot(path=shots / "2-invalid.png", full_page=True)

        # the stored experiment
        page.get_by_role("tab", name="Results").click()
        page.locator(".results-effects svg").first.wait_for()
        page.get_by_text("ips_reduces_neet", exact=False).first.wait_for()
        page.get_by_text("not in this experiment (no trial.csv").first.wait_for()  # no trial was run
        assert "Traceback" not in page.inner_text("body")
        page.screenshot(path=shots / "3-results.png", full_page=True)
    except Exception:
        page.screenshot(path=shots / "failure.png", full_page=True)
        raise
    finally:
        page.close()
        print(f"screenshots: {shots}")
    assert not outside, f"the page asked for addresses outside loopback: {outside[:5]}"
    assert not failed, f"failed requests: {failed[:5]}"
