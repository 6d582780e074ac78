"""The dashboard page (Solara, on Mesa's visualisation): Explore and Results tabs.

Served by ``utenforsk dashboard`` (utenforsk/dashboard/server.py); ``Page`` is the app. The run
settings and the parameter slider are Mesa ``UserInputs`` with Mesa ``Slider``s, and the model is
stepped as Mesa's ``ModelController`` does it (a threaded Solara task that steps while playing).
Unlike Mesa's ``SolaraViz`` page, *Run* builds the model in that task (so the burn-in shows
progress instead of freezing the page), a bad input is shown as a message, never a traceback, and
the redraw counter belongs to the browser session (Mesa's ``update_counter`` is one for all).
"""

from __future__ import annotations

import os
import time
from html import escape as esc

import warnings

import pandas as pd
import solara
import solara.lab

with warnings.catch_warnings():  # Solara's hook linter on Mesa's own ComponentsView (not used here)
    warnings.filterwarnings("ignore", message=".*ComponentsView.*", category=UserWarning)
    from mesa.visualization import Slider
    from mesa.visualization.solara_viz import UserInputs

from utenforsk.dashboard import charts
from utenforsk.dashboard import results as res
from utenforsk.dashboard import run as drun
from utenforsk.errors import UserError

ENV_EXPERIMENT = "UTENFORSK_DASHBOARD_EXPERIMENT"
#: while a run plays, the numbers are redrawn every month and the charts at most this often: the
#: page's Vega-Lite widget waits for 100 ms without a new spec before it draws (a debounce), so
#: charts updated every month (~20-50 ms) would not be drawn until the run stops
CHARTS_EVERY_S = 0.25


def Html(html: str):
    """Trusted markup (our own text, with values escaped by ``esc``). Not solara.Markdown: that
    loads KaTeX from the CDN, which is not among the installed assets."""
    return solara.HTML(tag="div", unsafe_innerHTML=html)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


# ---- Explore --------------------------------------------------------------------------------
@solara.component
def InterventionPicker(chosen: solara.Reactive[list], library: list):
    Html("<b>Interventions</b> (configs/interventions/)")
    for entry in library:
        if entry.error:
            solara.Error(f"{entry.name}: {entry.error}", dense=True)
            continue

        def toggle(on, name=entry.name):
            chosen.set([n for n in chosen.value if n != name] + ([name] if on else []))

        solara.Checkbox(label=entry.name, value=entry.name in chosen.value, on_value=toggle,
                        style="margin: 0; height: 28px")
        if entry.name in chosen.value:
            Html(f"<small style='display:block; margin: 0 0 6px 32px'>{esc(entry.description)}; library "
                 f"coverage {entry.coverage:g} (range {entry.coverage_range[0]:g}-{entry.coverage_range[1]:g}), "
                 f"from {entry.start_year}</small>")


@solara.component
def ParameterSlider(overrides: solara.Reactive[dict], params: dict):
    """One model parameter at a time, as a slider over its range, with its source."""
    path, set_path = solara.use_state("transitions.job_finding.probability"
                                      if "transitions.job_finding.probability" in params else next(iter(params)))
    p = params[path]
    solara.Select("Model parameter", values=list(params), value=path, on_value=set_path)
    value = overrides.value.get(path, p.value)
    step = (p.high - p.low) / 100 if p.high > p.low else 1.0
    if p.high > p.low:
        UserInputs({path: Slider("value", value=value,
                                 min=p.low, max=p.high, step=step, dtype=float)},
                   on_change=lambda name, v: overrides.set({**overrides.value, name: float(v)}))
    else:
        solara.Text(f"fixed at {p.value:g} (no range)")
    Html(f"<small>value {value:g} (baseline {p.value:g}{', ' + esc(p.unit) if p.unit else ''}), "
         f"range {p.low:g} - {p.high:g}; source: {esc(p.source)}</small>")
    if overrides.value:
        Html("<small>changed: " + ", ".join(f"<code>{esc(k)}</code> = {v:g}" for k, v in overrides.value.items())
             + "</small>")
        solara.Button("reset parameters", text=True, small=True, on_click=lambda: overrides.set({}))


def Vega(spec: dict):
    """A Vega-Lite spec in the page (the widget solara.FigureAltair renders into)."""
    return solara.widgets.VegaLite.element(spec=spec, listen_to_click=False, listen_to_hover=False)


