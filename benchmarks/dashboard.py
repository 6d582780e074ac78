"""The dashboard's speed: ``python -m benchmarks.dashboard [--scale X] [--repeats N] [--out DIR]``.

Measures, on this machine (kernels cached: a warm-up run compiles whatever the combination needs):

- ``click_to_first_figure_s``: in headless Chromium (Playwright, the system Chromium), from the
  click on *Run* to the first month's figures in the page (the NEET figure's SVG and the month
  counter), with one intervention chosen; ``..._first`` is the first click in a fresh server (it
  simulates the 30-year burn-in), the median is over later clicks (which fork the shared burn-in);
- ``page_ms_per_month``: while the run plays in the page, wall time per simulated month as the
  page's month counter shows it (scenario + baseline month, chart data, the redraw's widget
  updates sent to the browser);
- ``server_ms_per_month_rendered``: in-process, without a browser: one *Step* in the Explore
  component rendered by Solara (``solara.render``), i.e. both months, the chart specs and
  Solara's re-render of every widget, median over months;
- ``model_ms_per_month``: ``DashboardRun.step()`` alone (scenario + baseline month).

Writes ``DIR/dashboard.json`` (default results/benchmarks/) and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("UTENFORSK_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INTERVENTION = "ips_youth"


def in_process(scale: float, months: int = 60) -> dict:
    import ipyvuetify as v
    import solara

    from utenforsk.dashboard import app
    from utenforsk.dashboard import run as drun

    r = drun.DashboardRun(interventions=[INTERVENTION], scale=scale, horizon_years=10)
    r.step()  # builds (burn-in, compile if needed)
    model = []
    for _ in range(months):
        t0 = time.perf_counter()
        r.step()
        model.append(time.perf_counter() - t0)
    box, rc = solara.render(app.Explore(), handle_error=False)
    rc.find(v.Checkbox, label=INTERVENTION).widget.v_model = True
    step = rc.find(v.Btn, children=["Step"]).widget
    step.click()  # builds
    rendered = []
    for _ in range(months):
        t0 = time.perf_counter()
        step.click()
        rendered.append(time.perf_counter() - t0)
    return {"model_ms_per_month": 1000 * statistics.median(model),
            "server_ms_per_month_rendered": 1000 * statistics.median(rendered)}


def _start_server(port: int, log: Path):
    fh = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "utenforsk.cli", "dashboard", "--port", str(port)],
                            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dashboard exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url
        except OSError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("dashboard did not start within 120 s")


def _stop(proc) -> None:
    from utenforsk.dashboard.server import stop_process_group

    stop_process_group(proc)


def in_browser(scale: float, repeats: int, out: Path) -> dict:
    from playwright.sync_api import sync_playwright

    from utenforsk.dashboard.server import free_port

    proc, url = _start_server(free_port(), out / "dashboard-server.log")
    clicks, per_month = [], []
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url)
            run = page.get_by_role("button", name="Run", exact=True)
            run.wait_for()
            page.get_by_text(INTERVENTION, exact=True).click()
            if scale != 0.005:
                page.locator(".v-select").filter(has_text="scale (simulated").click()
                page.locator(".v-menu__content .v-list-item").filter(has_text=f"{scale:g}").first.click()
            for i in range(repeats + 1):
                if i:  # the previous run is done: Run is enabled again
                    page.wait_for_function("() => !document.querySelector('.run-button').disabled")
                before = page.evaluate("() => { const e = document.querySelector('.months-done');"
                                       " return e ? e.dataset.run : null; }")
                t0 = time.perf_counter()
                run.click()
                page.wait_for_function(  # this run's first month counted, and its figure drawn
                    "b => { const e = document.querySelector('.months-done');"
                    " return e && e.dataset.run !== b && /^month [1-9]/.test(e.innerText)"
                    " && document.querySelector('.figure-neet.has-data svg g.mark-line path'); }", arg=before)
                clicks.append(time.perf_counter() - t0)
                # time per month while playing, as the page shows it: from the first figure to "done"
                m0 = int(page.locator(".months-done").first.inner_text().split()[1])
                t1 = time.perf_counter()
                page.wait_for_function("() => document.querySelector('.months-done').parentElement"
                                       ".querySelector('.run-done')")
                dt = time.perf_counter() - t1
                m1 = int(page.locator(".months-done").first.inner_text().split()[1])
                if m1 > m0:
                    per_month.append(1000 * dt / (m1 - m0))
            b.close()
    finally:
        _stop(proc)
    return {"click_to_first_figure_s_first": clicks[0],
            "click_to_first_figure_s": statistics.median(clicks[1:]) if len(clicks) > 1 else clicks[0],
            "click_to_first_figure_s_all": clicks, "page_ms_per_month": statistics.median(per_month),
            "page_ms_per_month_all": per_month}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dashboard", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.005, help="the page's scale (default: its default, 0.005)")
    ap.add_argument("--repeats", type=int, default=5, help="clicks on Run after the first")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"scale": args.scale, "intervention": INTERVENTION, "machine": platform.platform(),
                 "cpus": os.cpu_count(), "python": platform.python_version()}
    from utenforsk.dashboard.run import DEFAULT_SCALE

    if args.scale == DEFAULT_SCALE:  # the in-process figure uses the page's default scale
        res.update(in_process(args.scale))
    res.update(in_browser(args.scale, args.repeats, args.out))
    (args.out / "dashboard.json").write_text(json.dumps(res, indent=2))
    for k, val in res.items():
        print(f"{k:34s} {val if not isinstance(val, float) else round(val, 3)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