@solara.component
def Figures(run: drun.DashboardRun | None, tick: int):
    """The four Explore charts. They stay mounted (empty before the first month), so the browser
    loads Vega once, with the page, and a new run only sends new data."""
    if run is None or not run.records:
        solara.Info("Choose interventions and press Run: the scenario runs beside the baseline with the "
                    "same seed, month by month." if run is None or run.error else "starting the run ...")
    has = run is not None and bool(run.records)
    data = {"neet_by_year": run.yearly_neet() if has else [], "difference": run.difference() if has else [],
            "pathways": run.pathways() if has else [], "queues": run.queues() if has else []}
    with solara.GridFixed(columns=2, column_gap="8px", row_gap="8px"):
        for name, rows in data.items():
            cls = f"figure-{name.replace('_by_year', '')}" + (" has-data" if rows else "")
            with solara.Card(margin=0), solara.Div(classes=[cls]):
                Vega(charts.with_rows(name, rows))


@solara.component
def Status(run: drun.DashboardRun | None, tick: int, playing: bool):
    if run is None:
        return
    if run.error:
        solara.Error(run.error, classes=["run-error"])
        return
    done, total = run.progress
    if run.phase == "burn-in":
        solara.Text(f"burn-in: {done}/{total} months (once per seed, scale and parameters)")
        solara.ProgressLinear(100 * done / max(total, 1))
        return
    if run.phase in ("ready", "preparing"):
        solara.Text("preparing the run (the first run of a new combination of interventions compiles "
                    "its kernel, 5-15 s; cached afterwards)" if playing else "ready")
        solara.ProgressLinear(True if playing else False)
        return
    s = run.summary()
    solara.ProgressLinear(100 * run.months_done / max(run.total_months, 1))
    Html(
        f"<span class='months-done' data-run='{run.serial}'>month {run.months_done} of {run.total_months}</span> "
        f"({s['year']}-{s['month_of_year']:02d}) · NEET 15-29 so far: scenario "
        f"<b>{_pct(s['neet_scenario'])}</b>, baseline {_pct(s['neet_baseline'])}, difference "
        f"<b class='neet-difference'>{s['difference_pp']:+.3f} pp</b>"
        + (" · <span class='run-done'>done</span>" if run.phase == "done" else ""))


@solara.component
def Explore():
    library = solara.use_memo(drun.library, [])
    params = solara.use_memo(drun.parameters, [])
    munis = solara.use_memo(drun.municipalities, [])
    chosen = solara.use_reactive([])
    target = solara.use_reactive(list(munis))
    own_coverage = solara.use_reactive(False)
    own_start = solara.use_reactive(False)
    settings = solara.use_reactive({"coverage": 0.3, "start_year": 2026, "seed": 1,
                                    "scale": drun.DEFAULT_SCALE, "horizon_years": drun.DEFAULT_HORIZON})
    overrides = solara.use_reactive({})
    custom = solara.use_reactive("")
    run = solara.use_reactive(None)
    playing = solara.use_reactive(False)
    tick = solara.use_reactive(0)        # redraws the numbers
    chart_tick = solara.use_reactive(0)  # redraws the charts

    def new_run() -> drun.DashboardRun:
        s = settings.value
        return drun.DashboardRun(
            interventions=list(chosen.value), coverage=s["coverage"] if own_coverage.value else None,
            start_year=s["start_year"] if own_start.value else None, target=list(target.value),
            seed=int(s["seed"]), scale=float(s["scale"]), horizon_years=int(s["horizon_years"]),
            overrides=dict(overrides.value), custom_yaml=custom.value)

    def loop():
        last = 0.0
        while playing.value and run.value is not None and run.value.running:
            r = run.value
            if r.months_done == 0:
                tick.value += 1   # show "preparing" / burn-in progress
                r.on_progress = lambda: tick.set(tick.value + 1)
            r.step()
            now = time.perf_counter()
            if r.months_done == 1 or now - last >= CHARTS_EVERY_S or not r.running:
                chart_tick.value += 1   # new data for the charts
                last = now
            tick.value += 1             # the numbers, every month
        if run.value is not None and not run.value.running:
            playing.value = False
        chart_tick.value += 1
        tick.value += 1

    solara.lab.use_task(loop, dependencies=[playing.value, run.value], prefer_threaded=True)

    def do_run():
        playing.value = False
        run.value = new_run()
        playing.value = run.value.error is None

    def do_step():
        if run.value is None or not run.value.running:
            run.value = new_run()
        if run.value.error is None:
            run.value.step()
        chart_tick.value += 1
        tick.value += 1

    with solara.Columns([1, 3]):
        with solara.Column():
            with solara.Card("Run", margin=0):
                with solara.Row():
                    solara.Button("Run", color="primary", on_click=do_run, disabled=playing.value,
                                  classes=["run-button"])
                    solara.Button("Pause" if playing.value else "Continue", on_click=lambda: playing.set(not playing.value),
                                  disabled=run.value is None or not run.value.running, classes=["pause-button"])
                    solara.Button("Step", on_click=do_step, disabled=playing.value, classes=["step-button"])
                Html("<small>The baseline runs beside the scenario with the same seed.</small>")
                UserInputs({
                    "seed": {"type": "SliderInt", "label": f"seed: {settings.value['seed']}",
                             "value": settings.value["seed"], "min": 0, "max": 999, "step": 1},
                    "scale": {"type": "Select", "label": "scale (simulated per real person)",
                              "value": settings.value["scale"], "values": list(drun.SCALES)},
                    "horizon_years": {"type": "Select", "label": "policy years",
                                      "value": settings.value["horizon_years"], "values": list(drun.HORIZONS)},
                }, on_change=lambda name, v: settings.set({**settings.value, name: v}))
            with solara.Card("Interventions", margin=0):
                InterventionPicker(chosen, library)
                solara.Checkbox(label="set coverage for all chosen", value=own_coverage)
                if own_coverage.value:
                    UserInputs({"coverage": Slider("coverage (share of the eligible offered it)",
                                                   value=settings.value["coverage"], min=0.0, max=1.0,
                                                   step=0.05, dtype=float)},
                               on_change=lambda name, v: settings.set({**settings.value, name: v}))
                solara.Checkbox(label="set start year for all chosen", value=own_start)
                if own_start.value:
                    UserInputs({"start_year": Slider("start year", value=settings.value["start_year"], min=2025,
                                                     max=2044, step=1, dtype=int)},
                               on_change=lambda name, v: settings.set({**settings.value, name: v}))
                solara.SelectMultiple("target municipality types", target, munis)
                Html("<small>The model has four municipality types today; real municipalities "
                                "come in a later issue.</small>")
                with solara.Details("custom intervention (YAML)"):
                    solara.InputTextArea("an intervention as in configs/interventions/", value=custom,
                                         continuous_update=True, rows=6)
            with solara.Card("Model parameters", margin=0):
                ParameterSlider(overrides, params)
        with solara.Column():
            Status(run.value, tick.value, playing.value)
            Figures(run.value, chart_tick.value)


# ---- Results --------------------------------------------------------------------------------
def _missing(exp: res.Experiment, section: str) -> None:
    if section in exp.problems:
        solara.Error(exp.problems[section])
    else:
        files = " or ".join(res.FILES.get(section, (section,)))
        solara.Info(f"not in this experiment (no {files})", classes=["not-in-experiment"])


@solara.component
def Table(df):
    """A stored table as it is, numbers shown to 4 significant digits."""
    shown = df.map(lambda x: f"{x:.4g}" if isinstance(x, float) else x)
    solara.DataFrame(shown, items_per_page=12)


@solara.component
def ForWhom(df):
    """for_whom.csv: a chart for one metric and attribute, and the table."""
    ok = {"attribute", "category", "metric", "difference", "ci_low", "ci_high"} <= set(df.columns) and len(df)
    metrics = list(dict.fromkeys(df["metric"])) if ok else [None]
    attrs = list(dict.fromkeys(df["attribute"])) if ok else [None]
    metric, set_metric = solara.use_state(next((m for m in metrics if m and "neet" in m), metrics[0]))
    attr, set_attr = solara.use_state(attrs[0])
    if not ok:
        Table(df)
        return
    with solara.Row():
        solara.Select("metric", values=metrics, value=metric, on_value=set_metric)
        solara.Select("group", values=attrs, value=attr, on_value=set_attr)
    solara.FigureAltair(charts.for_whom(df, metric, attr))
    Table(df[(df["metric"] == metric) & (df["attribute"] == attr)])


@solara.component
def OtherTables(files: list):
    names = [f.name for f in files]
    name, set_name = solara.use_state(names[0])
    solara.Select("file", values=names, value=name, on_value=set_name)
    path = files[names.index(name)]
    try:
        Table(pd.read_csv(path))
    except (OSError, ValueError) as exc:
        solara.Error(f"{path.name} could not be read: {exc}")


@solara.component
def ResultsView(exp: res.Experiment):
    meta = exp.meta
    Html(f"<h3>{esc(exp.name)}</h3><small>{esc(str(exp.path))} · " + ", ".join(
        f"{k} {esc(str(meta[k]))}" for k in ("replicates", "scale", "start_year", "horizon_years", "seed", "version")
        if k in meta) + "</small>")
    metrics = exp.effect_metrics()
    metric, set_metric = solara.use_state(metrics[0] if metrics else None)
    with solara.Card("Effects with 95% intervals (effects.csv)", classes=["results-effects"]):
        if exp.get("effects") is None:
            _missing(exp, "effects")
        else:
            solara.Select("metric", values=metrics, value=metric, on_value=set_metric)
            if metric:
                solara.FigureAltair(charts.forest(exp.get("effects"), metric))
    with solara.Card("Effect timing (effects at the report years)"):
        t = exp.timing()
        if t is None:
            _missing(exp, "effects") if exp.get("effects") is None else solara.Info(
                "not in this experiment (no METRIC@YEAR rows in effects.csv)", classes=["not-in-experiment"])
        else:
            m = metric if metric in set(t["base_metric"]) else t["base_metric"].iloc[0]
            solara.FigureAltair(charts.timing(t[t["base_metric"] == m], m))
    with solara.Card("For whom"):
        if exp.get("for_whom") is not None:
            ForWhom(exp.get("for_whom"))
        elif exp.gaps() is not None:
            Html("Effects on the gaps between groups (effects.csv, <code>gap_*</code>):")
            Table(exp.gaps())
        else:
            _missing(exp, "for_whom")
    with solara.Card("Economics (economics.csv)"):
        if exp.get("economics") is None:
            _missing(exp, "economics")
        else:
            if "npv_nok" in exp.get("economics"):
                solara.FigureAltair(charts.economics(exp.get("economics")))
            Table(exp.get("economics"))
    with solara.Card("Who pays, who gains (ledger.csv)"):
        led = exp.get("ledger")
        if led is None:
            _missing(exp, "ledger")
        else:
            if {"scenario", "payer", "pv_cost_change_nok"} <= set(led.columns):
                solara.FigureAltair(charts.ledger(led))
            Table(led)
    with solara.Card("Hypotheses and verdicts (hypotheses.csv)", classes=["results-hypotheses"]):
        if exp.get("hypotheses") is None:
            _missing(exp, "hypotheses")
        else:
            h = exp.get("hypotheses")
            for _, row in h.iterrows():
                verdict = str(row.get("verdict", ""))
                (solara.Success if verdict == "supported" else solara.Warning)(
                    f"{row.get('name', '')}: {row.get('statement', '')} — {verdict}", dense=True)
            Table(h)
    with solara.Card("Trials: simulated vs published (trial.csv)"):
        Table(exp.get("trial")) if exp.get("trial") is not None else _missing(exp, "trial")
    with solara.Card("Municipalities"):
        Table(exp.get("municipality")) if exp.get("municipality") is not None else _missing(exp, "municipality")
    if exp.others:
        with solara.Card("More stored tables"):
            OtherTables(exp.others)
    if exp.figures:
        with solara.Details("figures stored by the report (figures/*.png)"):
            for f in exp.figures:
                Html(f"<code>{esc(f.name)}</code>")
                solara.Image(str(f), width="640px")


@solara.component
def Results():
    default = os.environ.get(ENV_EXPERIMENT, "")
    path = solara.use_reactive(default)
    loaded = solara.use_reactive(None)
    error = solara.use_reactive(None)

    def open_dir(p=None):
        p = p if p is not None else path.value
        try:
            loaded.value, error.value = res.load(p), None
        except UserError as exc:
            loaded.value, error.value = None, exc.render()

    solara.use_effect(lambda: open_dir(default) if default else None, [])
    with solara.Row():
        solara.InputText("experiment directory", value=path, continuous_update=True)
        solara.Button("Open", on_click=lambda: open_dir(), classes=["open-button"])
    if error.value:
        solara.Error(error.value)
    elif loaded.value is None:
        solara.Info("Give an experiment directory (written by `utenforsk experiment`), e.g. results/quickstart.")
    else:
        ResultsView(loaded.value)


@solara.component
def Page():
    solara.Title("utenforsk dashboard")
    with solara.AppBar():
        solara.AppBarTitle("utenforsk: youth outsiderhood pathways, ages 0-29")
    with solara.lab.Tabs(lazy=True):
        with solara.lab.Tab("Explore"):
            Explore()
        with solara.lab.Tab("Results"):
            Results()
